/**
 * A stand-in for the core, backstores and iSCSI server that records what the service asks of them.
 * It lets the service's own tests (reconciler, control socket, CLI) run without the other layers;
 * the end-to-end tests use the real platform through `vtgt serve`.
 */
import { Buffer } from 'node:buffer';
import { createServer, type Server } from 'node:net';
import type { Backstore, CacheMode } from '../../backstores/backstore.js';
import { ScsiTarget } from '../../vscsi/target.js';
import { newLuStats, type CoreStats, type LuStats } from '../../vscsi/stats.js';
import type { BackstoreSpec, CoreApi, IscsiApi, IscsiSessionInfo, IscsiTargetSpec, LogicalUnitHandle, Platform } from '../platform.js';

export class MemoryStore implements Backstore {
  readonly data: Buffer;
  readonly describe: string;
  readonly blockSize: 512 | 4096;
  readonly readOnly: boolean;
  readonly cacheMode: CacheMode;
  readonly capabilities = { discard: false, discardZeroes: false, lbaStatus: false, thinProvisioned: false, removable: false };
  flushes = 0;
  closed = false;
  failWith: Error | undefined;

  constructor(readonly spec: BackstoreSpec) {
    this.data = Buffer.alloc(Math.min(spec.size ?? 1 << 20, 1 << 20));
    this.describe = spec.path ? `${spec.type} ${spec.path}` : `${spec.type} store`;
    this.blockSize = spec.blockSize ?? 512;
    this.readOnly = spec.readOnly ?? false;
    this.cacheMode = spec.cacheMode ?? 'writeback';
  }
  get name(): string {
    return this.spec.name;
  }
  get sizeBytes(): number {
    return this.spec.size ?? this.data.length;
  }
  async read(offset: number, length: number): Promise<Buffer> {
    if (this.failWith) throw this.failWith;
    return Buffer.from(this.data.subarray(offset, offset + length));
  }
  async write(offset: number, data: Buffer): Promise<void> {
    if (this.failWith) throw this.failWith;
    data.copy(this.data, offset);
  }
  async flush(): Promise<void> {
    this.flushes++;
  }
  async discard(): Promise<void> {}
  async writeZeroes(): Promise<void> {}
  async mapStatus(offset: number, length: number) {
    return [{ offset, length, mapped: true }];
  }
  async refreshSize(): Promise<number> {
    return this.sizeBytes;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

export class FakeCore implements CoreApi {
  readonly lus = new Map<string, { id: string; backstore: Backstore; stats: LuStats }>();
  readonly targets = new Map<string, ScsiTarget>();
  readonly log: string[] = [];

  addLogicalUnit(opts: { id: string; backstore: Backstore }): LogicalUnitHandle {
    if (this.lus.has(opts.id)) throw new Error(`logical unit ${opts.id} exists`);
    const lu = { id: opts.id, backstore: opts.backstore, stats: newLuStats() };
    this.lus.set(opts.id, lu);
    this.log.push(`add-lu ${opts.id}`);
    return lu;
  }
  async removeLogicalUnit(id: string): Promise<void> {
    const lu = this.lus.get(id);
    if (!lu) throw new Error(`no logical unit ${id}`);
    for (const t of this.targets.values()) t.luns.deleteUnit(lu as never);
    this.lus.delete(id);
    this.log.push(`remove-lu ${id}`);
  }
  createTarget(opts: { name: string }): ScsiTarget {
    const t = new ScsiTarget(opts.name);
    this.targets.set(opts.name, t);
    this.log.push(`create-target ${opts.name}`);
    return t;
  }
  removeTarget(name: string): void {
    this.targets.delete(name);
    this.log.push(`remove-target ${name}`);
  }
  stats(): CoreStats {
    return { logicalUnits: Object.fromEntries([...this.lus].map(([id, l]) => [id, l.stats])), nexuses: 0, activeCommands: 0 };
  }
}

export class FakeIscsi implements IscsiApi {
  readonly servers = new Map<string, Server>();
  readonly targets = new Map<string, IscsiTargetSpec>();
  readonly log: string[] = [];
  discovery: unknown;
  closed = false;
  loggedOut = false;

  async addPortal(p: { host: string; port: number }): Promise<{ host: string; port: number }> {
    const s = createServer((c) => c.destroy());
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(p.port, p.host, () => resolve());
    });
    const a = s.address() as { address: string; port: number };
    this.servers.set(`${a.address}:${a.port}`, s);
    this.log.push(`add-portal ${a.address}:${a.port}`);
    return { host: a.address, port: a.port };
  }
  async removePortal(host: string, port: number): Promise<void> {
    const s = this.servers.get(`${host}:${port}`);
    if (!s) throw new Error(`no iSCSI portal on ${host}:${port}`);
    this.servers.delete(`${host}:${port}`);
    this.log.push(`remove-portal ${host}:${port}`);
    await new Promise<void>((r) => (s ? s.close(() => r()) : r()));
  }
  /** Name of a target addTarget() should refuse (to test roll-back). */
  refuse: string | undefined;

  addTarget(spec: IscsiTargetSpec): void {
    if (spec.target.name === this.refuse) throw new Error(`target ${spec.target.name} refused by the test`);
    this.targets.set(spec.target.name, spec);
    this.log.push(`add-target ${spec.target.name}`);
  }
  updateTarget(spec: IscsiTargetSpec): void {
    this.targets.set(spec.target.name, spec);
    this.log.push(`update-target ${spec.target.name}`);
  }
  async removeTarget(name: string): Promise<void> {
    // Like the real server: removing an unknown target is an error.
    if (!this.targets.delete(name)) throw new Error(`iSCSI target ${name} does not exist`);
    this.log.push(`remove-target ${name}`);
  }
  setDiscoveryAuth(chap?: unknown, mutual?: unknown): void {
    this.discovery = { chap, mutual };
    this.log.push('set-discovery-auth');
  }
  sessions(): IscsiSessionInfo[] {
    return [];
  }
  async requestLogoutAll(): Promise<void> {
    this.loggedOut = true;
  }
  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.servers.values()) s.close();
    this.servers.clear();
  }
}

export interface FakePlatform extends Platform {
  core: FakeCore;
  iscsi: FakeIscsi;
  stores: MemoryStore[];
  /** Every busy-poll setting the runtime applied, in order. */
  busyPoll: number[];
}

export function fakePlatform(): FakePlatform {
  const core = new FakeCore();
  const iscsi = new FakeIscsi();
  const stores: MemoryStore[] = [];
  const busyPoll: number[] = [];
  return {
    core,
    iscsi,
    stores,
    busyPoll,
    setBusyPoll: (us) => void busyPoll.push(us),
    busyPollStats: () => (busyPoll.at(-1) ? { polls: 12, hits: 9, polledSeconds: 0.25, windowMicros: busyPoll.at(-1)!, skipped: 3, commandsPerWake: 1 } : null),
    ioEngineStats: () => ({ requests: { io_uring: 320, threadpool: 5 }, submissions: { io_uring: 11, threadpool: 5 }, inline: 40 }),
    async createBackstore(spec) {
      const s = new MemoryStore(spec);
      stores.push(s);
      return s;
    },
    createIscsi: () => iscsi,
  };
}
