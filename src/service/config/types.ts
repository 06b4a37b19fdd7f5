/**
 * The configuration model: what `vtgt.yaml` describes once parsed and validated. Every mutation of a
 * running service (SIGHUP reload, `vtgt config load`, `vtgt lun create` ...) produces a new model and
 * hands it to the reconciler, so there is one path from "desired state" to "running state".
 */

export type BackstoreType = 'file' | 'block' | 'memory' | 'null';
export type CacheModeSetting = 'writeback' | 'writethrough';

/** Where a secret comes from. Only `inline` puts the secret itself in the file. */
export type SecretSource =
  | { kind: 'inline'; value: string }
  | { kind: 'file'; path: string }
  | { kind: 'env'; name: string };

export interface AccountConfig {
  /** Name the targets, ACLs and discovery settings refer to. */
  name: string;
  /** CHAP user name (CHAP_N). */
  user: string;
  secret: SecretSource;
}

export interface BackstoreConfig {
  name: string;
  type: BackstoreType;
  /** file: image path (relative paths are relative to the data directory); block: device path. */
  path?: string;
  /** Bytes. file: created sparse with this size when missing; memory/null: required. */
  size?: number;
  blockSize?: 512 | 4096;
  readOnly?: boolean;
  cacheMode?: CacheModeSetting;
  /** O_DIRECT for file/block stores. */
  direct?: boolean;
  /** O_DIRECT stores: bytes of large transfers at the device before more wait (default 512 KiB, 0 = off). */
  deviceWindowBytes?: number;
  removable?: boolean;
  /**
   * Unit serial number (VPD page 0x80), also the seed of the NAA device identifier (VPD 0x83).
   * Default: derived from the name. Set it to keep a LUN's identity when renaming or moving it.
   */
  serial?: string;
  /**
   * Physical block size in bytes reported to initiators (READ CAPACITY 16 LBPPBE, VPD B0), e.g. 4096
   * for a 512-byte LUN on 4K storage so initiators align I/O. Default: the block size.
   */
  physicalBlockSize?: number;
  /** Largest WRITE ATOMIC(16) in bytes (multiple of blockSize, at most 32 MiB); default: the core's. */
  maxAtomicWriteBytes?: number;
  /** file only: I/O engine (native = io_uring, native-threadpool, fs). */
  engine?: 'native' | 'native-threadpool' | 'fs';
}

export interface LunConfig {
  lun: number;
  backstore: string;
}

export interface AclConfig {
  /** Initiator iSCSI name this entry admits. */
  initiator: string;
  /** Source addresses the initiator may connect from (empty/absent = any). */
  addresses?: string[];
  /** A LUN map of its own; absent = the target's LUNs. */
  luns?: LunConfig[];
  /** Account names (see `accounts`). */
  chap?: string;
  mutualChap?: string;
}

export interface TargetConfig {
  /** iSCSI qualified name (iqn./eui./naa.). */
  name: string;
  tpgt?: number;
  luns: LunConfig[];
  /** Empty = every initiator may log in (demo mode); otherwise only the listed initiators. */
  acls: AclConfig[];
  chap?: string;
  mutualChap?: string;
  /** iSCSI login key overrides (e.g. MaxRecvDataSegmentLength). */
  params?: Record<string, string>;
}

export interface PortalConfig {
  host: string;
  port: number;
  tpgt?: number;
}

export interface IscsiConfig {
  portals: PortalConfig[];
  /** Accounts required for SendTargets discovery sessions. */
  discoveryChap?: string;
  discoveryMutualChap?: string;
  /** Seconds between NOP-In pings on idle connections (0 = off). */
  nopInterval?: number;
  /** Seconds to wait for the NOP-Out answer before dropping the connection. */
  nopTimeout?: number;
}

export interface MetricsConfig {
  /** Prometheus endpoint address; absent = metrics off. */
  listen?: { host: string; port: number };
}

/**
 * Longest time the event loop polls for the next request before it sleeps (adaptive: only while
 * waits stay that short). Trades a little CPU for much lower QD1 latency (BENCHMARKS.md, section 7).
 */
export const DEFAULT_BUSY_POLL_MICROS = 200;

/**
 * Worker threads that continue logged-in iSCSI connections, so PDU handling for many sessions can use
 * more than one CPU while the core stays on the main thread. Off by default: on the 2-CPU machines
 * measured, handing every command between threads cost more CPU per I/O than it freed
 * (BENCHMARKS.md section 16).
 */
export const MAX_ISCSI_THREADS = 16;

export interface PerformanceConfig {
  /** 0 = never poll; at most 1000. */
  busyPollMicros?: number;
  /** 0 (default) = every connection on the main thread; at most MAX_ISCSI_THREADS. Read at start. */
  iscsiThreads?: number;
}

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

export interface VtgtConfig {
  backstores: BackstoreConfig[];
  targets: TargetConfig[];
  accounts: AccountConfig[];
  iscsi: IscsiConfig;
  metrics: MetricsConfig;
  log: { level: LogLevel };
  /** Tuning that does not change behaviour; absent = the defaults (`DEFAULT_BUSY_POLL_MICROS`). */
  performance?: PerformanceConfig;
  /** Sections owned by fabric modules (`ibmvio:`, `xen:` ...), already validated by their module. */
  fabrics: Record<string, unknown>;
}

export const LUN_MAX = 16383; // SAM-5 4.7.3: single level flat addressing (14-bit LUN)
