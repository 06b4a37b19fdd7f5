/**
 * Arithmetic and rendering of the hypervisor-path benchmark: MiB/s of each emulated-guest workload
 * against the copy ceiling of the same transfer size (issue 7: goal >= 50 %).
 */

export type HvPath = 'ibmvio' | 'xen';

export interface HvMeasurement {
  path: HvPath;
  op: 'read' | 'write';
  pattern: 'random' | 'sequential';
  blockSize: number;
  queueDepth: number;
  commands: number;
  bytes: number;
  elapsedMs: number;
  bytesVerified: number;
  ok: boolean;
}

export interface CopyCeiling {
  blockSize: number;
  /** SharedRegion.copy (region to region, one call per transfer), MiB/s. */
  copyMiBs: number;
  /** SharedRegion.gather of the transfer as 4 KiB pages into a Buffer, MiB/s. */
  gatherMiBs: number;
}

export interface HvRow extends HvMeasurement {
  mibs: number;
  iops: number;
  ceilingMiBs: number;
  percentOfCeiling: number;
  meetsGoal: boolean;
}

export const GOAL_PERCENT = 50;

export function mibPerSecond(bytes: number, elapsedMs: number): number {
  return elapsedMs > 0 ? bytes / 1048576 / (elapsedMs / 1000) : 0;
}

export function percentOf(value: number, ceiling: number): number {
  return ceiling > 0 ? (100 * value) / ceiling : 0;
}

/** Rows with MiB/s, IOPS and % of the copy ceiling of the same size (0 % when no ceiling was measured). */
export function hvRows(ms: ReadonlyArray<HvMeasurement>, ceilings: ReadonlyArray<CopyCeiling>): HvRow[] {
  return ms.map((m) => {
    const mibs = mibPerSecond(m.bytes, m.elapsedMs);
    const ceilingMiBs = ceilings.find((c) => c.blockSize === m.blockSize)?.copyMiBs ?? 0;
    const pct = percentOf(mibs, ceilingMiBs);
    return {
      ...m,
      mibs,
      iops: m.elapsedMs > 0 ? m.commands / (m.elapsedMs / 1000) : 0,
      ceilingMiBs,
      percentOfCeiling: pct,
      meetsGoal: m.ok && pct >= GOAL_PERCENT,
    };
  });
}

const sizeName = (b: number) => (b % 1024 === 0 ? `${b / 1024}k` : `${b}`);
const fixed = (v: number, d: number) => (Number.isFinite(v) ? v.toFixed(d) : '-');

export function renderMarkdown(rows: ReadonlyArray<HvRow>, ceilings: ReadonlyArray<CopyCeiling>): string {
  const out = [
    '| path | workload | QD | IOPS | MiB/s | copy ceiling MiB/s | % of ceiling | verified | goal ≥ 50 % |',
    '|---|---|---:|---:|---:|---:|---:|---|---|',
  ];
  for (const r of rows) {
    out.push(
      `| ${r.path} | ${sizeName(r.blockSize)} ${r.pattern} ${r.op} | ${r.queueDepth} | ${fixed(r.iops, 0)} | ${fixed(r.mibs, 1)} | ` +
        `${fixed(r.ceilingMiBs, 0)} | ${fixed(r.percentOfCeiling, 1)} % | ${r.ok ? `yes (${fixed(r.bytesVerified / 1048576, 0)} MiB)` : 'FAILED'} | ${r.meetsGoal ? 'yes' : 'no'} |`,
    );
  }
  out.push('', '| size | SharedRegion.copy MiB/s | SharedRegion.gather (4 KiB pages) MiB/s |', '|---|---:|---:|');
  for (const c of ceilings) out.push(`| ${sizeName(c.blockSize)} | ${fixed(c.copyMiBs, 0)} | ${fixed(c.gatherMiBs, 0)} |`);
  return out.join('\n');
}

/** The issue's hypervisor-path goal, one check per emulated-guest workload (the harness's targets list). */
export function hypervisorChecks(rows: ReadonlyArray<HvRow>): Array<{ goal: string; backing: string; result: 'met' | 'not met'; detail: string }> {
  return rows.map((r) => ({
    goal: `≥ ${GOAL_PERCENT} % of the copy ceiling: ${r.path} ${sizeName(r.blockSize)} ${r.pattern} ${r.op}`,
    backing: 'memory (simulator)',
    result: r.meetsGoal ? 'met' : 'not met',
    detail: r.ok
      ? `${fixed(r.mibs, 1)} of ${fixed(r.ceilingMiBs, 0)} MiB/s = ${fixed(r.percentOfCeiling, 1)} % (QD ${r.queueDepth})`
      : 'run FAILED verification',
  }));
}
