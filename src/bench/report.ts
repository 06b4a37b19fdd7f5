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
    '| vtgt µs CPU/IO | tgt µs CPU/IO | runs v/t | errors v/t |\n' +
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n';
  return (
    head +
    rows
      .map(
        (r) =>
          `| ${r.backing} | ${r.workload} | ${r.tool} | ${fmt(r.vtgt.iops)} | ${fmt(r.tgt.iops)} | ${fmt(r.ratio, 2)} | ` +
          `${fmt(r.vtgt.mibS, 1)} | ${fmt(r.tgt.mibS, 1)} | ${fmt(r.vtgt.latUs, 1)} | ${fmt(r.tgt.latUs, 1)} | ` +
          `${fmt(r.vtgt.cpuSecondsPerIo && r.vtgt.cpuSecondsPerIo * 1e6, 1)} | ${fmt(r.tgt.cpuSecondsPerIo && r.tgt.cpuSecondsPerIo * 1e6, 1)} | ` +
          `${r.runs.vtgt}/${r.runs.tgt} | ${r.errors.vtgt}/${r.errors.tgt} |`,
      )
      .join('\n') +
    '\n'
  );
}
