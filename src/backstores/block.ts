/**
 * The `block` backstore: a block device. Size from BLKGETSIZE64, logical block size from BLKSSZGET,
 * discard via BLKDISCARD (when the queue advertises it), zeroing via BLKZEROOUT, O_DIRECT optional.
 * Devices give no allocation map, so GET LBA STATUS is not offered.
 */
import { readFileSync, statSync } from 'node:fs';
import { IoFile, type DeviceInfo } from '../native/io.js';
import { BackstoreError, type BackstoreCapabilities, type LbaStatusExtent } from './backstore.js';
import { allMapped } from './extents.js';
import { toBackstoreError } from './errors.js';
import { describeFdBackstore, FdBackstore } from './fd-backstore.js';
import type { FdBackstoreOptions } from './options.js';
import { nativeReadWrite } from './read-write.js';

/** `blockSize` defaults to the device's logical block size; it may be larger (4096 on a 512-byte device), never smaller with O_DIRECT. */
export type BlockBackstoreOptions = FdBackstoreOptions;

/** /sys/dev/block/MAJ:MIN/queue/discard_max_bytes > 0 when the device accepts discards. */
function deviceDiscards(info: DeviceInfo): boolean {
  try {
    const v = readFileSync(`/sys/dev/block/${info.rdevMajor}:${info.rdevMinor}/queue/discard_max_bytes`, 'utf8');
    return Number(v.trim()) > 0;
  } catch {
    return false;
  }
}

/** The device's physical block size as the Backstore contract reports it (see backstore.ts). */
function physicalOf(pbs: number, blockSize: number): number | undefined {
  const ratio = pbs / blockSize;
  // Devices report up to the page size in practice; 2^15 blocks is where READ CAPACITY's exponent ends.
  if (!Number.isInteger(ratio) || ratio <= 1 || ratio > 1 << 15 || (ratio & (ratio - 1)) !== 0) return undefined;
  return pbs;
}

export class BlockBackstore extends FdBackstore {
  /** The device's own logical block size (I/O alignment for O_DIRECT). */
  readonly deviceBlockSize: number;
  /** BLKPBSZGET when it is a larger power-of-two multiple of blockSize (a 512e disk), else undefined. */
  readonly physicalBlockSize: number | undefined;

  private constructor(
    opts: BlockBackstoreOptions,
    file: IoFile,
    info: DeviceInfo,
    blockSize: 512 | 4096,
    readOnly: boolean,
    caps: BackstoreCapabilities,
  ) {
    super(opts, {
      describe: describeFdBackstore('block', opts),
      blockSize,
      readOnly,
      capabilities: caps,
      file,
      rw: nativeReadWrite(file),
      sizeBytes: info.size - (info.size % blockSize),
      directAlign: Math.max(info.logicalBlockSize, 512),
      sizeQuery: 'BLKGETSIZE64',
    });
    this.deviceBlockSize = info.logicalBlockSize;
    this.physicalBlockSize = physicalOf(info.physicalBlockSize, blockSize);
  }

  static open(opts: BlockBackstoreOptions): BlockBackstore {
    const describe = describeFdBackstore('block', opts);
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

  protected shortRead(_buf: Buffer, n: number, length: number): void {
    throw Object.assign(new Error(`short read: ${n} of ${length} bytes (device shrank?)`), { code: 'ENXIO' });
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkModify('discard', offset, length);
    if (!this.capabilities.discard) {
      throw new BackstoreError('unsupported', `discard on ${this.describe}: the device does not accept discards`);
    }
    if (length === 0) return;
    try {
      await this.file.blkDiscard(offset, length);
    } catch (e) {
      throw this.fail(e, `discard (BLKDISCARD) at byte ${offset} length ${length}`);
    }
  }

  async writeZeroes(offset: number, length: number, _unmap: boolean): Promise<void> {
    this.checkModify('write zeroes', offset, length);
    if (length === 0) return;
    try {
      // BLKZEROOUT lets the kernel use WRITE ZEROES / unmapping where the device guarantees zeroes.
      await this.file.blkZeroout(offset, length);
      await this.syncIfWriteThrough();
    } catch (e) {
      throw this.fail(e, `write zeroes (BLKZEROOUT) at byte ${offset} length ${length}`);
    }
  }

  async mapStatus(offset: number, length: number): Promise<LbaStatusExtent[]> {
    this.check('map status', offset, length);
    return allMapped(offset, this.sizeBytes);
  }
}
