/**
 * Control operations. Every mutation edits a copy of the running config, validates the result with
 * the same schema as vtgt.yaml, and hands it to `Runtime.apply`, so the CLI can never produce a state
 * that `config save` would write as an invalid file.
 */
import { configToYaml } from '../config/serialize.js';
import type { LunConfig, SecretSource, TargetConfig, VtgtConfig } from '../config/types.js';
import { LUN_MAX } from '../config/types.js';
import { checkChapSecret, checkIscsiName, checkObjectName, formatHostPort, formatSize, parseHostPort } from '../config/values.js';
import { DEFAULT_ISCSI_PORT } from '../config/schema.js';
import { backstoreForLun, backstoreFromArgs, firstFreeLun, checked, findTarget, mutate, size, usedBy, type Handler, type ServiceContext } from './mutate.js';
import { ibmvioHandlers } from './ops-ibmvio.js';
import { Args, ControlError } from './protocol.js';
import { buildShow } from './show.js';

export type { ServiceContext };

/** The LUN map a change applies to: the target's, or an ACL's own (created from the target's on first use). */
function lunList(t: TargetConfig, initiator: string | undefined): LunConfig[] {
  if (initiator === undefined) return t.luns;
  const acl = t.acls.find((x) => x.initiator === initiator);
  if (!acl) throw new ControlError('not_found', `target ${t.name} has no ACL for ${initiator}; create it with "vtgt acl create ${t.name} ${initiator}"`);
  return (acl.luns ??= t.luns.map((l) => ({ ...l })));
}

function authArgs(a: Args): { chap?: string; mutualChap?: string } {
  const chap = a.optStr('chap');
  const mutualChap = a.optStr('mutualChap');
  if (mutualChap !== undefined && chap === undefined) throw new ControlError('usage', '--mutual-chap needs --chap (the initiator authenticates first)');
  return { ...(chap ? { chap } : {}), ...(mutualChap ? { mutualChap } : {}) };
}

function checkAccounts(c: VtgtConfig, ...names: Array<string | undefined>): void {
  for (const acc of names) {
    if (acc !== undefined && !c.accounts.some((x) => x.name === acc)) {
      throw new ControlError('not_found', `no account ${acc}; create it with "vtgt account create ${acc} --user USER --secret-file FILE"`);
    }
  }
}

function secretFromArgs(a: Args): SecretSource {
  const s = a.optStr('secret');
  const f = a.optStr('secretFile');
  const e = a.optStr('secretEnv');
  const given = [s, f, e].filter((x) => x !== undefined).length;
  if (given !== 1) throw new ControlError('usage', 'give exactly one of --secret, --secret-file, --secret-env');
  if (s !== undefined) return { kind: 'inline', value: checked(s, checkChapSecret) };
  if (f !== undefined) return { kind: 'file', path: f };
  return { kind: 'env', name: e! };
}

