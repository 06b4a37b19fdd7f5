/**
 * `npm run bench`: vtgt against a private tgtd on the same kind of backing, in the same run,
 * interleaved, with repeats. Per backing it starts both targets, runs ../shared/tools/bench.sh against
 * each (alternating which goes first), then the many-sessions workload, and writes a Markdown table and
 * JSON to the output directory. Then the hypervisor paths: the IBM VIO and Xen simulators' emulated
 * guests against the copy ceiling (dist/bench/hypervisor.js, docs/hypervisor-bench.md), in the same
 * report. It measures; it asserts nothing (see BENCHMARKS.md for the targets).
 */
import { Command } from 'commander';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hypervisorChecks, renderMarkdown as hypervisorMarkdown, type CopyCeiling, type HvRow } from './hypervisor-report.js';
import { measureLoopbackTcp } from './loopback.js';
import { manySessions, type ManySessionsResult } from './many-sessions.js';
import { writeEveryBlock } from './precondition.js';
import { startTgt, startVtgt, type BackingKind, type BackingSpec, type TargetUnderTest } from './processes.js';
import { compare, evaluateTargets, markdownTable, targetsMarkdown, type WorkloadRecord } from './report.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const BACKINGS: readonly BackingKind[] = ['tmpfs', 'disk', 'direct', 'null'];

interface Options {
  backings: BackingKind[];
  repeats: number;
  seconds: number;
  sessions: number[];
  out: string;
  tools: string;
  tgtPort: number;
  xcheck: boolean;
  hypervisor: boolean;
  workloads: string[];
  /** Given on the command line; otherwise measured with iperf3 at the start of the run. */
  loopbackMiBs: number | undefined;
}

/** The issue's figure for this machine (iperf3 single stream ≈ 1.8 GiB/s), used only when iperf3 cannot run. */
const ISSUE_LOOPBACK_MIBS = 1843;

function parseOptions(argv: string[]): Options {
  const cmd = new Command('bench')
    .description('Compare vtgt with tgt on the same machine, same backing, same run')
    .option('--backings <list>', `comma list of ${BACKINGS.join(', ')}`, 'tmpfs,null')
    .option('--repeats <n>', 'runs of each workload per target', '3')
    .option('--seconds <s>', 'measurement seconds per workload (1-18)', '5')
    .option('--sessions <list>', 'many-sessions workload sizes (empty to skip)', '8,64')
    .option('--out <dir>', 'output directory', join(root, 'bench-results', new Date().toISOString().replace(/[:.]/g, '-')))
    .option('--tools <dir>', 'directory of bench.sh and tgt-up.sh', resolve(root, '..', 'shared', 'tools'))
    .option('--tgt-port <port>', 'loopback port for the private tgtd', '3262')
    .option('--workloads <list>', 'only these bench.sh workloads (e.g. randread_4k_qd1,randread_4k_qd32)', '')
    .option(
      '--loopback-mibs <n>',
      `loopback TCP bandwidth in MiB/s for the 70 % goal (default: measured with iperf3 in this run; ${ISSUE_LOOPBACK_MIBS}, the issue's figure, without iperf3)`,
    )
    .option('--no-xcheck', 'skip the qemu-img cross-check runs of the read workloads (about 40 % less time)')
    .option('--no-hypervisor', 'skip the IBM VIO and Xen simulator runs (8 workloads of --seconds each)')
    .addHelpText('after', '\nExample:\n  npm run bench -- --backings tmpfs,null --repeats 3 --seconds 5\n');
  cmd.parse(argv, { from: 'user' });
  const o = cmd.opts<Record<string, string>>();
  const backings = o.backings!.split(',').filter(Boolean) as BackingKind[];
  for (const b of backings) if (!BACKINGS.includes(b)) throw new Error(`unknown backing "${b}"; use ${BACKINGS.join(', ')}`);
  return {
    backings,
    repeats: Math.max(1, Number(o.repeats)),
    seconds: Math.min(18, Math.max(1, Number(o.seconds))),
    sessions: o.sessions!.split(',').filter(Boolean).map(Number),
    out: resolve(o.out!),
    tools: resolve(o.tools!),
    tgtPort: Number(o.tgtPort),
    xcheck: (o.xcheck as unknown) !== false,
    hypervisor: (o.hypervisor as unknown) !== false,
    workloads: (o.workloads ?? '').split(',').filter(Boolean),
    loopbackMiBs: o.loopbackMibs === undefined ? undefined : positiveNumber('--loopback-mibs', o.loopbackMibs),
  };
}

