/**
 * What the service needs from the other layers (SCSI core, backstores, iSCSI server), as structural
 * interfaces. `loadPlatform()` binds them to the real modules; tests may pass their own.
 *
 * The real modules are imported by computed path so the service builds and its own tests run while the
 * core and fabric layers are still being written; a missing module turns into a clear startup error.
 */
import type { Logger } from 'pino';
import type { Backstore } from '../backstores/backstore.js';
import type { LunMap } from '../vscsi/lun-map.js';
import type { ScsiTarget } from '../vscsi/target.js';
import type { CoreStats } from '../vscsi/stats.js';

export interface BackstoreSpec {
  type: 'file' | 'block' | 'memory' | 'null';
  name: string;
  path?: string;
  size?: number;
  blockSize?: 512 | 4096;
  readOnly?: boolean;
  cacheMode?: 'writeback' | 'writethrough';
  direct?: boolean;
  removable?: boolean;
}

/** A logical unit as registered with the core; only its identity matters to the service. */
export interface LogicalUnitHandle {
  readonly id: string;
}

export interface CoreApi {
  addLogicalUnit(opts: { id: string; backstore: Backstore }): LogicalUnitHandle;
  /** Unmaps the LU everywhere (REPORTED LUNS DATA HAS CHANGED), drains its I/O, then forgets it. */
  removeLogicalUnit(id: string): Promise<void> | void;
  createTarget(opts: { name: string }): ScsiTarget;
  removeTarget?(name: string): Promise<void> | void;
  stats(): CoreStats;
}

export interface ChapCredentials {
  user: string;
  secret: string;
}
export interface IscsiAcl {
  initiator: string;
  addresses?: string[];
  lunMap?: LunMap;
  chap?: ChapCredentials;
  mutualChap?: ChapCredentials;
}
export interface IscsiTargetSpec {
  target: ScsiTarget;
  tpgt?: number;
  acls?: IscsiAcl[];
  chap?: ChapCredentials;
  mutualChap?: ChapCredentials;
  params?: Record<string, string>;
}
/** Whatever the iSCSI server reports per session; shown as-is by `vtgt show` / `vtgt stats`. */
export type IscsiSessionInfo = Record<string, unknown>;

export interface IscsiApi {
  addPortal(p: { host: string; port: number; tpgt?: number }): Promise<{ host: string; port: number }>;
  removePortal(host: string, port: number): Promise<void>;
  addTarget(spec: IscsiTargetSpec): void;
  updateTarget(spec: IscsiTargetSpec): void;
  removeTarget(name: string): Promise<void>;
  setDiscoveryAuth(chap?: ChapCredentials, mutual?: ChapCredentials): void;
  sessions(): IscsiSessionInfo[];
  requestLogoutAll(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

export interface Platform {
  core: CoreApi;
  createBackstore(spec: BackstoreSpec): Promise<Backstore>;
  createIscsi(opts: { logger: Logger; nopInterval?: number; nopTimeout?: number }): IscsiApi;
}

async function importModule(rel: string, what: string): Promise<Record<string, unknown>> {
  const url = new URL(rel, import.meta.url).href;
  try {
    return (await import(url)) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`cannot load the ${what} (${rel}): ${(e as Error).message}. Run "npm run build" and check the build output.`);
  }
}

function member<T>(mod: Record<string, unknown>, name: string, what: string): T {
  const v = mod[name];
  if (v === undefined) throw new Error(`the ${what} does not export ${name}; this build of vtgt is incomplete`);
  return v as T;
}

export async function loadPlatform(logger: Logger): Promise<Platform> {
  const coreMod = await importModule('../vscsi/core.js', 'SCSI core');
  const storeMod = await importModule('../backstores/index.js', 'backstore module');
  const iscsiMod = await importModule('../iscsi/server.js', 'iSCSI server');
  const ScsiCore = member<new (opts: { logger: Logger }) => CoreApi>(coreMod, 'ScsiCore', 'SCSI core');
  const createBackstore = member<(spec: BackstoreSpec) => Backstore | Promise<Backstore>>(storeMod, 'createBackstore', 'backstore module');
  const IscsiServer = member<new (opts: Record<string, unknown>) => IscsiApi>(iscsiMod, 'IscsiServer', 'iSCSI server');
  const core = new ScsiCore({ logger: logger.child({ component: 'core' }) });
  return {
    core,
    createBackstore: async (spec) => createBackstore(spec),
    createIscsi: (opts) => new IscsiServer({ core, ...opts }),
  };
}
