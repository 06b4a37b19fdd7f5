import type { DomUReport } from './frontend-main.js';

export interface DomUTotals {
  /** Sums over the normal domUs only. */
  commands: number;
  errors: number;
  bytesVerified: number;
  /** Attacks the hostile domUs saw answered wrongly. */
  hostileFailures: number;
}

/** Appends every domU's report lines to `lines` and adds up the normal and hostile outcomes. */
export function tallyDomUReports(reports: readonly DomUReport[], lines: string[]): DomUTotals {
  const t: DomUTotals = { commands: 0, errors: 0, bytesVerified: 0, hostileFailures: 0 };
  for (const r of reports) {
    lines.push(...r.lines);
    if (r.role === 'normal') {
      t.commands += r.commands;
      t.errors += r.errors;
      t.bytesVerified += r.bytesVerified;
    } else {
      t.hostileFailures += r.errors;
    }
  }
  return t;
}
