/** Medians per (backing, workload, target) and the vtgt/tgt comparison table. */

export interface WorkloadRecord {
  target: 'vtgt' | 'tgt';
  backing: string;
  workload: string;
  tool: string;
  iops?: number;
  mib_s?: number;
  lat_us?: number;
  target_cpu_s?: number | null;
  ios?: number;
  /** 1-minute load average when the run started (a busy shared machine makes runs noisy). */
  loadavg?: number;
  /** Many-sessions workloads: Jain's fairness index over the per-session rates. */
  fairness?: number;
  max_rss_bytes?: number;
  /** Many-sessions workloads: total I/Os / wall time, and the length of the all-sessions-active window. */
  wall_iops?: number;
  window_s?: number;
  error?: string;
}

export interface ComparisonRow {
  backing: string;
  workload: string;
  tool: string;
  runs: { vtgt: number; tgt: number };
  errors: { vtgt: number; tgt: number };
  vtgt: Summary;
  tgt: Summary;
  /** vtgt IOPS / tgt IOPS (medians). */
  ratio: number | undefined;
  /** tgt CPU-s per I/O divided by vtgt's: > 1 means vtgt spends less target CPU per I/O. */
  cpuEfficiencyRatio: number | undefined;
}

export interface Summary {
  iops?: number;
  mibS?: number;
  latUs?: number;
  cpuSecondsPerIo?: number;
  loadavg?: number;
  fairness?: number;
  maxRssBytes?: number;
}

export function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1]! + s[mid]!) / 2;
}

function summarize(rs: WorkloadRecord[]): Summary {
  const ok = rs.filter((r) => r.error === undefined && r.iops !== undefined);
  const pick = (f: (r: WorkloadRecord) => number | undefined) =>
    median(ok.map(f).filter((v): v is number => v !== undefined && Number.isFinite(v)));
  return {
    iops: pick((r) => r.iops),
    mibS: pick((r) => r.mib_s),
    latUs: pick((r) => r.lat_us),
    cpuSecondsPerIo: pick((r) => (r.target_cpu_s && r.ios ? r.target_cpu_s / r.ios : undefined)),
    loadavg: pick((r) => r.loadavg),
    fairness: pick((r) => r.fairness),
    maxRssBytes: ok.reduce<number | undefined>((m, r) => (r.max_rss_bytes !== undefined && (m === undefined || r.max_rss_bytes > m) ? r.max_rss_bytes : m), undefined),
  };
}

export function compare(records: WorkloadRecord[]): ComparisonRow[] {
  const keys: string[] = [];
  const groups = new Map<string, WorkloadRecord[]>();
  for (const r of records) {
    const k = `${r.backing}\u0000${r.workload}\u0000${r.tool}`;
    if (!groups.has(k)) {
      groups.set(k, []);
      keys.push(k);
    }
    groups.get(k)!.push(r);
  }
  return keys.map((k) => {
    const [backing, workload, tool] = k.split('\u0000') as [string, string, string];
    const rs = groups.get(k)!;
    const of = (t: 'vtgt' | 'tgt') => rs.filter((r) => r.target === t);
    const vtgt = summarize(of('vtgt'));
    const tgt = summarize(of('tgt'));
    return {
      backing,
      workload,
      tool,
      runs: { vtgt: of('vtgt').length, tgt: of('tgt').length },
      errors: { vtgt: of('vtgt').filter((r) => r.error).length, tgt: of('tgt').filter((r) => r.error).length },
      vtgt,
      tgt,
      ratio: vtgt.iops !== undefined && tgt.iops ? vtgt.iops / tgt.iops : undefined,
      cpuEfficiencyRatio: vtgt.cpuSecondsPerIo && tgt.cpuSecondsPerIo ? tgt.cpuSecondsPerIo / vtgt.cpuSecondsPerIo : undefined,
    };
  });
}

const fmt = (v: number | undefined, digits = 0) =>
  v === undefined ? '–' : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

export function markdownTable(rows: ComparisonRow[]): string {
  const head =
    '| backing | workload | tool | vtgt IOPS | tgt IOPS | vtgt/tgt | vtgt MiB/s | tgt MiB/s | vtgt lat µs | tgt lat µs ' +
    '| vtgt µs CPU/IO | tgt µs CPU/IO | runs v/t | errors v/t | load v/t |\n' +
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n';
  return (
    head +
    rows
      .map(
        (r) =>
          `| ${r.backing} | ${r.workload} | ${r.tool} | ${fmt(r.vtgt.iops)} | ${fmt(r.tgt.iops)} | ${fmt(r.ratio, 2)} | ` +
          `${fmt(r.vtgt.mibS, 1)} | ${fmt(r.tgt.mibS, 1)} | ${fmt(r.vtgt.latUs, 1)} | ${fmt(r.tgt.latUs, 1)} | ` +
          `${fmt(r.vtgt.cpuSecondsPerIo && r.vtgt.cpuSecondsPerIo * 1e6, 1)} | ${fmt(r.tgt.cpuSecondsPerIo && r.tgt.cpuSecondsPerIo * 1e6, 1)} | ` +
          `${r.runs.vtgt}/${r.runs.tgt} | ${r.errors.vtgt}/${r.errors.tgt} | ${fmt(r.vtgt.loadavg, 1)}/${fmt(r.tgt.loadavg, 1)} |`,
      )
      .join('\n') +
    '\n'
  );
}