const handlers: Record<string, Handler> = {
  async show(ctx) {
    return buildShow(ctx.runtime);
  },
  async stats(ctx) {
    return ctx.stats();
  },
  async ping() {
    return { pid: process.pid };
  },

  // --- targets
  async 'target.list'(ctx) {
    return ctx.runtime.config().targets.map((t) => ({ name: t.name, luns: t.luns.length, acls: t.acls.length }));
  },
  async 'target.create'(ctx, a) {
    const name = checked(a.str('name'), checkIscsiName);
    const tpgt = a.optInt('tpgt', 1, 65535);
    return mutate(ctx, (c) => {
      if (c.targets.some((t) => t.name === name)) throw new ControlError('exists', `target ${name} already exists`);
      c.targets.push({ name, luns: [], acls: [], ...(tpgt === undefined ? {} : { tpgt }) });
    });
  },
  async 'target.delete'(ctx, a) {
    const name = a.str('name');
    return mutate(ctx, (c) => {
      findTarget(c, name);
      c.targets = c.targets.filter((t) => t.name !== name);
    });
  },

  async 'target.auth'(ctx, a) {
    const name = a.str('name');
    const { chap, mutualChap } = authArgs(a);
    return mutate(ctx, (c) => {
      const t = findTarget(c, name);
      checkAccounts(c, chap, mutualChap);
      delete t.chap;
      delete t.mutualChap;
      if (chap) t.chap = chap;
      if (mutualChap) t.mutualChap = mutualChap;
      return chap ? `target ${name} requires CHAP (${chap}${mutualChap ? `, mutual ${mutualChap}` : ''}) for new logins` : `target ${name} no longer requires CHAP for new logins`;
    });
  },
  async 'discovery.auth'(ctx, a) {
    const { chap, mutualChap } = authArgs(a);
    return mutate(ctx, (c) => {
      checkAccounts(c, chap, mutualChap);
      delete c.iscsi.discoveryChap;
      delete c.iscsi.discoveryMutualChap;
      if (chap) c.iscsi.discoveryChap = chap;
      if (mutualChap) c.iscsi.discoveryMutualChap = mutualChap;
    });
  },

  // --- backstores
  async 'backstore.list'(ctx) {
    const c = ctx.runtime.config();
    return c.backstores.map((b) => ({ ...b, ...(b.size ? { size: formatSize(b.size) } : {}), usedBy: usedBy(c, b.name) }));
  },
  async 'backstore.create'(ctx, a) {
    return mutate(ctx, (c) => {
      c.backstores.push(backstoreFromArgs(c, a));
    });
  },
  async 'backstore.delete'(ctx, a) {
    const name = a.str('name');
    return mutate(ctx, (c) => {
      if (!c.backstores.some((b) => b.name === name)) throw new ControlError('not_found', `no backstore ${name}`);
      const users = usedBy(c, name);
      if (users.length) throw new ControlError('busy', `backstore ${name} is mapped at ${users.join(', ')}; delete those LUNs first`);
      c.backstores = c.backstores.filter((b) => b.name !== name);
    });
  },

  async 'backstore.resize'(ctx, a) {
    const name = a.str('name');
    const sz = size(a.optStr('size'));
    const r = await ctx.runtime.resizeBackstore(name, sz);
    return {
      ...r,
      message: r.after === r.before ? `backstore ${name} is still ${formatSize(r.after)}` : `backstore ${name} grew from ${formatSize(r.before)} to ${formatSize(r.after)}; initiators were told (CAPACITY DATA HAS CHANGED)`,
    };
  },

  async 'backstore.clear-reservations'(ctx, a) {
    const name = a.str('name');
    const rb = ctx.runtime.backstores.get(name);
    if (!rb) throw new ControlError('not_found', `no backstore ${name}; "vtgt backstore list" shows them`);
    const core = ctx.runtime.platform.core;
    if (!core.clearReservations) throw new ControlError('failed', 'this build of the SCSI core cannot clear reservations');
    await core.clearReservations(rb.lu.id);
    return { message: `persistent reservations and registrations of ${name} cleared; registrants get RESERVATIONS PREEMPTED` };
  },

  // --- LUNs
  async 'lun.list'(ctx, a) {
    const c = ctx.runtime.config();
    const only = a.optStr('target');
    const targets = only ? [findTarget(c, only)] : c.targets;
    return targets.flatMap((t) => t.luns.map((l) => ({ target: t.name, ...l })));
  },
  async 'lun.create'(ctx, a) {
    const target = a.str('target');
    const initiator = a.optStr('initiator');
    const wanted = a.optInt('lun', 0, LUN_MAX);
    return mutate(ctx, (c) => {
      const t = findTarget(c, target);
      const luns = lunList(t, initiator);
      const backstore = backstoreForLun(c, a);
      const lun = wanted ?? firstFreeLun(luns);
      if (wanted !== undefined && luns.some((l) => l.lun === lun)) {
        throw new ControlError('exists', `LUN ${lun} of ${target}${initiator ? ` for ${initiator}` : ''} is already mapped (to ${luns.find((l) => l.lun === lun)!.backstore})`);
      }
      luns.push({ lun, backstore });
      luns.sort((x, y) => x.lun - y.lun);
      return `LUN ${lun} -> ${backstore}`;
    });
  },
  async 'lun.delete'(ctx, a) {
    const target = a.str('target');
    const lun = a.int('lun', 0, LUN_MAX);
    const initiator = a.optStr('initiator');
    const keep = a.bool('keepBackstore');
    return mutate(ctx, (c) => {
      const t = findTarget(c, target);
      const luns = lunList(t, initiator);
      const i = luns.findIndex((l) => l.lun === lun);
      if (i < 0) throw new ControlError('not_found', `${target} has no LUN ${lun}${initiator ? ` for ${initiator}` : ''}`);
      const [gone] = luns.splice(i, 1);
      // A backstore nobody maps any more is closed too: its LU is drained and flushed first.
      if (!keep && usedBy(c, gone!.backstore).length === 0) {
        c.backstores = c.backstores.filter((b) => b.name !== gone!.backstore);
        return `LUN ${lun} removed; backstore ${gone!.backstore} closed (its file is kept)`;
      }
      return `LUN ${lun} removed`;
    });
  },

  // --- portals
  async 'portal.list'(ctx) {
    return [...ctx.runtime.portals.values()].map((p) => ({
      address: formatHostPort(p.config.host, p.config.port),
      listening: formatHostPort(p.bound.host, p.bound.port),
      ...(p.config.tpgt === undefined ? {} : { tpgt: p.config.tpgt }),
    }));
  },
  async 'portal.create'(ctx, a) {
    const hp = parseHostPort(a.str('address'), DEFAULT_ISCSI_PORT);
    if (typeof hp === 'string') throw new ControlError('usage', hp);
    const tpgt = a.optInt('tpgt', 1, 65535);
    return mutate(ctx, (c) => {
      if (c.iscsi.portals.some((p) => p.host === hp.host && p.port === hp.port && p.port !== 0)) throw new ControlError('exists', `portal ${formatHostPort(hp.host, hp.port)} already exists`);
      c.iscsi.portals.push(tpgt === undefined ? hp : { ...hp, tpgt });
    });
  },
  async 'portal.delete'(ctx, a) {
    const hp = parseHostPort(a.str('address'), DEFAULT_ISCSI_PORT);
    if (typeof hp === 'string') throw new ControlError('usage', hp);
    return mutate(ctx, (c) => {
      // Match the configured address or the bound one (for portals configured with port 0).
      const bound = [...ctx.runtime.portals.values()].find((p) => p.bound.host === hp.host && p.bound.port === hp.port);
      let i = c.iscsi.portals.findIndex((p) => p.host === hp.host && p.port === hp.port);
      if (i < 0 && bound) i = c.iscsi.portals.lastIndexOf(bound.config);
      if (i < 0 && bound) i = c.iscsi.portals.findIndex((p) => p.host === bound.config.host && p.port === bound.config.port && p.tpgt === bound.config.tpgt);
      if (i < 0) throw new ControlError('not_found', `no portal ${formatHostPort(hp.host, hp.port)}; "vtgt portal list" shows them`);
      if (bound && bound.config.port === 0) ctx.runtime.portalLeavesNext(bound.bound.host, bound.bound.port);
      c.iscsi.portals.splice(i, 1);
    });
  },

  // --- ACLs
  async 'acl.list'(ctx, a) {
    const c = ctx.runtime.config();
    const only = a.optStr('target');
    const targets = only ? [findTarget(c, only)] : c.targets;
    return targets.flatMap((t) => t.acls.map((acl) => ({ target: t.name, ...acl })));
  },
  async 'acl.create'(ctx, a) {
    const target = a.str('target');
    const initiator = checked(a.str('initiator'), checkIscsiName);
    const chap = a.optStr('chap');
    const mutualChap = a.optStr('mutualChap');
    const addresses = a.strList('addresses');
    return mutate(ctx, (c) => {
      const t = findTarget(c, target);
      if (t.acls.some((x) => x.initiator === initiator)) throw new ControlError('exists', `target ${target} already has an ACL for ${initiator}`);
      checkAccounts(c, chap, mutualChap);
      t.acls.push({ initiator, ...(addresses?.length ? { addresses } : {}), ...(chap ? { chap } : {}), ...(mutualChap ? { mutualChap } : {}) });
      if (t.acls.length === 1) return `target ${target} now admits only the initiators in its ACLs`;
    });
  },
  async 'acl.delete'(ctx, a) {
    const target = a.str('target');
    const initiator = a.str('initiator');
    return mutate(ctx, (c) => {
      const t = findTarget(c, target);
      if (!t.acls.some((x) => x.initiator === initiator)) throw new ControlError('not_found', `target ${target} has no ACL for ${initiator}`);
      t.acls = t.acls.filter((x) => x.initiator !== initiator);
      if (t.acls.length === 0) return `target ${target} has no ACLs left: every initiator may log in`;
    });
  },

  // --- CHAP accounts
  async 'account.list'(ctx) {
    return ctx.runtime.config().accounts.map((acc) => ({
      name: acc.name,
      user: acc.user,
      secret: acc.secret.kind === 'inline' ? '(in config)' : acc.secret.kind === 'file' ? `file ${acc.secret.path}` : `env ${acc.secret.name}`,
    }));
  },
  async 'account.create'(ctx, a) {
    const name = checked(a.str('name'), checkObjectName);
    const user = a.str('user');
    const secret = secretFromArgs(a);
    return mutate(ctx, (c) => {
      if (c.accounts.some((x) => x.name === name)) throw new ControlError('exists', `account ${name} already exists`);
      c.accounts.push({ name, user, secret });
    });
  },
  async 'account.delete'(ctx, a) {
    const name = a.str('name');
    return mutate(ctx, (c) => {
      if (!c.accounts.some((x) => x.name === name)) throw new ControlError('not_found', `no account ${name}`);
      const users = c.targets.flatMap((t) => [
        ...(t.chap === name || t.mutualChap === name ? [t.name] : []),
        ...t.acls.filter((x) => x.chap === name || x.mutualChap === name).map((x) => `${t.name} ACL ${x.initiator}`),
      ]);
      if (c.iscsi.discoveryChap === name || c.iscsi.discoveryMutualChap === name) users.push('discovery');
      if (users.length) throw new ControlError('busy', `account ${name} is used by ${users.join(', ')}; remove it there first`);
      c.accounts = c.accounts.filter((x) => x.name !== name);
    });
  },

  // --- config files
  async 'config.save'(ctx, a) {
    return { path: await ctx.save(a.optStr('path')) };
  },
  async 'config.load'(ctx, a) {
    const dryRun = a.bool('dryRun');
    const changes = await ctx.load(a.optStr('path'), dryRun);
    return dryRun ? { changes, message: changes.length ? 'would apply (dry run, nothing changed):' : 'the file matches the running configuration' } : { changes };
  },
  async 'config.show'(ctx) {
    return { yaml: configToYaml(ctx.runtime.config()), path: ctx.configPath };
  },
};

Object.assign(handlers, ibmvioHandlers);

export const OPS = Object.keys(handlers);

export async function dispatch(ctx: ServiceContext, op: string, args: Record<string, unknown>): Promise<unknown> {
  const h = handlers[op];
  if (!h) throw new ControlError('usage', `unknown operation "${op}"; known: ${OPS.join(', ')}`);
  return h(ctx, new Args(args));
}
