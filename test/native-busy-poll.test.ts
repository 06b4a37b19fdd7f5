import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/native/index.js';

const ADDON = join(import.meta.dirname, '..', 'build', 'Release', 'vtgt_native.node');

// An echo server in its own process (polling changes how its event loop waits, not the test runner's).
// It prints its port, then the poll statistics whenever it receives a line "stats".
const ECHO_SERVER = `
const n = require(${JSON.stringify(ADDON)});
// argv[2], when given: each message counts as that many SCSI commands on the shared counter; argv[3]:
// commands held in flight throughout.
const perMessage = process.argv[2] === undefined ? 0 : Number(process.argv[2]);
const counter = new Float64Array(2);
counter[1] = Number(process.argv[3] ?? 0);
if (perMessage) n.setBusyPollCommandCounter(counter);
n.setBusyPoll(Number(process.argv[1]));
const srv = require('node:net').createServer((s) => {
  s.on('data', (d) => {
    counter[0] += perMessage;
    if (d.toString().startsWith('stats')) s.end(JSON.stringify(n.busyPollStats()) + '\\n');
    else if (d.toString().startsWith('off')) { n.setBusyPoll(0); s.end(JSON.stringify(n.busyPollStats()) + '\\n'); srv.close(); }
    else s.write(d);
  });
});
srv.listen(0, '127.0.0.1', () => console.log(srv.address().port));
`;

interface Stats {
  maxMicros: number;
  windowMicros: number;
  polls: number;
  hits: number;
  polledSeconds: number;
  skipped: number;
  commandsPerWake: number;
}

async function request(port: number, line: string): Promise<Stats | null> {
  const s = connect(port, '127.0.0.1');
  s.write(`${line}\n`);
  const [reply] = (await once(createInterface({ input: s }), 'line')) as [string];
  s.destroy();
  return JSON.parse(reply) as Stats | null;
}

/** Start the echo server with these arguments and connect to it. */
async function startEchoServer(...args: string[]): Promise<{ child: ChildProcess; port: number; s: Socket }> {
  const child = spawn(process.execPath, ['-e', ECHO_SERVER, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [portLine] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
  const port = Number(portLine);
  const s = connect(port, '127.0.0.1');
  await once(s, 'connect');
  s.setNoDelay(true);
  return { child, port, s };
}

async function pingPong(s: Socket, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    const got = once(s, 'data');
    s.write('x');
    await got;
  }
}

describe('native busy polling', () => {
  it('refuses a window outside 0..1000 µs', () => {
    const n = loadNative();
    expect(() => n.setBusyPoll(1001)).toThrow(/0 to 1000/);
    expect(() => n.setBusyPoll(-1)).toThrow(/0 to 1000/);
    expect(() => (n.setBusyPoll as (v: unknown) => void)('50')).toThrow(/0 to 1000/);
    expect(() => (n.setBusyPollCommandCounter as (v: unknown) => void)(new Float32Array(2))).toThrow(/Float64Array/);
    expect(() => n.setBusyPollCommandCounter(new Float64Array(1))).toThrow(/two elements/);
    expect(n.busyPollStats()).toBeNull();
  });

  it('polls through short waits, stops for long ones, and never keeps the process alive', async () => {
    const { child, port, s } = await startEchoServer('1000');
    await pingPong(s, 3000);
    const busy = (await request(port, 'stats'))!;
    expect(busy.maxMicros).toBe(1000);
    // Back-to-back requests arrive within the window: most polled waits end with an event.
    expect(busy.polls).toBeGreaterThan(1000);
    expect(busy.hits / busy.polls).toBeGreaterThan(0.5);

    // One request every 20 ms: every wait is far longer than the limit, so the window closes and the
    // loop sleeps; polling costs at most one window after the idle period began.
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 20));
      await pingPong(s, 1);
    }
    await new Promise((r) => setTimeout(r, 20));
    const idle = (await request(port, 'stats'))!;
    expect(idle.windowMicros).toBe(0);
    expect(idle.polledSeconds - busy.polledSeconds).toBeLessThan(0.05);

    s.destroy();
    // Turning it off releases the loop handles: with the server closed the process must exit.
    expect(await request(port, 'off')).toBeNull();
    const [code] = (await once(child, 'exit')) as [number];
    expect(code).toBe(0);
  }, 30_000);

  it('polls while each wake-up brings one command, not while wake-ups bring several', async () => {
    const run = async (perMessage: number, inFlight = 0): Promise<Stats> => {
      const { child, port, s } = await startEchoServer('1000', String(perMessage), String(inFlight));
      await pingPong(s, 3000);
      const stats = (await request(port, 'stats'))!;
      s.destroy();
      await request(port, 'off');
      await once(child, 'exit');
      return stats;
    };
    // One command per request, one request per round trip: the QD1 pattern polling is for.
    const one = await run(1);
    expect(one.commandsPerWake).toBeGreaterThan(0.8); // the stats request itself is a wake-up without a command
    expect(one.commandsPerWake).toBeLessThan(1.5);
    expect(one.polls).toBeGreaterThan(1000);
    expect(one.skipped).toBeLessThan(one.polls / 10);
    // Four commands per wake-up: the initiator has more queued, waits are left to the kernel.
    const four = await run(4);
    expect(four.commandsPerWake).toBeGreaterThan(3);
    expect(four.skipped).toBeGreaterThan(1000);
    expect(four.polls).toBeLessThan(four.skipped / 10);
    // The same with commands in flight: the loop is waiting for their completions, so it polls.
    const busy = await run(4, 3);
    expect(busy.commandsPerWake).toBeGreaterThan(3);
    expect(busy.polls).toBeGreaterThan(1000);
    expect(busy.skipped).toBeLessThan(busy.polls / 10);
  }, 30_000);
});
