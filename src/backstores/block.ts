/**
 * The `block` backstore: a block device. Size from BLKGETSIZE64, logical block size from BLKSSZGET,
 * discard via BLKDISCARD (when the queue advertises it), zeroing via BLKZEROOUT, O_DIRECT optional.
 * Devices give no allocation map, so GET LBA STATUS is not offered.
 */
import { readFileSync, statSync } from 'node:fs';
import type { Logger } from 'pino';
import { alignedBuffer, IoFile, isAligned, type DeviceInfo } from '../native/io.js';
import {
  BackstoreError,
  type Backstore,
  type BackstoreCapabilities,
  type CacheMode,
  type LbaStatusExtent,
} from './backstore.js';
import { checkRange, readOnlyError, readTarget, toBackstoreError } from './errors.js';

export interface BlockBackstoreOptions {
  name: string;
  path: string;
  /** Defaults to the device's logical block size; may be larger (4096 on a 512-byte device), never smaller with O_DIRECT. */
  blockSize?: 512 | 4096;
  readOnly?: boolean;
  cacheMode?: CacheMode;
  direct?: boolean;
  removable?: boolean;
  logger?: Logger;
}

/** /sys/dev/block/MAJ:MIN/queue/discard_max_bytes > 0 when the device accepts discards. */
function deviceDiscards(info: DeviceInfo): boolean {
  try {
    const v = readFileSync(`/sys/dev/block/${info.rdevMajor}:${info.rdevMinor}/queue/discard_max_bytes`, 'utf8');
    return Number(v.trim()) > 0;
  } catch {
    return false;
  }
}

export class BlockBackstore implements Backstore {
  readonly name: string;
  readonly path: string;
  readonly describe: string;
  readonly blockSize: 512 | 4096;
  readonly readOnly: boolean;
  readonly cacheMode: CacheMode;
  readonly capabilities: BackstoreCapabilities;
  readonly direct: boolean;
  /** The device's own logical block size (I/O alignment for O_DIRECT). */
  readonly deviceBlockSize: number;
  #size: number;
  readonly #file: IoFile;
  readonly #log: Logger | undefined;

  private constructor(
    opts: BlockBackstoreOptions,
    file: IoFile,
    info: DeviceInfo,
    blockSize: 512 | 4096,
    readOnly: boolean,
    caps: BackstoreCapabilities,
  ) {
    this.name = opts.name;
    this.path = opts.path;
    this.describe = `block backstore ${opts.name} (${opts.path})`;
    this.blockSize = blockSize;
    this.readOnly = readOnly;
    this.cacheMode = opts.cacheMode ?? 'writeback';
    this.direct = opts.direct === true;
    this.deviceBlockSize = info.logicalBlockSize;
    this.capabilities = caps;
    this.#size = info.size - (info.size % blockSize);
    this.#file = file;
    this.#log = opts.logger;
  }

  static open(opts: BlockBackstoreOptions): BlockBackstore {
    const describe = `block backstore ${opts.name} (${opts.path})`;
    try {
      if (!statSync(opts.path).isBlockDevice()) {
        throw new BackstoreError('unsupported', `${describe}: not a block device; use backstore type "file" for regular files`);
      }
    } catch (e) {
      throw toBackstoreError(e, describe, 'stat');
    }
    let readOnly = opts.readOnly === true;
    const openIt = (ro: boolean): IoFile =>
      IoFile.openSync(opts.path, { readOnly: ro, direct: opts.direct === true, dsync: opts.cacheMode === 'writethrough' });
    let file: IoFile;
    try {
      file = openIt(readOnly);
    } catch (e) {
      throw toBackstoreError(e, describe, 'open');
    }
    try {
      const info = file.devInfoSync();
      if (info.readOnlyDevice && !readOnly) {
        throw new BackstoreError(
          'readonly',
          `${describe}: the device is read-only (BLKROGET); set readOnly: true or make it writable (blockdev --setrw)`,
          'EROFS',
        );
      }
      const lbs = info.logicalBlockSize;
      const blockSize = opts.blockSize ?? (lbs === 4096 ? 4096 : 512);
      if (blockSize !== 512 && blockSize !== 4096) {
        throw new BackstoreError('unsupported', `${describe}: device logical block size ${lbs} is not 512 or 4096`);
      }
      if (opts.direct && blockSize < lbs) {
        throw new BackstoreError(
          'unsupported',
          `${describe}: ${blockSize}-byte blocks cannot be served with O_DIRECT from a device with ${lbs}-byte sectors; use blockSize ${lbs} or direct: false`,
        );
      }
      if (info.size < blockSize) throw new BackstoreError('unsupported', `${describe}: device is empty (${info.size} bytes)`);
      const discard = !readOnly && deviceDiscards(info);
      const caps: BackstoreCapabilities = {
        discard,
        // Since Linux 4.12 the kernel promises nothing about discarded blocks' contents.
        discardZeroes: false,
        lbaStatus: false,
        thinProvisioned: discard,
        removable: opts.removable === true,
      };
      readOnly = readOnly || info.readOnlyDevice;
      const bs = new BlockBackstore(opts, file, info, blockSize, readOnly, caps);
      opts.logger?.debug(
        { backstore: opts.name, path: opts.path, size: bs.sizeBytes, blockSize, deviceBlockSize: lbs, discard },
        'block backstore opened',
      );
      return bs;
    } catch (e) {
      void file.close();
      throw e instanceof BackstoreError ? e : toBackstoreError(e, describe, 'open');
    }
  }

