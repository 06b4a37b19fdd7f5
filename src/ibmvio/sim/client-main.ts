/**
 * Entry point of a client partition process: `node client-main.js '<json args>'`. Prints `LOG ...`
 * lines and one final `RESULT {...}` line; exits 0 when the run had no errors.
 */
import { OsType } from '../constants.js';
import { VioClient, Layout } from './client.js';
import { runHostile } from './hostile.js';
import { runScript, type ScriptStep } from './script.js';
import { Partition } from './partition.js';
import { Workload } from './workload.js';
import { VioThroughput, type ThroughputSpec } from './throughput.js';
import { seededRandom } from '../../sim/prng.js';

export interface ClientProcessArgs {
  socketPath: string;
  unit: number;
  partitionName: string;
  aix: boolean;
  mode: 'normal' | 'hostile' | 'script' | 'throughput';
  /** mode 'throughput': what to run (see throughput.ts). */
  throughput?: ThroughputSpec;
  /** mode 'script': the steps to run. */
  script?: ScriptStep[];
  seconds: number;
  workers: number;
  maxBlocks: number;
  seed: number;
  /** Hostile mode: another partition's client adapter, to try to take over. */
  otherUnit?: number;
}

const say = (kind: 'LOG' | 'RESULT', s: string) => process.stdout.write(`${kind} ${s}\n`);

async function normal(a: ClientProcessArgs): Promise<number> {
  const part = await Partition.boot({ socketPath: a.socketPath, unit: a.unit, memBytes: Layout.MEM_BYTES });
  const client = new VioClient(part, { partitionName: a.partitionName, osType: a.aix ? OsType.AIX : OsType.LINUX }, { log: (l) => say('LOG', l) });
  const rnd = seededRandom(a.seed);
  const w = new Workload(client, a.aix ? 'aix' : 'linux', rnd);
  let fatal: string | undefined;
  try {
    await client.start();
    await client.waitUp(20_000);
    const luns = await w.scan();
    say('LOG', `scan: ${luns.map((l) => `LUN ${l.number} ${l.vendor}/${l.product}/${l.revision} ${l.blocks}x${l.blockSize}`).join(', ')}`);
    if (a.aix) {
      for (const l of luns) {
        if (l.vendor !== 'IBM' || l.product !== 'VDASD blkdev' || l.revision !== '0001') {
          w.result.errors++;
          w.result.messages.push(`AIX profile: LUN ${l.number} reports ${l.vendor}/${l.product}/${l.revision}`);
        }
      }
    }
    const start = Date.now();
    const deadline = start + a.seconds * 1000;
    const workers = Math.max(1, Math.min(a.workers, client.loginLimit - 2, Layout.SLOTS - 4));
    const io = w.randomIo(luns, workers, deadline, a.maxBlocks);
    const at = (frac: number) => new Promise((r) => setTimeout(r, a.seconds * 1000 * frac));
    const tmfs = (async () => {
      await at(0.3);
      await w.abortOne();
      await at(0.35);
      await w.lunReset(luns);
    })();
    await Promise.all([io, tmfs]);
    // Every credit must have come back: no leak, no double credit after aborts and resets.
    await client.waitUp(20_000);
    if (client.requestLimit !== client.loginLimit) {
      w.result.errors++;
      w.result.messages.push(`credits: ${client.requestLimit} available after the run, login granted ${client.loginLimit}`);
    }
  } catch (err) {
    fatal = (err as Error).message;
    w.result.errors++;
    w.result.messages.push(`fatal: ${fatal}`);
  }
  say('RESULT', JSON.stringify({ ...w.result, resets: client.resets, partition: part.partitionNumber }));
  await client.close().catch(() => undefined);
  part.close();
  return w.result.errors === 0 ? 0 : 1;
}

async function scripted(a: ClientProcessArgs): Promise<number> {
  const part = await Partition.boot({ socketPath: a.socketPath, unit: a.unit, memBytes: Layout.MEM_BYTES });
  const client = new VioClient(part, { partitionName: a.partitionName, osType: a.aix ? OsType.AIX : OsType.LINUX }, { log: (l) => say('LOG', l) });
  await client.start();
  await client.waitUp(20_000);
  const steps = await runScript(client, a.script ?? [], a.aix);
  say('RESULT', JSON.stringify({ steps }));
  await client.close().catch(() => undefined);
  part.close();
  return 0;
}

/** Throughput mode: scan, then fixed-size verified I/O at the credit limit; no task management. */
async function throughput(a: ClientProcessArgs): Promise<number> {
  const part = await Partition.boot({ socketPath: a.socketPath, unit: a.unit, memBytes: Layout.MEM_BYTES });
  const client = new VioClient(part, { partitionName: a.partitionName, osType: a.aix ? OsType.AIX : OsType.LINUX }, { log: (l) => say('LOG', l) });
  const t = new VioThroughput(client, a.throughput ?? { blockSize: 4096, pattern: 'random', op: 'read' }, seededRandom(a.seed));
  try {
    await client.start();
    await client.waitUp(20_000);
    const w = new Workload(client, a.aix ? 'aix' : 'linux');
    const luns = await w.scan();
    say('LOG', `scan: ${luns.map((l) => `LUN ${l.number} ${l.blocks}x${l.blockSize}`).join(', ')}`);
    // Keep two credits spare, as the Linux client does for task management.
    await t.run(luns, Math.min(a.workers, client.loginLimit - 2, Layout.SLOTS - 4), a.seconds);
  } catch (err) {
    t.result.errors++;
    t.result.messages.push(`fatal: ${(err as Error).message}`);
  }
  say('RESULT', JSON.stringify({ ...t.result, partition: part.partitionNumber }));
  await client.close().catch(() => undefined);
  part.close();
  return t.result.errors === 0 ? 0 : 1;
}

async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2] ?? '{}') as ClientProcessArgs;
  const code =
    a.mode === 'hostile' ? await runHostile(a, say) : a.mode === 'script' ? await scripted(a) : a.mode === 'throughput' ? await throughput(a) : await normal(a);
  process.exit(code);
}

void main().catch((err: Error) => {
  say('RESULT', JSON.stringify({ errors: 1, messages: [`crash: ${err.stack ?? err.message}`] }));
  process.exit(2);
});
