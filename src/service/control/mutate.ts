/**
 * The read-modify-validate-apply step every control mutation goes through, and the argument helpers
 * the operation modules share.
 */
import { basename, extname } from 'node:path';
import { parseConfig } from '../config/schema.js';
import { configToYaml } from '../config/serialize.js';
import type { BackstoreConfig, BackstoreType, TargetConfig, VtgtConfig } from '../config/types.js';
import { checkObjectName, parseSize, parseSizeOrZero } from '../config/values.js';
import type { Runtime } from '../runtime.js';
import { ControlError, type Args } from './protocol.js';

export interface ServiceContext {
  runtime: Runtime;
  dataDir: string;
  configPath: string;
  /** Load a config file (default: the service's), validate it and apply the difference (or only describe it). */
  load(path?: string, dryRun?: boolean): Promise<string[]>;
  /** Save the running config atomically (default: the service's config file); returns the path. */
  save(path?: string): Promise<string>;
  stats(): unknown;
}

export type Handler = (ctx: ServiceContext, a: Args) => Promise<unknown>;

/** Read-modify-apply runs one at a time per service, so two scripts adding LUNs at once both win. */
const mutations = new WeakMap<ServiceContext, Promise<unknown>>();

export function mutate(ctx: ServiceContext, edit: (c: VtgtConfig) => string | void): Promise<{ changes: string[]; message?: string }> {
  const run = (mutations.get(ctx) ?? Promise.resolve()).then(() => mutateNow(ctx, edit));
  mutations.set(ctx, run.catch(() => undefined));
  return run;
}

async function mutateNow(ctx: ServiceContext, edit: (c: VtgtConfig) => string | void): Promise<{ changes: string[]; message?: string }> {
  const cfg = ctx.runtime.config();
  const message = edit(cfg) ?? undefined;
  const check = parseConfig('(running configuration)', configToYaml(cfg), { baseDir: ctx.dataDir });
  if (!check.ok) {
    throw new ControlError('invalid', check.issues.map((i) => `${i.path ? `${i.path}: ` : ''}${i.message}`).join('; '));
  }
  const changes = await ctx.runtime.apply(check.config);
  return message ? { changes, message } : { changes };
}

export function findTarget(c: VtgtConfig, name: string): TargetConfig {
  const t = c.targets.find((x) => x.name === name);
  if (!t) throw new ControlError('not_found', `no target ${name}; "vtgt target list" shows the targets`);
  return t;
}

export function checked(v: string, check: (s: string) => string | undefined): string {
  const bad = check(v);
  if (bad) throw new ControlError('usage', bad);
  return v;
}

export function size(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const s = parseSize(v);
  if (typeof s === 'string') throw new ControlError('usage', s);
  return s;
}

/**
 * The backstore a `lun create` maps: the existing one named by `--backstore`, or a new one described by
 * the other arguments (added to the config). Returns its name.
 */
export function backstoreForLun(c: VtgtConfig, a: Args): string {
  const existing = a.optStr('backstore');
  if (existing !== undefined) {
    if (!c.backstores.some((b) => b.name === existing)) throw new ControlError('not_found', `no backstore ${existing}; "vtgt backstore list" shows them`);
    return existing;
  }
  const b = backstoreFromArgs(c, a);
  c.backstores.push(b);
  return b.name;
}

/** The lowest LUN number not yet in `luns`. */
export function firstFreeLun(luns: ReadonlyArray<{ lun: number }>): number {
  let lun = 0;
  while (luns.some((l) => l.lun === lun)) lun++;
  return lun;
}

/** Backstore described inline by `lun create` / `backstore create` arguments. */
export function backstoreFromArgs(c: VtgtConfig, a: Args, nameHint?: string): BackstoreConfig {
  const type = a.str('type') as BackstoreType;
  if (!['file', 'block', 'memory', 'null'].includes(type)) throw new ControlError('usage', `backstore type "${type}" is not one of file, block, memory, null`);
  const path = a.optStr('path');
  let name = a.optStr('name') ?? nameHint;
  if (name === undefined) {
    const base = path ? basename(path, extname(path)).replace(/[^A-Za-z0-9_.-]/g, '_') || type : type;
    name = base;
    for (let i = 1; c.backstores.some((b) => b.name === name); i++) name = `${base}${i}`;
  }
  checked(name, checkObjectName);
  if (c.backstores.some((b) => b.name === name)) throw new ControlError('exists', `backstore ${name} already exists; choose another --name or map it with --backstore ${name}`);
  const b: BackstoreConfig = { name, type };
  if (path !== undefined) b.path = path;
  const sz = size(a.optStr('size'));
  if (sz !== undefined) b.size = sz;
  const bs = a.optInt('blockSize', 512, 4096);
  if (bs !== undefined) {
    if (bs !== 512 && bs !== 4096) throw new ControlError('usage', 'block size must be 512 or 4096');
    b.blockSize = bs;
  }
  if (a.bool('readOnly')) b.readOnly = true;
  const cm = a.optStr('cacheMode');
  if (cm !== undefined) {
    if (cm !== 'writeback' && cm !== 'writethrough') throw new ControlError('usage', 'cache mode must be writeback or writethrough');
    b.cacheMode = cm;
  }
  if (a.bool('direct')) b.direct = true;
  const window = a.optStr('deviceWindow');
  if (window !== undefined) {
    if (!b.direct) throw new ControlError('usage', '--device-window applies to O_DIRECT backstores only; add --direct');
    const w = parseSizeOrZero(window);
    if (typeof w === 'string') throw new ControlError('usage', w);
    b.deviceWindowBytes = w;
  }
  if (a.bool('removable')) b.removable = true;
  const serial = a.optStr('serial');
  if (serial !== undefined) b.serial = serial; // checked with the rest by the schema
  if (b.size !== undefined && b.size % (b.blockSize ?? 512) !== 0) {
    throw new ControlError('usage', `size ${b.size} is not a multiple of the block size ${b.blockSize ?? 512}`);
  }
  if ((type === 'file' || type === 'block') && !path) throw new ControlError('usage', `a ${type} backstore needs a path`);
  if ((type === 'memory' || type === 'null') && b.size === undefined) throw new ControlError('usage', `a ${type} backstore needs a size (e.g. 1GiB)`);
  return b;
}

export function usedBy(c: VtgtConfig, backstore: string): string[] {
  const out: string[] = [];
  for (const t of c.targets) {
    for (const l of t.luns) if (l.backstore === backstore) out.push(`${t.name} LUN ${l.lun}`);
    for (const acl of t.acls) for (const l of acl.luns ?? []) if (l.backstore === backstore) out.push(`${t.name} ACL ${acl.initiator} LUN ${l.lun}`);
  }
  // Fabric sections map backstores as {lun, backstore} entries somewhere inside (ibmvio adapters ...).
  for (const [key, value] of Object.entries(c.fabrics)) {
    const walk = (v: unknown, where: string): void => {
      if (Array.isArray(v)) v.forEach((x) => walk(x, where));
      else if (v && typeof v === 'object') {
        const o = v as Record<string, unknown>;
        const here = typeof o.name === 'string' ? `${where} ${o.name}` : where;
        if (o.backstore === backstore) out.push(`${here}${typeof o.lun === 'number' ? ` LUN ${o.lun}` : ''}`);
        for (const x of Object.values(o)) if (x && typeof x === 'object') walk(x, here);
      }
    };
    walk(value, key);
  }
  return out;
}

