/**
 * The running state of the service and the one way to change it: `apply(next)` brings backstores,
 * logical units, targets, LUN maps, ACLs, portals and fabric sections from the current config to
 * `next`, touching only what differs, so sessions on unaffected targets keep running (SIGHUP reload,
 * `vtgt config load` and every CLI mutation go through here).
 */
import { mkdir, truncate } from 'node:fs/promises';
import { isDeepStrictEqual } from 'node:util';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Backstore } from '../backstores/backstore.js';
import { LunMap } from '../vscsi/lun-map.js';
import type { ScsiTarget } from '../vscsi/target.js';
import type { LogicalUnit } from '../vscsi/logical-unit.js';
import { guardBackstore, type GuardedBackstore } from './backstore-guard.js';
import { resolveSecret } from './config/secrets.js';
import { cloneConfig } from './config/serialize.js';
import { DEFAULT_BUSY_POLL_MICROS, type AccountConfig, type BackstoreConfig, type LunConfig, type PortalConfig, type TargetConfig, type VtgtConfig } from './config/types.js';
import { formatHostPort } from './config/values.js';
import { fabricSection, type FabricRuntimeContext } from './fabrics/index.js';
import type { ChapCredentials, IscsiApi, IscsiTargetSpec, LogicalUnitHandle, Platform } from './platform.js';
import { DEFAULT_JOURNAL_CAPACITY } from '../vscsi/atomic-journal.js';

export interface RunningBackstore {
  config: BackstoreConfig;
  store: GuardedBackstore;
  lu: LogicalUnitHandle;
}

export interface RunningTarget {
  config: TargetConfig;
  target: ScsiTarget;
  /** Per-initiator LUN maps of ACLs that have their own `luns`. */
  aclMaps: Map<string, LunMap>;
  /** The iSCSI server knows the target (addTarget succeeded). */
  inIscsi: boolean;
}

export interface RunningPortal {
  config: PortalConfig;
  bound: { host: string; port: number };
}

/** Raised when a desired state cannot be applied; nothing of the failing step was left half-done. */
export class ApplyError extends Error {
  override name = 'ApplyError';
}

export class Runtime {
  readonly backstores = new Map<string, RunningBackstore>();
  readonly targets = new Map<string, RunningTarget>();
  readonly portals = new Map<string, RunningPortal>();
  readonly iscsi: IscsiApi;
  private current: VtgtConfig;
  /** Serialises applies: a SIGHUP during a CLI change waits its turn. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly fabricCtx: FabricRuntimeContext;

  constructor(
    readonly platform: Platform,
    readonly dataDir: string,
    private readonly logger: Logger,
    initialIscsi: { nopInterval?: number; nopTimeout?: number; iscsiThreads?: number } = {},
  ) {
    this.iscsi = platform.createIscsi({ logger: logger.child({ component: 'iscsi' }), ...initialIscsi });
    this.current = { backstores: [], targets: [], accounts: [], iscsi: { portals: [] }, metrics: {}, log: { level: 'info' }, fabrics: {} };
    this.fabricCtx = {
      core: platform.core,
      logger,
      dataDir,
      logicalUnit: (name) => this.backstores.get(name)?.lu,
    };
  }

  /** The config the running state reflects (a copy: callers edit it and pass it back to `apply`). */
  config(): VtgtConfig {
    return cloneConfig(this.current);
  }

