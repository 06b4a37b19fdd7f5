/**
 * Typed reading of a YAML document with positions: every value is read through a `Field` that knows
 * its path (`targets[0].luns[1].lun`) and its node, so a problem is reported as
 * `FILE:LINE:COL: PATH: what is wrong (allowed: ...)` without ever throwing.
 */
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node, type Pair, type Document } from 'yaml';

export interface ConfigIssue {
  file: string;
  line: number;
  col: number;
  /** Dotted path of the offending value, '' for the document itself. */
  path: string;
  message: string;
}

export function formatIssue(i: ConfigIssue): string {
  return `${i.file}:${i.line}:${i.col}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
}

/** A value at a path; `node` is undefined for a missing key (then `parent` gives the position). */
export interface Field {
  path: string;
  node: Node | undefined;
  /** Node whose position a "missing" problem points at. */
  parent: Node | undefined;
  /** Key node of the pair this value came from, for "unknown key" style messages. */
  keyNode?: Node;
}

const describe = (v: unknown): string => {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (typeof v === 'object') return Array.isArray(v) ? 'a list' : 'a mapping';
  return String(v);
};

export class YamlReader {
  readonly issues: ConfigIssue[] = [];
  readonly lines: LineCounter;
  readonly doc: Document.Parsed;

  constructor(
    readonly file: string,
    text: string,
  ) {
    this.lines = new LineCounter();
    this.doc = parseDocument(text, { lineCounter: this.lines, prettyErrors: false, uniqueKeys: true });
    for (const e of [...this.doc.errors]) {
      const pos = this.lines.linePos(e.pos[0]);
      this.issues.push({ file, line: pos.line, col: pos.col, path: '', message: `YAML syntax: ${firstLine(e.message)}` });
    }
  }

  root(): Field {
    return { path: '', node: (this.doc.contents ?? undefined) as Node | undefined, parent: undefined };
  }

  /** Record a problem at a field (at its key for missing values). */
  problem(f: Field, message: string): void {
    const at = f.node ?? f.keyNode ?? f.parent;
    const offset = at?.range?.[0] ?? 0;
    const pos = this.lines.linePos(offset);
    this.issues.push({ file: this.file, line: pos.line, col: pos.col, path: f.path, message });
  }

  problemAtKey(f: Field, message: string): void {
    this.problem({ ...f, node: f.keyNode ?? f.node }, message);
  }

  /**
   * Read a mapping with a closed set of keys. Returns the fields by key (missing keys absent) or
   * undefined when the value is not a mapping. Unknown keys are reported with the allowed list.
   */
  mapping(f: Field, allowed: readonly string[], what = 'a mapping'): Map<string, Field> | undefined {
    if (!isMap(f.node)) {
      if (f.node === undefined) return undefined;
      // `metrics:` with nothing after it reads as an empty mapping.
      if (isScalar(f.node) && f.node.value === null) return new Map();
      this.problem(f, `expected ${what} (keys: ${allowed.join(', ')}), got ${describe(toJs(f.node))}`);
      return undefined;
    }
    const out = new Map<string, Field>();
    for (const pair of f.node.items as Pair<Node, Node>[]) {
      const keyNode = pair.key as Node;
      const key = isScalar(keyNode) ? String(keyNode.value) : undefined;
      const sub: Field = { path: join(f.path, key ?? '?'), node: pair.value ?? undefined, parent: keyNode, keyNode };
      if (key === undefined) {
        this.problem({ ...sub, node: keyNode }, 'keys must be plain words');
        continue;
      }
      if (!allowed.includes(key)) {
        const hint = closest(key, allowed);
        this.problemAtKey(sub, `unknown key "${key}"${hint ? ` (did you mean "${hint}"?)` : ''}; allowed: ${allowed.join(', ')}`);
        continue;
      }
      out.set(key, sub);
    }
    return out;
  }

  /** A field of a mapping read by `mapping()`, or a "missing" field positioned at the mapping. */
  child(m: Map<string, Field> | undefined, parent: Field, key: string): Field {
    return m?.get(key) ?? { path: join(parent.path, key), node: undefined, parent: parent.node };
  }

  required(f: Field, what: string): boolean {
    if (f.node === undefined || (isScalar(f.node) && f.node.value === null)) {
      this.problem(f, `missing (required: ${what})`);
      return false;
    }
    return true;
  }

  present(f: Field): boolean {
    return f.node !== undefined && !(isScalar(f.node) && f.node.value === null);
  }

  sequence(f: Field, what: string): Field[] | undefined {
    if (!this.present(f)) return [];
    if (!isSeq(f.node)) {
      this.problem(f, `expected a list of ${what}, got ${describe(toJs(f.node))}`);
      return undefined;
    }
    return (f.node.items as Node[]).map((n, i) => ({ path: `${f.path}[${i}]`, node: n, parent: f.node }));
  }

  string(f: Field, what: string, check?: (s: string) => string | undefined): string | undefined {
    if (!this.present(f)) return undefined;
    const v = isScalar(f.node) ? f.node.value : toJs(f.node);
    if (typeof v !== 'string' && typeof v !== 'number') {
      this.problem(f, `expected ${what}, got ${describe(v)}`);
      return undefined;
    }
    const s = String(v);
    const bad = check?.(s);
    if (bad !== undefined) {
      this.problem(f, bad);
      return undefined;
    }
    return s;
  }

  integer(f: Field, min: number, max: number, what = 'an integer'): number | undefined {
    if (!this.present(f)) return undefined;
    const v = isScalar(f.node) ? f.node.value : toJs(f.node);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.problem(f, `expected ${what} from ${min} to ${max}, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  boolean(f: Field): boolean | undefined {
    if (!this.present(f)) return undefined;
    const v = isScalar(f.node) ? f.node.value : toJs(f.node);
    if (typeof v !== 'boolean') {
      this.problem(f, `expected true or false, got ${describe(v)}`);
      return undefined;
    }
    return v;
  }

  oneOf<T extends string>(f: Field, values: readonly T[]): T | undefined {
    if (!this.present(f)) return undefined;
    const v = isScalar(f.node) ? f.node.value : toJs(f.node);
    if (typeof v !== 'string' && typeof v !== 'number') {
      this.problem(f, `expected one of ${values.join(', ')}, got ${describe(v)}`);
      return undefined;
    }
    const s = String(v) as T;
    if (!values.includes(s)) {
      this.problem(f, `"${s}" is not allowed; allowed: ${values.join(', ')}`);
      return undefined;
    }
    return s;
  }

  /** Plain JS value of a field (for fabric modules with free-form parameters). */
  value(f: Field): unknown {
    return f.node === undefined ? undefined : toJs(f.node);
  }
}

function toJs(n: Node | undefined): unknown {
  if (n === undefined) return undefined;
  try {
    return (n as { toJSON(): unknown }).toJSON();
  } catch {
    return undefined;
  }
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

/** The allowed key within edit distance 2, to turn typos into a hint. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
