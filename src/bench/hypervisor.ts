/**
 * Hypervisor-path benchmark (issue 7, "Hypervisor paths too"): the IBM VIO and Xen simulators'
 * emulated guests in throughput mode — 4 KiB random at the credit/ring limit and 128 KiB sequential,
 * reads and writes, data verified — against the copy ceiling: SharedRegion.copy / gather of the same
 * sizes in a loop through the addon. Prints a Markdown table and JSON.
 *
 *   npm run build && node dist/bench/hypervisor.js [--seconds S] [--json-only]
 */
import { Buffer } from 'node:buffer';
import { parseArgs } from 'node:util';
import { loadNative } from '../native/index.js';
import { SharedRegion } from '../native/shm.js';
import { DEFAULT_BUSY_POLL_MICROS } from '../service/config/types.js';
import { runIbmvioSim } from '../ibmvio/sim/run.js';
import { runXenSim } from '../xen/sim/run.js';
import { hvRows, mibPerSecond, renderMarkdown, type CopyCeiling, type HvMeasurement, type HvPath } from './hypervisor-report.js';

const WORK_AREA = 8 << 20;
const PAGE = 4096;

/** Copy `size`-byte transfers between two shared regions (and gather them as pages) for `ms` each. */
export function measureCeiling(size: number, ms: number): CopyCeiling {
  const a = SharedRegion.createAnonymous(WORK_AREA);
  const b = SharedRegion.createAnonymous(WORK_AREA);
  try {
    const slots = WORK_AREA / size;
    const timed = (op: (i: number) => void): number => {
      for (let i = 0; i < slots; i++) op(i); // fault every page in before timing
      let bytes = 0;
      let i = 0;
      const start = process.hrtime.bigint();
      const end = start + BigInt(Math.round(ms * 1e6));
      let now = start;
      while (now < end) {
        for (let k = 0; k < 64; k++, i++) op(i % slots);
        bytes += 64 * size;
        now = process.hrtime.bigint();
      }
      return mibPerSecond(bytes, Number(now - start) / 1e6);
    };
    const copyMiBs = timed((i) => SharedRegion.copy(a, i * size, b, ((i * 7919) % slots) * size, size));
    const dst = Buffer.alloc(size);
    const segs = (i: number) => Array.from({ length: Math.ceil(size / PAGE) }, (_, p) => ({ offset: i * size + p * PAGE, length: Math.min(PAGE, size - p * PAGE) }));
    const table = Array.from({ length: slots }, (_, i) => segs(i));
    const gatherMiBs = timed((i) => a.gather(table[i]!, dst));
    return { blockSize: size, copyMiBs, gatherMiBs };
  } finally {
    a.close();
    b.close();
  }
}

interface Case {
  op: 'read' | 'write';
  pattern: 'random' | 'sequential';
  blockSize: number;
}

const CASES: Case[] = [
  { op: 'read', pattern: 'random', blockSize: 4096 },
  { op: 'write', pattern: 'random', blockSize: 4096 },
  { op: 'read', pattern: 'sequential', blockSize: 131072 },
  { op: 'write', pattern: 'sequential', blockSize: 131072 },
];

async function runCase(path: HvPath, c: Case, seconds: number): Promise<HvMeasurement> {
  const workload = { ...c, queueDepth: 'max' as const };
  const r =
    path === 'ibmvio'
      ? await runIbmvioSim({ clients: 1, seconds, aix: false, hostile: false, restart: false, lunsPerClient: 1, workload })
      : await runXenSim({ domains: 1, seconds, hostile: false, workload });
  if (!r.ok) process.stderr.write(`${path} ${c.blockSize} ${c.pattern} ${c.op} FAILED:\n${r.lines.join('\n')}\n`);
  return {
    path, ...c,
    queueDepth: r.queueDepth ?? 0,
    commands: r.commands,
    bytes: r.bytes ?? 0,
    elapsedMs: r.elapsedMs ?? 0,
    bytesVerified: r.bytesVerified,
    ok: r.ok,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '3' },
      'json-only': { type: 'boolean', default: false },
      'busy-poll': { type: 'string', default: String(DEFAULT_BUSY_POLL_MICROS) },
    },
  });
  const seconds = Number(values.seconds);
  if (!Number.isFinite(seconds) || seconds < 0.5 || seconds > 600) throw new Error(`--seconds must be between 0.5 and 600, got ${values.seconds}`);
  // This process is the VIOS / dom0: it waits for the guests the way `vtgt serve` does, with the
  // service's default event-loop polling (the guests' processes do not poll).
  const busyPoll = Number(values['busy-poll']);
  loadNative().setBusyPoll(busyPoll);
  const ceilings = [4096, 131072].map((s) => measureCeiling(s, Math.min(1000, seconds * 500)));
  const ms: HvMeasurement[] = [];
  for (const path of ['ibmvio', 'xen'] as const) for (const c of CASES) ms.push(await runCase(path, c, seconds));
  const rows = hvRows(ms, ceilings);
  if (!values['json-only']) process.stdout.write(`${renderMarkdown(rows, ceilings)}\n\n`);
  process.stdout.write(`${JSON.stringify({ seconds, busyPollMicros: busyPoll, ceilings, rows }, null, 2)}\n`);
  process.exitCode = rows.every((r) => r.ok) ? 0 : 1;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e: Error) => {
    process.stderr.write(`hypervisor bench: ${e.message}\n`);
    process.exit(2);
  });
}
