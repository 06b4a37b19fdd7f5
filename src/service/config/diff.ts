/**
 * What applying a config would change, described for people (`vtgt config load --dry-run`): added,
 * removed and changed objects, without touching the running service.
 */
import { isDeepStrictEqual } from 'node:util';
import type { VtgtConfig } from './types.js';
import { formatHostPort } from './values.js';

function byName<T>(items: T[], key: (t: T) => string): Map<string, T> {
  return new Map(items.map((i) => [key(i), i]));
}

function compare<T>(what: string, a: T[], b: T[], key: (t: T) => string, out: string[], detail?: (x: T, y: T) => string[]): void {
  const am = byName(a, key);
  const bm = byName(b, key);
  for (const [k] of am) if (!bm.has(k)) out.push(`remove ${what} ${k}`);
  for (const [k, v] of bm) {
    const old = am.get(k);
    if (!old) out.push(`add ${what} ${k}`);
    else if (!isDeepStrictEqual(old, v)) {
      const d = detail?.(old, v) ?? [];
      out.push(`change ${what} ${k}${d.length ? `: ${d.join(', ')}` : ''}`);
    }
  }
}

/** Keys whose values differ between two plain objects (one level). */
function changedKeys(a: object, b: object): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => !isDeepStrictEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

export function describeConfigChange(from: VtgtConfig, to: VtgtConfig): string[] {
  const out: string[] = [];
  compare('backstore', from.backstores, to.backstores, (b) => b.name, out, (x, y) => changedKeys(x, y));
  compare('account', from.accounts, to.accounts, (a) => a.name, out, (x, y) => changedKeys(x, y));
  compare('target', from.targets, to.targets, (t) => t.name, out, (x, y) => changedKeys(x, y));
  compare('portal', from.iscsi.portals, to.iscsi.portals, (p) => `${formatHostPort(p.host, p.port)}${p.tpgt ? `/tpgt ${p.tpgt}` : ''}`, out);
  const { portals: _a, ...iscsiA } = from.iscsi;
  const { portals: _b, ...iscsiB } = to.iscsi;
  for (const k of changedKeys(iscsiA, iscsiB)) out.push(`change iscsi.${k}`);
  if (!isDeepStrictEqual(from.metrics, to.metrics)) out.push('change metrics (at the next start)');
  if (!isDeepStrictEqual(from.log, to.log)) out.push('change log (at the next start)');
  if (!isDeepStrictEqual(from.performance, to.performance)) out.push('change performance');
  for (const k of new Set([...Object.keys(from.fabrics), ...Object.keys(to.fabrics)])) {
    const a = from.fabrics[k];
    const b = to.fabrics[k];
    if (!isDeepStrictEqual(a, b)) out.push(`${a === undefined ? 'start' : b === undefined ? 'stop' : 'change'} ${k}`);
  }
  return out;
}