  get sizeBytes(): number {
    return this.#size;
  }

  #check(op: string, offset: number, length: number): void {
    checkRange(op, this.describe, offset, length, this.blockSize, this.#size);
  }

  #fail(e: unknown, what: string): BackstoreError {
    const err = toBackstoreError(e, this.describe, what);
    // debug: a failing disk fails every I/O; the service logs the first failure per LUN at warn.
    this.#log?.debug({ backstore: this.name, errno: err.errno, kind: err.kind }, err.message);
    return err;
  }

  get #align(): number {
    return Math.max(this.deviceBlockSize, 512);
  }

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.#check('read', offset, length);
    const out = readTarget('read', this.describe, length, into);
    if (length === 0) return out;
    const bounce = this.direct && !isAligned(out, this.#align) ? alignedBuffer(length, 4096) : out;
    try {
      const n = await this.#file.read(bounce, 0, length, offset);
      if (n < length) {
        throw Object.assign(new Error(`short read: ${n} of ${length} bytes (device shrank?)`), { code: 'ENXIO' });
      }
    } catch (e) {
      throw this.#fail(e, `read at byte ${offset} length ${length}`);
    }
    if (bounce !== out) bounce.copy(out, 0, 0, length);
    return out;
  }

  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    this.#check('write', offset, data.length);
    if (this.readOnly) throw readOnlyError(this.describe, 'write');
    if (data.length === 0) return;
    let src = data;
    if (this.direct && !isAligned(data, this.#align)) {
      src = alignedBuffer(data.length, 4096);
      data.copy(src);
    }
    try {
      await this.#file.write(src, 0, src.length, offset, fua && this.cacheMode === 'writeback');
    } catch (e) {
      throw this.#fail(e, `write at byte ${offset} length ${data.length}`);
    }
  }

  async flush(): Promise<void> {
    // Write-through: O_DSYNC writes already flushed the device cache; BLKZEROOUT was followed by fdatasync.
    if (this.readOnly || this.cacheMode === 'writethrough') return;
    try {
      // fdatasync on a block device also flushes the device's volatile write cache.
      await this.#file.datasync();
    } catch (e) {
      throw this.#fail(e, 'flush (fdatasync)');
    }
  }

  async discard(offset: number, length: number): Promise<void> {
    this.#check('discard', offset, length);
    if (this.readOnly) throw readOnlyError(this.describe, 'discard');
    if (!this.capabilities.discard) {
      throw new BackstoreError('unsupported', `discard on ${this.describe}: the device does not accept discards`);
    }
    if (length === 0) return;
    try {
      await this.#file.blkDiscard(offset, length);
    } catch (e) {
      throw this.#fail(e, `discard (BLKDISCARD) at byte ${offset} length ${length}`);
    }
  }

  async writeZeroes(offset: number, length: number, _unmap: boolean): Promise<void> {
    this.#check('write zeroes', offset, length);
    if (this.readOnly) throw readOnlyError(this.describe, 'write zeroes');
    if (length === 0) return;
    try {
      // BLKZEROOUT lets the kernel use WRITE ZEROES / unmapping where the device guarantees zeroes.
      await this.#file.blkZeroout(offset, length);
      if (this.cacheMode === 'writethrough') await this.#file.datasync();
    } catch (e) {
      throw this.#fail(e, `write zeroes (BLKZEROOUT) at byte ${offset} length ${length}`);
    }
  }

  async mapStatus(offset: number, length: number): Promise<LbaStatusExtent[]> {
    this.#check('map status', offset, length);
    return offset < this.#size ? [{ offset, length: this.#size - offset, mapped: true }] : [];
  }

  async refreshSize(): Promise<number> {
    try {
      const info = await this.#file.devInfo();
      this.#size = info.size - (info.size % this.blockSize);
    } catch (e) {
      throw this.#fail(e, 'refresh size (BLKGETSIZE64)');
    }
    return this.#size;
  }

  async close(): Promise<void> {
    if (this.#file.closed) return;
    try {
      if (!this.readOnly && this.cacheMode === 'writeback') await this.#file.datasync();
    } finally {
      await this.#file.close();
    }
  }
}
