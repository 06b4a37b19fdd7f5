/**
 * In-memory xenstore for the simulator: a tree of string nodes, watches that fire on a node or any
 * node below it (and once when set up, as xenstored does — docs/misc/xenstore.txt "WATCH"), and
 * optimistic transactions that fail with EAGAIN when the store changed since they began.
 * Write permissions are enforced by the daemon (`server.ts`), not here.
 */

export const XS_MAX_PATH = 3072;
export const XS_MAX_VALUE = 4096;

interface Node {
  value: string;
  children: Map<string, Node>;
}

export interface DbWatch {
  path: string;
  fire(changedPath: string): void;
}

export class XsError extends Error {
  constructor(
    readonly code: 'ENOENT' | 'EINVAL' | 'EAGAIN' | 'E2BIG',
    message: string,
  ) {
    super(message);
    this.name = 'XsError';
  }
}

/** Split and check an absolute path. */
export function splitPath(path: string): string[] {
  if (typeof path !== 'string' || !path.startsWith('/') || path.length > XS_MAX_PATH) {
    throw new XsError('EINVAL', `invalid xenstore path ${JSON.stringify(String(path).slice(0, 80))}`);
  }
  const parts = path.split('/').filter((p) => p.length > 0);
  for (const p of parts) {
    // docs/misc/xenstore.txt: path components are alphanumerics and "-_@".
    if (!/^[A-Za-z0-9_@-]+$/.test(p)) throw new XsError('EINVAL', `invalid xenstore path component ${JSON.stringify(p.slice(0, 40))}`);
  }
  return parts;
}

const isUnder = (path: string, root: string): boolean =>
  path === root || root === '/' || path.startsWith(root.endsWith('/') ? root : root + '/');

export type TxOp = { op: 'write'; path: string; value: string } | { op: 'rm'; path: string };

export class XenStoreDb {
  private root: Node = { value: '', children: new Map() };
  private readonly watches = new Set<DbWatch>();
  /** Bumped on every change; transactions compare it at commit. */
  generation = 0;

  read(path: string): string | undefined {
    return this.find(splitPath(path))?.value;
  }

  directory(path: string): string[] {
    const n = this.find(splitPath(path));
    return n ? [...n.children.keys()] : [];
  }

  exists(path: string): boolean {
    return this.find(splitPath(path)) !== undefined;
  }

  write(path: string, value: string): void {
    if (typeof value !== 'string' || value.length > XS_MAX_VALUE) throw new XsError('E2BIG', `value for ${path} too long`);
    let n = this.root;
    for (const p of splitPath(path)) {
      let c = n.children.get(p);
      if (!c) {
        c = { value: '', children: new Map() };
        n.children.set(p, c);
      }
      n = c;
    }
    n.value = value;
    this.changed(path);
  }

  rm(path: string): void {
    const parts = splitPath(path);
    if (parts.length === 0) throw new XsError('EINVAL', 'cannot remove /');
    const parent = this.find(parts.slice(0, -1));
    if (!parent || !parent.children.delete(parts[parts.length - 1]!)) return;
    this.changed(path);
  }

  /** Apply a transaction's writes atomically if nothing changed since `startGeneration`. */
  commit(startGeneration: number, ops: TxOp[]): void {
    if (this.generation !== startGeneration) throw new XsError('EAGAIN', 'transaction conflict');
    for (const op of ops) {
      if (op.op === 'write') this.write(op.path, op.value);
      else this.rm(op.path);
    }
  }

  /** Register a watch; it fires once right away. */
  watch(w: DbWatch): () => void {
    splitPath(w.path);
    this.watches.add(w);
    queueMicrotask(() => {
      if (this.watches.has(w)) w.fire(w.path);
    });
    return () => this.watches.delete(w);
  }

  private find(parts: string[]): Node | undefined {
    let n: Node | undefined = this.root;
    for (const p of parts) {
      n = n.children.get(p);
      if (!n) return undefined;
    }
    return n;
  }

  private changed(path: string): void {
    this.generation++;
    for (const w of [...this.watches]) {
      // A change at or below the watched node, or removal of one of its ancestors.
      if (isUnder(path, w.path)) w.fire(path);
      else if (isUnder(w.path, path)) w.fire(w.path);
    }
  }
}