function positiveNumber(option: string, value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${option} must be a positive number, got "${value}"`);
  return n;
}

/** The loopback TCP reference for the 70 % goal, and where it came from (shown with the check). */
async function loopbackReference(o: Options): Promise<{ mibS: number; source: string; runsMiBs?: number[] }> {
  if (o.loopbackMiBs !== undefined) return { mibS: o.loopbackMiBs, source: 'given with --loopback-mibs' };
  if (!o.backings.includes('null')) return { mibS: ISSUE_LOOPBACK_MIBS, source: 'not measured: no null backing in this run' };
  console.log('bench: loopback TCP reference (iperf3, one stream, 127.0.0.1)');
  const m = await measureLoopbackTcp();
  if ('error' in m) {
    console.log(`bench: ${m.error}; using the issue's ${ISSUE_LOOPBACK_MIBS} MiB/s`);
    return { mibS: ISSUE_LOOPBACK_MIBS, source: `the issue's figure; ${m.error}` };
  }
  const runs = m.runsMiBs.map((v) => v.toFixed(0)).join(', ');
  return { mibS: m.mibS, source: `${m.tool}, one stream, median of ${runs} MiB/s in this run`, runsMiBs: m.runsMiBs };
}

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(cmd, args, { env, maxBuffer: 64 << 20 }, (err, stdout, stderr) =>
      res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** 1-minute load average when a run starts: runs on a busy shared machine can be told apart. */
function loadAverage(): number | undefined {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return undefined;
  }
}

/** A few seconds of reads and writes against a target before anything is measured. */
async function warmUp(t: TargetUnderTest): Promise<void> {
  console.log(`bench: warming up ${t.label}`);
  await sh('iscsi-perf', ['-i', 'iqn.2026-11.org.vtgt:bench-warmup', '-r', '-m', '32', '-b', '8', '-t', '2', t.url], process.env);
  await sh('qemu-img', ['bench', '-f', 'raw', '-t', 'none', '-w', '-d', '32', '-s', '4096', '-c', '20000', t.url], process.env);
}

function backingFor(kind: BackingKind, work: string, who: string): BackingSpec {
  const sizeBytes = 1024 ** 3;
  if (kind === 'null') return { kind, sizeBytes };
  const dir = kind === 'tmpfs' ? '/dev/shm' : work;
  return { kind, sizeBytes, path: join(dir, `vtgt-bench-${who}-${kind}.img`) };
}

