/**
 * Options every backstore constructor takes, declared once: the config-level spec (index.ts) and the
 * per-type options (file.ts, block.ts, memory.ts, null.ts) extend these instead of repeating them.
 */
import type { Logger } from 'pino';
import type { CacheMode } from './backstore.js';

export interface BackstoreBaseOptions {
  /** Name used in config and messages ("disk0"). */
  name: string;
  /** Logical block size; 512 unless the type says otherwise (block: the device's own). */
  blockSize?: 512 | 4096;
  readOnly?: boolean;
  /** Medium can be removed/ejected (START STOP UNIT LOEJ, PREVENT ALLOW MEDIUM REMOVAL). */
  removable?: boolean;
}

/** Backstores over a file descriptor: `file` and `block`. */
export interface FdBackstoreOptions extends BackstoreBaseOptions {
  /** file: image path (created sparse if absent); block: device path. */
  path: string;
  /** Default write-back (see backstore.ts CacheMode). */
  cacheMode?: CacheMode;
  /** O_DIRECT (bypass the page cache). Unaligned buffers are bounced through aligned ones. */
  direct?: boolean;
  /**
   * O_DIRECT only: transfers of 64 KiB and more beyond this many bytes at the device, and beyond half
   * of all asked, wait for earlier ones (device-window.ts). Default 512 KiB; 0 turns the window off.
   */
  deviceWindowBytes?: number;
  logger?: Logger;
}

/** How reads and writes reach a file: the native addon (io_uring or its thread pool) or Node's fs. */
export type FileIoEngine = 'native' | 'native-threadpool' | 'fs';