export interface TargetCheck {
  goal: string;
  backing: string;
  result: 'met' | 'not met' | 'no data';
  detail: string;
}

export interface TargetOptions {
  /** Loopback TCP bandwidth of this machine in MiB/s (iperf3 single stream); the issue's figure by default. */
  loopbackMiBs?: number;
  /** Where `loopbackMiBs` came from, shown with the check (e.g. "iperf3 3.12, ... in this run"). */
  loopbackSource?: string;
}

/** The issue-7 targets, checked against one run's comparison rows. */
export function evaluateTargets(rows: ComparisonRow[], opts: TargetOptions = {}): TargetCheck[] {
  const out: TargetCheck[] = [];
  const verdict = (ok: boolean | undefined): TargetCheck['result'] => (ok === undefined ? 'no data' : ok ? 'met' : 'not met');
  const backings = [...new Set(rows.map((r) => r.backing))];
  for (const b of backings) {
    const mine = rows.filter((r) => r.backing === b);
    for (const r of mine) {
      out.push({
        goal: `IOPS ≥ 1.0× tgt: ${r.workload} (${r.tool})`,
        backing: b,
        result: verdict(r.ratio === undefined ? undefined : r.ratio >= 1),
        detail: `ratio ${fmt(r.ratio, 2)}`,
      });
      out.push({
        goal: `less target CPU per I/O than tgt: ${r.workload} (${r.tool})`,
        backing: b,
        result: verdict(r.cpuEfficiencyRatio === undefined ? undefined : r.cpuEfficiencyRatio >= 1),
        detail: `vtgt ${fmt(r.vtgt.cpuSecondsPerIo && r.vtgt.cpuSecondsPerIo * 1e6, 1)} µs vs tgt ${fmt(r.tgt.cpuSecondsPerIo && r.tgt.cpuSecondsPerIo * 1e6, 1)} µs`,
      });
    }
    const qd1 = mine.find((r) => r.workload === 'randread_4k_qd1' && r.tool === 'iscsi-perf');
    if (qd1) {
      const v = qd1.vtgt.latUs;
      const t = qd1.tgt.latUs;
      out.push({
        goal: 'QD1 latency no worse than tgt',
        backing: b,
        result: verdict(v === undefined || t === undefined ? undefined : v <= t),
        detail: `vtgt ${fmt(v, 1)} µs vs tgt ${fmt(t, 1)} µs`,
      });
    }
    const seq = mine.find((r) => r.workload === 'seqread_128k_qd8' && r.tool === 'iscsi-perf');
    if (seq && b === 'null') {
      const ref = opts.loopbackMiBs ?? 1.8 * 1024;
      const v = seq.vtgt.mibS;
      out.push({
        goal: '128 KiB sequential read from a null LUN ≥ 70 % of loopback TCP',
        backing: b,
        result: verdict(v === undefined ? undefined : v >= 0.7 * ref),
        detail: `${fmt(v, 0)} MiB/s = ${fmt(v === undefined ? undefined : (100 * v) / ref, 0)} % of ${fmt(ref, 0)} MiB/s${
          opts.loopbackSource ? ` (${opts.loopbackSource})` : ''
        }`,
      });
    }
    const many = mine
      .map((r) => ({ r, n: Number(/^mixed_4k_qd32_(\d+)sessions$/.exec(r.workload)?.[1]) }))
      .filter((x) => Number.isFinite(x.n))
      .sort((a, b2) => a.n - b2.n);
    if (many.length >= 2) {
      const lo = many[0]!;
      const hi = many[many.length - 1]!;
      const a = lo.r.vtgt.iops;
      const z = hi.r.vtgt.iops;
      out.push({
        goal: `${hi.n} sessions within 10 % of ${lo.n} sessions (vtgt)`,
        backing: b,
        result: verdict(a === undefined || z === undefined ? undefined : z >= 0.9 * a),
        detail: `${fmt(z)} vs ${fmt(a)} IOPS (${fmt(a && z !== undefined ? (100 * z) / a : undefined, 0)} %), max RSS ${fmt(
          hi.r.vtgt.maxRssBytes && hi.r.vtgt.maxRssBytes / 2 ** 20,
        )} MiB`,
      });
    }
  }
  return out;
}

export function targetsMarkdown(checks: TargetCheck[]): string {
  return (
    '| goal | backing | result | detail |\n|---|---|---|---|\n' +
    checks.map((c) => `| ${c.goal} | ${c.backing} | ${c.result === 'met' ? '**met**' : c.result} | ${c.detail} |`).join('\n') +
    '\n'
  );
}
