/**
 * The loopback TCP reference of issue 7's "128 KiB sequential read from a null LUN at ≥ 70 % of
 * loopback TCP bandwidth": iperf3, one stream over 127.0.0.1, measured on this machine in the same run
 * as the targets rather than taken from the issue's text. The median of a few short runs is used,
 * because this VM's speed moves between phases (BENCHMARKS.md, "Noise").
 */
import { execFile, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { median } from './report.js';

export interface LoopbackMeasurement {
  /** Median of the runs, MiB/s received. */
  mibS: number;
  runsMiBs: number[];
  tool: string;
}

/** MiB/s received from an `iperf3 -c ... -J` report, or undefined when the report holds none. */
export function parseIperf3Json(text: string): number | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return undefined;
  }
  const bps = (doc as { end?: { sum_received?: { bits_per_second?: unknown } } }).end?.sum_received?.bits_per_second;
  return typeof bps === 'number' && Number.isFinite(bps) && bps > 0 ? bps / 8 / 2 ** 20 : undefined;
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function iperf3Version(): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile('iperf3', ['--version'], (err, stdout) => resolve(err ? undefined : (/^iperf \S+/.exec(stdout)?.[0] ?? 'iperf3')));
  });
}

/** One iperf3 run: a one-off server on a free loopback port and a client for `seconds`. */
async function runOnce(seconds: number): Promise<number> {
  const port = await freeLoopbackPort();
  const server = spawn('iperf3', ['-s', '-1', '-B', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  try {
    // The server needs a moment to listen; the client retries its connection a few times.
    let lastError = '';
    for (let attempt = 0; attempt < 20; attempt++) {
      await new Promise((r) => setTimeout(r, 100));
      const r = await new Promise<{ stdout: string; failed: boolean }>((resolve) => {
        execFile('iperf3', ['-c', '127.0.0.1', '-p', String(port), '-t', String(seconds), '-J'], { timeout: (seconds + 10) * 1000 }, (err, stdout) =>
          resolve({ stdout, failed: err !== null }),
        );
      });
      const mib = parseIperf3Json(r.stdout);
      if (mib !== undefined) return mib;
      lastError = r.stdout.slice(-200) || 'no output';
      if (!/connect|refused/i.test(r.stdout)) break;
    }
    throw new Error(`iperf3 client on 127.0.0.1:${port} gave no result: ${lastError}`);
  } finally {
    server.kill();
  }
}

/**
 * Single-stream loopback TCP bandwidth with iperf3 (Debian `iperf3`). Returns why not when iperf3 is
 * missing or fails, so the caller can fall back to a given figure and say so.
 */
export async function measureLoopbackTcp(runs = 3, seconds = 2): Promise<LoopbackMeasurement | { error: string }> {
  const tool = await iperf3Version();
  if (!tool) return { error: 'iperf3 is not installed (apt-get install -y iperf3)' };
  const runsMiBs: number[] = [];
  try {
    for (let i = 0; i < runs; i++) runsMiBs.push(await runOnce(seconds));
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
  return { mibS: median(runsMiBs)!, runsMiBs, tool };
}