  /**
   * Bring the running state to `next`. If a step fails (a port in use, an image that cannot be
   * opened), the previous configuration is applied again so the service keeps running as before.
   */
  apply(next: VtgtConfig): Promise<string[]> {
    const run = this.queue.then(async () => {
      const before = cloneConfig(this.current);
      try {
        return await this.applyNow(cloneConfig(next));
      } catch (e) {
        try {
          this.current = await this.stateAfterFailure(before);
        } catch (e2) {
          this.logger.error({ err: e2 }, 'restoring the previous configuration after a failed change also failed; check "vtgt show"');
        }
        throw e;
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Re-apply `before` on top of whatever the failed apply left; returns what is now running. */
  private async stateAfterFailure(before: VtgtConfig): Promise<VtgtConfig> {
    // `current` still describes the state before the failed apply, but the maps may have moved on:
    // mark everything as unknown so the re-apply compares against the real objects.
    this.current = { ...before, accounts: [], iscsi: { ...before.iscsi, discoveryChap: undefined, discoveryMutualChap: undefined } } as VtgtConfig;
    await this.applyNow(before, true);
    return before;
  }

  private get prDir(): string {
    return join(this.dataDir, 'pr');
  }

  /** Absolute path of a file backstore (relative paths live in the data directory). */
  backstorePath(b: BackstoreConfig): string | undefined {
    if (b.path === undefined) return undefined;
    return b.type === 'file' && !isAbsolute(b.path) ? resolve(this.dataDir, b.path) : b.path;
  }

  private busyPollApplied = false;

  private applyBusyPoll(prev: VtgtConfig, next: VtgtConfig, changes: string[]): void {
    const want = next.performance?.busyPollMicros ?? DEFAULT_BUSY_POLL_MICROS;
    const had = prev.performance?.busyPollMicros ?? DEFAULT_BUSY_POLL_MICROS;
    const threadsWanted = next.performance?.iscsiThreads;
    if (this.busyPollApplied && threadsWanted !== prev.performance?.iscsiThreads) {
      // Connections already on a thread cannot be moved back or elsewhere while they run.
      this.logger.warn({ iscsiThreads: threadsWanted }, 'performance.iscsiThreads changes take effect when the service restarts');
    }
    if (this.busyPollApplied && want === had) return;
    try {
      this.platform.setBusyPoll?.(want);
      this.busyPollApplied = true;
      if (want !== had) changes.push(`busy polling ${want === 0 ? 'off' : `up to ${want} µs`}`);
    } catch (err) {
      // Only latency depends on it: serve without it rather than refuse the configuration.
      this.logger.warn({ err }, 'event-loop busy polling is unavailable; serving without it (higher latency at low queue depth)');
    }
  }

  private async applyNow(next: VtgtConfig, rollingBack = false): Promise<string[]> {
    const changes: string[] = [];
    const prev = this.current;
    // 1. Everything that can fail without side effects: secrets, then opening new/changed stores.
    const creds = this.resolveAccounts(next.accounts);
    const changedStores = next.backstores.filter((b) => {
      const old = this.backstores.get(b.name);
      if (!old) return true;
      // The size of an existing image only matters when it is created (growing is `backstore resize`).
      if (b.type === 'file' && isDeepStrictEqual({ ...old.config, size: undefined }, { ...b, size: undefined })) {
        old.config = b;
        return false;
      }
      return !isDeepStrictEqual(old.config, b);
    });
    if (changedStores.length) await mkdir(this.prDir, { recursive: true, mode: 0o700 });
    const opened = new Map<string, GuardedBackstore>();
    try {
      for (const b of changedStores) opened.set(b.name, await this.openBackstore(b));
    } catch (e) {
      await Promise.all([...opened.values()].map((s) => s.close().catch(() => undefined)));
      throw e;
    }

    // 2. Targets that go away or whose LUNs point at stores being replaced lose those mappings first.
    const nextTargets = new Map(next.targets.map((t) => [t.name, t]));
    for (const name of [...this.targets.keys()]) {
      if (!nextTargets.has(name)) {
        if (this.targets.get(name)!.inIscsi) await this.iscsi.removeTarget(name);
        await this.platform.core.removeTarget?.(name);
        this.targets.delete(name);
        changes.push(`removed target ${name}`);
      }
    }
    const nextStores = new Map(next.backstores.map((b) => [b.name, b]));
    for (const [name, rb] of [...this.backstores]) {
      if (nextStores.has(name) && !opened.has(name)) continue;
      // Removing the LU unmaps it from every map (the core raises REPORTED LUNS DATA HAS CHANGED)
      // and waits for its in-flight commands before the store is flushed and closed.
      await this.platform.core.removeLogicalUnit(rb.lu.id);
      await this.closeStore(rb.store);
      this.backstores.delete(name);
      if (!nextStores.has(name)) changes.push(`removed backstore ${name}`);
    }
    for (const [name, store] of opened) {
      // APTPL persistent reservations survive restarts in the data directory.
      const cfg = nextStores.get(name)!;
      const { serial, physicalBlockSize } = cfg;
      // Persistent stores get an intent journal so WRITE ATOMIC stays all-or-nothing across a crash.
      const journal = cfg.type === 'file' || cfg.type === 'block' ? join(this.dataDir, 'atomic', `${name}.journal`) : undefined;
      // Memory and null stores keep nothing across a crash, so no write can be torn by one; against
      // other commands the core's range lock makes any WRITE ATOMIC whole. The limit journaled stores get.
      const maxAtomicWriteBytes = cfg.maxAtomicWriteBytes ?? (cfg.type === 'memory' || cfg.type === 'null' ? DEFAULT_JOURNAL_CAPACITY : undefined);
      if (journal) await mkdir(dirname(journal), { recursive: true, mode: 0o700 });
      let lu: LogicalUnitHandle;
      try {
        lu = this.platform.core.addLogicalUnit({
          id: name,
          backstore: store,
          prStatePath: join(this.prDir, `${name}.json`),
          ...(serial === undefined ? {} : { serial }),
          ...(physicalBlockSize === undefined ? {} : { physicalBlockSize }),
          ...(maxAtomicWriteBytes === undefined ? {} : { maxAtomicWriteBytes }),
          ...(journal === undefined ? {} : { atomicJournalPath: journal }),
        });
      } catch (e) {
        // Stores not registered yet would never be closed: close them before giving up.
        for (const [n, s] of opened) if (!this.backstores.has(n)) await s.close().catch(() => undefined);
        throw new ApplyError(`backstore ${name}: ${(e as Error).message}`);
      }
      const existed = prev.backstores.some((b) => b.name === name);
      this.backstores.set(name, { config: nextStores.get(name)!, store, lu });
      changes.push(`${existed ? 'replaced' : 'added'} ${store.describe}`);
    }

    // 3. Targets: LUN maps first (initiators see the change as a unit attention), then fabric specs.
    for (const t of next.targets) {
      let rt = this.targets.get(t.name);
      const isNew = !rt;
      if (!rt) {
        rt = { config: t, target: this.platform.core.createTarget({ name: t.name }), aclMaps: new Map(), inIscsi: false };
        this.targets.set(t.name, rt);
      }
      const lunChanges = this.syncLunMap(rt.target.luns, t.luns);
      const aclMapChanged = this.syncAclMaps(rt, t);
      const spec = this.iscsiSpec(rt, t, creds);
      if (isNew || !rt.inIscsi) {
        this.iscsi.addTarget(spec);
        rt.inIscsi = true;
        if (isNew) changes.push(`added target ${t.name}`);
      } else if (aclMapChanged || !isDeepStrictEqual(withoutLuns(rt.config), withoutLuns(t)) || accountsChanged(prev, next, t)) {
        this.iscsi.updateTarget(spec);
        changes.push(`updated target ${t.name}`);
      }
      for (const c of lunChanges) changes.push(`target ${t.name}: ${c}`);
      rt.config = t;
    }

    // 4. Portals and discovery authentication.
    await this.syncPortals(next.iscsi.portals, changes);
    const dc = next.iscsi.discoveryChap;
    const dm = next.iscsi.discoveryMutualChap;
    if (dc !== prev.iscsi.discoveryChap || dm !== prev.iscsi.discoveryMutualChap || (dc && accountChanged(prev, next, dc)) || (dm && accountChanged(prev, next, dm))) {
      this.iscsi.setDiscoveryAuth(dc ? creds.get(dc) : undefined, dm ? creds.get(dm) : undefined);
      changes.push(dc ? `discovery requires CHAP account ${dc}` : 'discovery open to all initiators');
    }

    // 5. Fabric sections.
    const replaced = [...opened.keys()].filter((n) => prev.backstores.some((b) => b.name === n));
    const keys = new Set([...Object.keys(prev.fabrics), ...Object.keys(next.fabrics)]);
    for (const key of keys) {
      const a = prev.fabrics[key];
      const b = next.fabrics[key];
      if (isDeepStrictEqual(a, b)) {
        if (b !== undefined && replaced.length) await fabricSection(key)?.backstoresReplaced?.(this.fabricCtx, b, replaced);
        continue;
      }
      const mod = fabricSection(key);
      if (!mod) throw new ApplyError(`no fabric module for the "${key}" section in this build`);
      await mod.apply(this.fabricCtx, a, b);
      changes.push(`${key}: ${a === undefined ? 'started' : b === undefined ? 'stopped' : 'updated'}`);
    }

    this.applyBusyPoll(prev, next, changes);
    this.current = next;
    if (rollingBack) this.logger.warn({ changes }, 'the change failed; the previous configuration is running again');
    else if (changes.length) this.logger.info({ changes }, `configuration applied (${changes.length} change${changes.length === 1 ? '' : 's'})`);
    return changes;
  }

  private resolveAccounts(accounts: AccountConfig[]): Map<string, ChapCredentials> {
    const out = new Map<string, ChapCredentials>();
    for (const a of accounts) {
      const r = resolveSecret(a.secret, this.dataDir);
      if (!r.ok) throw new ApplyError(`account ${a.name}: ${r.error}`);
      if (r.warning) this.logger.warn({ account: a.name }, r.warning);
      out.set(a.name, { user: a.user, secret: r.value });
    }
    return out;
  }

  private async openBackstore(b: BackstoreConfig): Promise<GuardedBackstore> {
    const path = this.backstorePath(b);
    // A missing image file is created sparse (thin) with the configured size by the backstore,
    // which also fsyncs the file and its directory.
    if (b.type === 'file' && path) await mkdir(dirname(path), { recursive: true });
    try {
      const { serial: _serial, physicalBlockSize: _pbs, maxAtomicWriteBytes: _maw, ...storeSpec } = b; // LU properties, not the store's
      const spec = { ...storeSpec, ...(path === undefined ? {} : { path }) };
      const store: Backstore = await this.platform.createBackstore(spec);
      return guardBackstore(store, this.logger.child({ component: 'backstore' }));
    } catch (e) {
      const where = path ? ` at ${path}` : '';
      throw new ApplyError(`cannot open backstore ${b.name} (${b.type}${where}): ${(e as Error).message}`);
    }
  }

  private async closeStore(store: Backstore): Promise<void> {
    try {
      await store.flush();
    } catch (e) {
      this.logger.error({ backstore: store.name, err: e }, `flushing backstore ${store.name} (${store.describe}) before closing it failed; recent writes may be lost`);
    }
    await store.close().catch((e: unknown) => this.logger.warn({ backstore: store.name, err: e }, `closing backstore ${store.name} failed`));
  }

  /** Makes `map` hold exactly `luns`; returns a description of each change. */
  private syncLunMap(map: LunMap, luns: LunConfig[]): string[] {
    const out: string[] = [];
    const want = new Map(luns.map((l) => [l.lun, l.backstore]));
    for (const n of map.lunNumbers()) {
      if (!want.has(n)) {
        map.delete(n);
        out.push(`unmapped LUN ${n}`);
      }
    }
    for (const [n, name] of want) {
      const lu = this.backstores.get(name)?.lu as unknown as LogicalUnit | undefined;
      if (!lu) throw new ApplyError(`LUN ${n} refers to backstore ${name}, which is not open`);
      if (map.get(n) !== lu) {
        map.set(n, lu);
        out.push(`mapped LUN ${n} to ${name}`);
      }
    }
    return out;
  }

  private syncAclMaps(rt: RunningTarget, t: TargetConfig): boolean {
    let changed = false;
    const want = new Map(t.acls.filter((a) => a.luns).map((a) => [a.initiator, a.luns!]));
    for (const ini of [...rt.aclMaps.keys()]) {
      if (!want.has(ini)) {
        rt.aclMaps.delete(ini);
        changed = true;
      }
    }
    for (const [ini, luns] of want) {
      let map = rt.aclMaps.get(ini);
      if (!map) {
        map = new LunMap();
        rt.aclMaps.set(ini, map);
        changed = true;
      }
      this.syncLunMap(map, luns);
    }
    return changed;
  }

  private iscsiSpec(rt: RunningTarget, t: TargetConfig, creds: Map<string, ChapCredentials>): IscsiTargetSpec {
    const spec: IscsiTargetSpec = {
      target: rt.target,
      acls: t.acls.map((a) => ({
        initiator: a.initiator,
        ...(a.addresses ? { addresses: a.addresses } : {}),
        ...(rt.aclMaps.has(a.initiator) ? { lunMap: rt.aclMaps.get(a.initiator)! } : {}),
        ...(a.chap ? { chap: creds.get(a.chap)! } : {}),
        ...(a.mutualChap ? { mutualChap: creds.get(a.mutualChap)! } : {}),
      })),
    };
    if (t.tpgt !== undefined) spec.tpgt = t.tpgt;
    if (t.chap) spec.chap = creds.get(t.chap)!;
    if (t.mutualChap) spec.mutualChap = creds.get(t.mutualChap)!;
    if (t.params) spec.params = t.params;
    return spec;
  }

  /**
   * Portals configured with port 0 on one address have equal configs, so the next apply closes the
   * last-numbered one when one of them leaves the config. Before removing the one bound to
   * `host:port`, give it that last number (the configs being equal, nothing else changes).
   */
  portalLeavesNext(host: string, port: number): void {
    const entries = [...this.portals];
    const target = entries.find(([, rp]) => rp.bound.host === host && rp.bound.port === port);
    if (!target) return;
    const prefix = target[0].slice(0, target[0].lastIndexOf('#') + 1);
    const num = (k: string) => Number(k.slice(prefix.length));
    const last = entries.filter(([k]) => k.startsWith(prefix)).reduce((a, b) => (num(b[0]) > num(a[0]) ? b : a));
    if (last[0] === target[0]) return;
    const moving = target[1];
    this.portals.set(target[0], last[1]);
    this.portals.set(last[0], moving);
  }

  private async syncPortals(want: PortalConfig[], changes: string[]): Promise<void> {
    // Several "port 0" portals on one address are distinct listeners: number them.
    const seen = new Map<string, number>();
    const key = (p: PortalConfig) => {
      const k = `${formatHostPort(p.host, p.port)}/${p.tpgt ?? 1}`;
      const n = (seen.get(k) ?? 0) + 1;
      seen.set(k, n);
      return `${k}#${n}`;
    };
    const wanted = new Map(want.map((p) => [key(p), p]));
    for (const [k, rp] of [...this.portals]) {
      if (wanted.has(k)) continue;
      await this.iscsi.removePortal(rp.bound.host, rp.bound.port);
      this.portals.delete(k);
      changes.push(`removed portal ${formatHostPort(rp.bound.host, rp.bound.port)}`);
    }
    for (const [k, p] of wanted) {
      if (this.portals.has(k)) continue;
      try {
        const bound = await this.iscsi.addPortal(p.tpgt === undefined ? { host: p.host, port: p.port } : { host: p.host, port: p.port, tpgt: p.tpgt });
        this.portals.set(k, { config: p, bound });
        changes.push(`listening on ${formatHostPort(bound.host, bound.port)}`);
      } catch (e) {
        const msg = (e as Error).message ?? '';
        const code = (e as NodeJS.ErrnoException).code ?? /\b(EADDRINUSE|EACCES|EADDRNOTAVAIL)\b/.exec(msg)?.[1];
        const hint = code === 'EADDRINUSE' ? ' (another process listens there: stop it or choose another port)' : code === 'EACCES' ? ' (ports below 1024 need root or CAP_NET_BIND_SERVICE)' : code === 'EADDRNOTAVAIL' ? ' (no interface has this address)' : '';
        const what = msg.startsWith('cannot listen') ? msg.replace(/^cannot listen for iSCSI on [^:]+:\d+: /, '') : msg;
        throw new ApplyError(`cannot listen on iSCSI portal ${formatHostPort(p.host, p.port)}: ${what}${hint}`);
      }
    }
  }

  /**
   * Grow a backstore in place: optionally extend its image file to `size`, re-read the size and
   * tell initiators (CAPACITY DATA HAS CHANGED). The LU, its sessions and reservations stay.
   */
  resizeBackstore(name: string, size?: number): Promise<{ before: number; after: number }> {
    const run = this.queue.then(async () => {
      const rb = this.backstores.get(name);
      if (!rb) throw new ApplyError(`no backstore ${name}`);
      const before = rb.store.sizeBytes;
      if (size !== undefined) {
        if (rb.config.type !== 'file') throw new ApplyError(`backstore ${name} is ${rb.config.type}: only file images can be grown by vtgt; grow the device, then run the command without --size`);
        if (size % rb.store.blockSize !== 0) throw new ApplyError(`size ${size} is not a multiple of the block size ${rb.store.blockSize}`);
        if (size < before) throw new ApplyError(`backstore ${name} is ${before} bytes; shrinking would cut off data initiators may use, so it is refused`);
        const path = this.backstorePath(rb.config)!;
        try {
          await truncate(path, size);
        } catch (e) {
          throw new ApplyError(`cannot grow ${path} to ${size} bytes: ${(e as Error).message}`);
        }
      }
      const after = await rb.store.refreshSize();
      if (after !== before) this.platform.core.capacityChanged?.(rb.lu as never);
      // The running config follows the new size (without reopening the store) so `config save` keeps it.
      if (rb.config.size !== undefined || size !== undefined) {
        rb.config = { ...rb.config, size: after };
        this.current.backstores = this.current.backstores.map((b) => (b.name === name ? rb.config : b));
      }
      this.logger.info({ backstore: name, before, after }, `backstore ${name} resized`);
      return { before, after };
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Graceful stop: no new logins, initiators asked to log out, LUs drained, stores flushed and closed. */
  async shutdown(logoutTimeoutMs: number): Promise<void> {
    await this.queue;
    // Stop accepting first (established sessions stay), then ask initiators to log out; close()
    // ends whatever did not log out in time.
    for (const rp of this.portals.values()) {
      await this.iscsi.removePortal(rp.bound.host, rp.bound.port).catch((e: unknown) => this.logger.warn({ err: e }, 'closing a portal failed'));
    }
    this.portals.clear();
    for (const [key, value] of Object.entries(this.current.fabrics)) {
      const mod = fabricSection(key);
      try {
        if (mod?.shutdown) await mod.shutdown(this.fabricCtx, value);
        else await mod?.apply(this.fabricCtx, value, undefined);
      } catch (e) {
        this.logger.warn({ err: e, fabric: key }, `stopping the ${key} fabric failed`);
      }
    }
    await this.iscsi.requestLogoutAll(logoutTimeoutMs).catch((e: unknown) => this.logger.warn({ err: e }, 'asking initiators to log out failed'));
    await this.iscsi.close();
    for (const rb of this.backstores.values()) {
      await Promise.resolve(this.platform.core.removeLogicalUnit(rb.lu.id)).catch(() => undefined);
      await this.closeStore(rb.store);
    }
    if (this.backstores.size) this.logger.info({ backstores: [...this.backstores.keys()] }, 'backstores flushed and closed');
    this.backstores.clear();
  }

  /** Flush every write-back store (before exit, and for `vtgt stats`-independent durability checks). */
  async flushAll(): Promise<void> {
    await Promise.all([...this.backstores.values()].map((rb) => rb.store.flush()));
  }
}

function withoutLuns(t: TargetConfig): unknown {
  return { ...t, luns: undefined, acls: t.acls.map((a) => ({ ...a, luns: a.luns ? true : undefined })) };
}

function accountChanged(prev: VtgtConfig, next: VtgtConfig, name: string): boolean {
  return !isDeepStrictEqual(
    prev.accounts.find((a) => a.name === name),
    next.accounts.find((a) => a.name === name),
  );
}

function accountsChanged(prev: VtgtConfig, next: VtgtConfig, t: TargetConfig): boolean {
  const names = [t.chap, t.mutualChap, ...t.acls.flatMap((a) => [a.chap, a.mutualChap])].filter((n): n is string => !!n);
  return names.some((n) => accountChanged(prev, next, n));
}
