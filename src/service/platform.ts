/**
 * What the service needs from the other layers (SCSI core, backstores, iSCSI server), as narrow
 * interfaces the real classes satisfy. `loadPlatform()` binds them to the real modules; the service's
 * own tests pass a stand-in (./testing/fake-platform.ts).
 */
import type { Logger } from 'pino';
import type { Backstore } from '../backstores/backstore.js';
import { createBackstore as createRealBackstore } from '../backstores/index.js';
import { IscsiServer, type ChapCredentials, type IscsiAcl, type IscsiSessionInfo, type IscsiTargetSpec } from '../iscsi/server.js';
import { loadNative } from '../native/index.js';
import { ioEngineInfo, ioEngineInUse } from '../native/io.js';
import type { BusyPollCounters, IoEngineCounters } from './metrics.js';
import { ScsiCore } from '../vscsi/core.js';
import { ReservationManager } from '../vscsi/pr/index.js';
import type { ReservationFactory } from '../vscsi/reservation-port.js';
import type { ScsiTarget } from '../vscsi/target.js';
import type { CoreStats } from '../vscsi/stats.js';

export type { ChapCredentials, IscsiAcl, IscsiSessionInfo, IscsiTargetSpec };

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
  addLogicalUnit(opts: {
    id: string;
    backstore: Backstore;
    prStatePath?: string;
    serial?: string;
    physicalBlockSize?: number;
    maxAtomicWriteBytes?: number;
    atomicJournalPath?: string;
  }): LogicalUnitHandle;
  /** Unmaps the LU everywhere (REPORTED LUNS DATA HAS CHANGED), drains its I/O, then forgets it. */
  removeLogicalUnit(id: string): Promise<void> | void;
  /** The LU's backstore changed size: raise CAPACITY DATA HAS CHANGED on every nexus that sees it. */
  capacityChanged?(lu: never): void;
  /** Operator action: drop the LU's registrations and reservation, telling the registrants. */
  clearReservations?(luId: string): Promise<void>;
  createTarget(opts: { name: string }): ScsiTarget;
  removeTarget?(name: string): Promise<void> | void;
  stats(): CoreStats;
}

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
  createIscsi(opts: { logger: Logger; nopInterval?: number; nopTimeout?: number; iscsiThreads?: number }): IscsiApi;
  /** Adaptive event-loop polling before sleeping, in µs (0 = off); absent where there is no addon. */
  setBusyPoll?(maxMicros: number): void;
  busyPollStats?(): BusyPollCounters | null;
  ioEngineStats?(): IoEngineCounters | null;
}

export async function loadPlatform(logger: Logger): Promise<Platform> {
  const reservations = ((opts) => ReservationManager.open(opts)) as ReservationFactory;
  // [submitted, in flight], shared with the event-loop poller (native/src/busy_poll.cc).
  const commandCounter = new Float64Array(2);
  const core = new ScsiCore({ logger: logger.child({ component: 'core' }), reservations, commandCounter });
  const storeLogger = logger.child({ component: 'backstore' });
  return {
    core,
    createBackstore: async (spec) => createRealBackstore(spec, { logger: storeLogger }),
    createIscsi: ({ iscsiThreads, ...opts }) =>
      new IscsiServer({
        core,
        ...opts,
        ...(iscsiThreads
          ? {
              connectionThreads: {
                count: iscsiThreads,
                dupSocketFd: (fd: number) => loadNative().dupSocketFd(fd),
                logLevel: opts.logger.level,
                // The same choice createLogger made for the main thread (a worker's stderr is no terminal).
                prettyLogs: Boolean(process.stderr.isTTY),
                ...(process.env.VTGT_ISCSI_PLACEMENT === 'threads' ? { placement: 'threads' as const } : {}),
              },
            }
          : {}),
      }),
    setBusyPoll: (maxMicros) => {
      const native = loadNative();
      native.setBusyPollCommandCounter(commandCounter);
      native.setBusyPoll(maxMicros);
    },
    busyPollStats: () => loadNative().busyPollStats(),
    // Null until a file backstore opened its file: reading the counters would start the engine.
    ioEngineStats: () => {
      if (!ioEngineInUse()) return null;
      const i = ioEngineInfo();
      return { requests: { io_uring: i.uringOps, threadpool: i.poolOps }, submissions: { io_uring: i.uringSubmits, threadpool: i.poolHandoffs }, inline: i.syncOps };
    },
  };
}