async function runBenchSh(o: Options, t: TargetUnderTest, backing: string, run: number): Promise<WorkloadRecord[]> {
  const label = `${t.label}-${backing}-run${run}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BENCH_SECONDS: String(o.seconds),
    BENCH_TARGET_PID: String(t.pid),
    BENCH_XCHECK: o.xcheck ? '1' : '0',
  };
  if (o.workloads.length) env.BENCH_WORKLOADS = o.workloads.join(',');
  const load = loadAverage();
  const r = await sh(join(o.tools, 'bench.sh'), [t.url, o.out, label], env);
  const file = join(o.out, `${label}.json`);
  if (!existsSync(file)) {
    return [{ target: t.label, backing, workload: 'all', tool: 'bench.sh', error: `bench.sh rc=${r.code}: ${r.stderr.slice(-300)}` }];
  }
  const doc = JSON.parse(readFileSync(file, 'utf8')) as { results: Array<Omit<WorkloadRecord, 'target' | 'backing'>> };
  return doc.results.map((x) => ({ ...x, target: t.label, backing, loadavg: load }));
}

async function main(): Promise<void> {
  const o = parseOptions(process.argv.slice(2));
  mkdirSync(o.out, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'vtgt-bench-'));
  const records: WorkloadRecord[] = [];
  const many: Array<ManySessionsResult & { target: string; backing: string }> = [];
  console.log(`bench: results in ${o.out}`);
  // Before any target runs, on an otherwise quiet machine.
  const loopback = await loopbackReference(o);
  try {
    for (const kind of o.backings) {
      const vb = backingFor(kind, work, 'vtgt');
      const tb = backingFor(kind, work, 'tgt');
      const dataDir = mkdtempSync(join(work, `vtgt-${kind}-`));
      const targets: TargetUnderTest[] = [];
      try {
        // Precondition: every block of both backing files written once, so neither target pays first-touch
        // allocation (tmpfs pages, file system extents) during the measured runs, and reads cost the same
        // for both whatever each one's write workloads have covered (precondition.ts).
        for (const b of [vb, tb]) if (b.path) await writeEveryBlock(b.path, b.sizeBytes, { direct: kind === 'direct' });
        targets.push(await startVtgt(root, dataDir, vb));
        targets.push(await startTgt(o.tools, o.tgtPort, tb));
        // Warm-up, not measured: vtgt's JIT compiles its hot paths during the first seconds of load.
        for (const t of targets) await warmUp(t);
        for (let run = 1; run <= o.repeats; run++) {
          const order = run % 2 ? targets : [...targets].reverse();
          for (const t of order) {
            console.log(`bench: ${kind} run ${run}/${o.repeats}: ${t.label} (${t.url})`);
            records.push(...(await runBenchSh(o, t, kind, run)));
          }
        }
        for (const n of o.sessions) {
          for (let run = 1; run <= o.repeats; run++) {
            const order = run % 2 ? targets : [...targets].reverse();
            for (const t of order) {
              console.log(`bench: ${kind} many-sessions ${n} x QD32 run ${run}/${o.repeats}: ${t.label}`);
              const load = loadAverage();
              // Clients start and log in staggered (64 processes on 2 cores): 3 s more leaves a common window of about --seconds.
              const r = await manySessions(t.url, t.pid, n, o.seconds + 3);
              many.push({ ...r, target: t.label, backing: kind });
              const ios = r.perSession.reduce((a, s) => a + s.ios, 0);
              records.push({
                target: t.label,
                backing: kind,
                workload: `mixed_4k_qd32_${n}sessions`,
                tool: 'iscsi-perf+qemu-img',
                iops: r.iops,
                mib_s: r.mibS,
                lat_us: ((n * 32) / r.iops) * 1e6,
                target_cpu_s: r.targetCpuS ?? null,
                ios,
                loadavg: load,
                wall_iops: r.wallIops,
                window_s: r.windowSeconds,
                ...(r.fairness !== undefined ? { fairness: r.fairness } : {}),
                ...(r.maxRssBytes !== undefined ? { max_rss_bytes: r.maxRssBytes } : {}),
                ...(r.errors.length ? { error: r.errors.join('; ') } : {}),
              });
            }
          }
        }
      } finally {
        for (const t of targets) await t.stop();
        for (const b of [vb, tb]) if (b.path) rmSync(b.path, { force: true });
      }
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const hv = o.hypervisor ? await runHypervisorPaths(o) : undefined;
  const rows = compare(records);
  const checks = [...evaluateTargets(rows, { loopbackMiBs: loopback.mibS, loopbackSource: loopback.source }), ...(hv && 'rows' in hv ? hypervisorChecks(hv.rows) : [])];
  const hvSection = !hv
    ? ''
    : 'error' in hv
      ? `\n### Hypervisor paths\n\nnot measured: ${hv.error}\n`
      : `\n### Hypervisor paths (IBM VIO and Xen simulators, memory LU)\n\n${hypervisorMarkdown(hv.rows, hv.ceilings)}\n`;
  const table = `${markdownTable(rows)}${hvSection}\n### Issue 7 targets in this run\n\n${targetsMarkdown(checks)}`;
  writeFileSync(join(o.out, 'comparison.md'), table);
  writeFileSync(
    join(o.out, 'comparison.json'),
    JSON.stringify({ date: new Date().toISOString(), options: o, loopback, rows, targets: checks, manySessions: many, hypervisor: hv, records }, null, 1),
  );
  console.log(table);
}

/**
 * The hypervisor-path benchmark in its own process (it is the VIOS / dom0 and sets the event loop's
 * busy polling as `vtgt serve` does), its JSON kept whole.
 */
async function runHypervisorPaths(o: Options): Promise<{ ceilings: CopyCeiling[]; rows: HvRow[] } | { error: string }> {
  console.log('bench: hypervisor paths (IBM VIO and Xen simulators)');
  const script = join(root, 'dist', 'bench', 'hypervisor.js');
  const r = await sh(process.execPath, [script, '--seconds', String(o.seconds), '--json-only'], process.env);
  try {
    const doc = JSON.parse(r.stdout) as { ceilings: CopyCeiling[]; rows: HvRow[] };
    writeFileSync(join(o.out, 'hypervisor.json'), r.stdout);
    return { ceilings: doc.ceilings, rows: doc.rows };
  } catch {
    return { error: `${script} exited with ${r.code}: ${r.stderr.trim().slice(-300) || 'no JSON on its output'}` };
  }
}

// Interrupted: exit through process.exit so that the started vtgt is killed too (processes.ts).
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.error(`bench: ${signal}, stopping (a private tgtd still running is stopped with tgt-down.sh)`);
    process.exit(130);
  });
}

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
