/**
 * io-engine benchmark: Node's fs vs the native addon (io_uring, and its thread pool) under the file
 * backstore, on a tmpfs file and a disk file (buffered and O_DIRECT). Workloads: 4 KiB random read and
 * write at QD32, 128 KiB sequential read and write at QD8. Each run is time-bounded.
 *
 *   bash bench/io-engine.sh [--seconds 2] [--size-mib 256] [--only tmpfs|disk|disk-direct]
 *
 * Prints one JSON line per run and a table; results and the decision live in bench/IO-ENGINE.md.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileBackstore, type FileIoEngine } from '../src/backstores/file.js';
import { alignedBuffer, ioEngineInfo } from '../src/native/io.js';

interface Workload {
  name: string;
  blockBytes: number;
  qd: number;
  write: boolean;
  random: boolean;
}

const WORKLOADS: Workload[] = [
  { name: '4k-randread-qd1', blockBytes: 4096, qd: 1, write: false, random: true },
  { name: '4k-randread-qd32', blockBytes: 4096, qd: 32, write: false, random: true },
  { name: '4k-randwrite-qd32', blockBytes: 4096, qd: 32, write: true, random: true },
  { name: '128k-seqread-qd8', blockBytes: 131072, qd: 8, write: false, random: false },
  { name: '128k-seqwrite-qd8', blockBytes: 131072, qd: 8, write: true, random: false },
];
interface EngineVariant {
  label: string;
  engine: FileIoEngine;
  syncFastPath: boolean;
}
const ENGINES: EngineVariant[] = [
  { label: 'fs', engine: 'fs', syncFastPath: false },
  { label: 'io_uring', engine: 'native', syncFastPath: false },
  { label: 'threadpool', engine: 'native-threadpool', syncFastPath: false },
  { label: 'io_uring+sync', engine: 'native', syncFastPath: true },
];

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? (process.argv[i + 1] as string) : def;
}

const seconds = Number(arg('seconds', '2'));
const sizeBytes = Number(arg('size-mib', '256')) * 1024 * 1024;
const only = arg('only', '');

// xorshift32: deterministic offsets, no allocation per I/O.
let seed = 0x12345678;
function rand(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return seed >>> 0;
}

async function prefill(bs: FileBackstore): Promise<void> {
  const chunk = alignedBuffer(1 << 20, 4096);
  chunk.fill(0x5a);
  for (let off = 0; off < bs.sizeBytes; off += chunk.length) await bs.write(off, chunk, false);
  await bs.flush();
}

async function run(bs: FileBackstore, w: Workload): Promise<{ iops: number; mibs: number; ioPerCpuSec: number }> {
  const blocks = Math.floor(bs.sizeBytes / w.blockBytes);
  let seq = 0;
  let ios = 0;
  const deadline = performance.now() + seconds * 1000;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const worker = async (buf: Buffer): Promise<void> => {
    while (performance.now() < deadline) {
      const blk = w.random ? rand() % blocks : seq++ % blocks;
      const off = blk * w.blockBytes;
      if (w.write) await bs.write(off, buf, false);
      else await bs.read(off, w.blockBytes, buf);
      ios++;
    }
  };
  await Promise.all(Array.from({ length: w.qd }, () => worker(alignedBuffer(w.blockBytes, 4096))));
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuSec = (cpu.user + cpu.system) / 1e6;
  return {
    iops: Math.round(ios / elapsed),
    mibs: Math.round((ios * w.blockBytes) / elapsed / 1048576),
    ioPerCpuSec: Math.round(ios / cpuSec),
  };
}

interface Target {
  name: string;
  dir: string;
  direct: boolean;
}

async function main(): Promise<void> {
  const targets: Target[] = [];
  const shm = mkdtempSync(join('/dev/shm', 'vtgt-bench-'));
  const disk = mkdtempSync(join(tmpdir(), 'vtgt-bench-'));
  targets.push({ name: 'tmpfs', dir: shm, direct: false });
  targets.push({ name: 'disk', dir: disk, direct: false });
  targets.push({ name: 'disk-direct', dir: disk, direct: true });
  const info = ioEngineInfo();
  console.error(
    `# io engine: io_uring=${info.uring} (${info.uringEntries} entries) threads=${info.threads} ` +
      `UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'} seconds=${seconds} size=${sizeBytes >> 20}MiB`,
  );
  const rows: string[] = [];
  try {
    for (const t of targets) {
      if (only && t.name !== only) continue;
      const path = join(t.dir, 'bench.img');
      const filler = FileBackstore.open({ name: 'fill', path, size: sizeBytes });
      await prefill(filler);
      await filler.close();
      for (const w of WORKLOADS) {
        for (const v of ENGINES) {
          const bs = FileBackstore.open({
            name: 'bench',
            path,
            engine: v.engine,
            syncFastPath: v.syncFastPath,
            direct: t.direct,
            blockSize: 4096,
          });
          const r = await run(bs, w);
          await bs.close();
          console.log(JSON.stringify({ target: t.name, workload: w.name, engine: v.label, ...r }));
          rows.push(`| ${t.name} | ${w.name} | ${v.label} | ${r.iops} | ${r.mibs} | ${r.ioPerCpuSec} |`);
        }
      }
      rmSync(path, { force: true });
    }
  } finally {
    rmSync(shm, { recursive: true, force: true });
    rmSync(disk, { recursive: true, force: true });
  }
  console.log('\n| target | workload | engine | IOPS | MiB/s | IOs per CPU-second |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
}

await main();
