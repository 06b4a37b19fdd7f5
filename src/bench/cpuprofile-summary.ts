/**
 * Summarize a V8 `.cpuprofile` (from `node --cpu-prof`): time per function, self and inclusive, as
 * the text tables kept in profiles/. Usage:
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof bin/vtgt.js serve --config c.yaml --data d   # load it, stop it
 *   node dist/bench/cpuprofile-summary.js /tmp/prof/CPU.*.cpuprofile [top=40] [--inclusive]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface FunctionTime {
  /** "name file:line" (paths shortened to what follows dist/ or node_modules/). */
  key: string;
  micros: number;
  share: number;
}

export interface ProfileSummary {
  totalMicros: number;
  self: FunctionTime[];
  inclusive: FunctionTime[];
}

function keyOf(f: CallFrame): string {
  const url = f.url.replace(/^file:\/\//, '').replace(/^.*\/(dist|node_modules)\//, '$1/');
  return `${f.functionName || '(anonymous)'} ${url}:${f.lineNumber + 1}`;
}

/** Self and inclusive time per function, largest first. A function that recurses counts once per sample. */
export function summarizeProfile(p: CpuProfile): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const perNode = new Map<number, number>();
  p.samples.forEach((id, i) => perNode.set(id, (perNode.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const self = new Map<string, number>();
  const incl = new Map<string, number>();
  let total = 0;
  for (const [id, t] of perNode) {
    total += t;
    const node = byId.get(id);
    if (!node) continue;
    const k = keyOf(node.callFrame);
    self.set(k, (self.get(k) ?? 0) + t);
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const ck = keyOf(byId.get(cur)!.callFrame);
      if (seen.has(ck)) continue;
      seen.add(ck);
      incl.set(ck, (incl.get(ck) ?? 0) + t);
    }
  }
  const rank = (m: Map<string, number>): FunctionTime[] =>
    [...m].sort((a, b) => b[1] - a[1]).map(([key, micros]) => ({ key, micros, share: total ? micros / total : 0 }));
  return { totalMicros: total, self: rank(self), inclusive: rank(incl) };
}

export function formatSummary(s: ProfileSummary, top: number, inclusive: boolean): string {
  const table = (title: string, rows: FunctionTime[]) =>
    `== ${title} (${(s.totalMicros / 1e6).toFixed(2)} s sampled)\n` +
    rows
      .slice(0, top)
      .map((r) => `${(100 * r.share).toFixed(1).padStart(5)}%  ${r.key}`)
      .join('\n');
  return [table('self time', s.self), ...(inclusive ? [table('inclusive time', s.inclusive)] : [])].join('\n') + '\n';
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [file, topArg, ...rest] = process.argv.slice(2);
  if (!file) {
    console.error('usage: cpuprofile-summary FILE.cpuprofile [top=40] [--inclusive]');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  process.stdout.write(formatSummary(summarizeProfile(profile), Number(topArg ?? 40) || 40, rest.includes('--inclusive') || topArg === '--inclusive'));
}
