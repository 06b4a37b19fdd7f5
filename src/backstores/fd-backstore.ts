/**
 * What the `file` and `block` backstores have in common: an open IoFile, range and read-only checks,
 * errno mapping with the backstore named, O_DIRECT bounce buffers, FUA as RWF_DSYNC on write-back,
 * fdatasync for flush and close. The subclasses add how the store is opened, discarded, zeroed and
 * mapped — the parts where a regular file and a block device really differ.
 */
import type { Logger } from 'pino';
import { alignedBuffer, isAligned, type IoFile, type TransferListener } from '../native/io.js';
import type { Backstore, BackstoreCapabilities, BackstoreCompletion, BackstoreError, CacheMode, LbaStatusExtent } from './backstore.js';
import { checkRange, readOnlyError, readTarget, toBackstoreError } from './errors.js';
import type { FdBackstoreOptions } from './options.js';
import { DeviceWindow } from './device-window.js';
import type { ReadWrite } from './read-write.js';

/** Alignment of O_DIRECT bounce buffers: safe for 512- and 4096-byte sector devices. */
export const DIRECT_ALIGN = 4096;

const ignoreValue = (): void => undefined;

const readWhere = (offset: number, length: number): string => `read at byte ${offset} length ${length}`;
const writeWhere = (offset: number, length: number): string => `write at byte ${offset} length ${length}`;

/**
 * A read or write begun with startRead / startWrite and waiting for the engine: what its end needs, in
 * one object (the command's completion, the buffers), instead of a promise and two closures.
 */
class FdTransfer implements TransferListener {
  constructor(
    readonly store: FdBackstore,
    readonly done: BackstoreCompletion,
    /** The caller's buffer for a read, undefined for a write. */
    readonly out: Buffer | undefined,
    /** What went to the engine: `out` itself or its aligned bounce buffer; for a write, the data. */
    readonly buf: Buffer,
    readonly offset: number,
    readonly length: number,
  ) {}

  transferComplete(bytes: number, error: Error | undefined): void {
    const { store, out, buf, offset, length } = this;
    let failed: BackstoreError | undefined;
    if (out === undefined) failed = error && store.transferFailed(error, writeWhere(offset, length));
    else failed = error ? store.transferFailed(error, readWhere(offset, length)) : store.readEnded(buf, out, bytes, offset, length);
    this.done.backstoreDone(failed);
  }
}

/** How messages name a store: "file backstore disk0 (/var/lib/vtgt/disk0.img)". */
export function describeFdBackstore(type: 'file' | 'block', opts: { name: string; path: string }): string {
  return `${type} backstore ${opts.name} (${opts.path})`;
}

export interface FdBackstoreInit {
  /** "file backstore disk0 (/path)": every error message names the store this way. */
  describe: string;
  blockSize: 512 | 4096;
  readOnly: boolean;
  capabilities: BackstoreCapabilities;
  file: IoFile;
  rw: ReadWrite;
  sizeBytes: number;
  /** O_DIRECT only: a caller's buffer aligned to this much is used as is, others are bounced. */
  directAlign: number;
  /** How refreshSize learns the size, for its error message ("fstat", "BLKGETSIZE64"). */
  sizeQuery: string;
}

export abstract class FdBackstore implements Backstore {
  readonly name: string;
  readonly path: string;
  readonly describe: string;
  readonly blockSize: 512 | 4096;
  readonly readOnly: boolean;
  readonly cacheMode: CacheMode;
  readonly capabilities: BackstoreCapabilities;
  readonly direct: boolean;
  readonly alignedBuffers?: { alignment: number; allocate(size: number): Buffer };
  protected readonly file: IoFile;
  protected readonly rw: ReadWrite;
  protected readonly log: Logger | undefined;
  #bounced = 0;
  readonly #sizeQuery: string;
  #size: number;

  protected constructor(opts: FdBackstoreOptions, init: FdBackstoreInit) {
    this.name = opts.name;
    this.path = opts.path;
    this.describe = init.describe;
    this.blockSize = init.blockSize;
    this.readOnly = init.readOnly;
    this.cacheMode = opts.cacheMode ?? 'writeback';
    this.direct = opts.direct === true;
    if (this.direct) this.alignedBuffers = { alignment: init.directAlign, allocate: (size) => alignedBuffer(size, DIRECT_ALIGN) };
    this.capabilities = init.capabilities;
    this.file = init.file;
    // Only O_DIRECT transfers wait for the device; buffered ones are copies the page cache ends at once.
    this.rw = this.direct ? DeviceWindow.over(init.rw, opts.deviceWindowBytes) : init.rw;
    this.log = opts.logger;
    this.#sizeQuery = init.sizeQuery;
    this.#size = init.sizeBytes;
  }

  get sizeBytes(): number {
    return this.#size;
  }

  /** O_DIRECT: the device window's floor in bytes (device-window.ts); 0 when transfers are not held. */
  get deviceWindowBytes(): number {
    return this.rw instanceof DeviceWindow ? this.rw.floorBytes : 0;
  }

  /** The read ended `n` bytes into `buf`, short of `length`: fill the rest or throw (an errno'd Error). */
  protected abstract shortRead(buf: Buffer, n: number, length: number): void;
  abstract discard(offset: number, length: number): Promise<void>;
  abstract writeZeroes(offset: number, length: number, unmap: boolean): Promise<void>;
  abstract mapStatus(offset: number, length: number): Promise<LbaStatusExtent[]>;

  protected check(op: string, offset: number, length: number): void {
    checkRange(op, this.describe, offset, length, this.blockSize, this.#size);
  }

  /** check() plus the read-only refusal every modifying verb starts with. */
  protected checkModify(op: string, offset: number, length: number): void {
    this.check(op, offset, length);
    if (this.readOnly) throw readOnlyError(this.describe, op);
  }

  protected fail(e: unknown, what: string): BackstoreError {
    const err = toBackstoreError(e, this.describe, what);
    // debug: a failing disk fails every I/O; the service logs the first failure per LUN at warn.
    this.log?.debug({ backstore: this.name, errno: err.errno, kind: err.kind }, err.message);
    return err;
  }

  /**
   * O_DIRECT transfers that had to be copied through an aligned buffer because the caller's was not
   * aligned. The core's data buffers are aligned for such stores (`alignedBuffers`), so on the
   * SCSI read/write path this stays at zero.
   */
  get bounced(): number {
    return this.#bounced;
  }

  /** O_DIRECT only: `buf` as is when aligned, else a counted bounce buffer of `length` bytes. */
  private directBuffer(buf: Buffer, length: number): Buffer {
    const a = this.alignedBuffers;
    if (!a || isAligned(buf, a.alignment)) return buf;
    this.#bounced++;
    return a.allocate(length);
  }

  // read and write are promise chains rather than async functions for the reason IoFile's submit is
  // (BENCHMARKS.md, section 23): every layer's frame waits as long as the device does.
  read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    let out: Buffer;
    try {
      this.check('read', offset, length);
      out = readTarget('read', this.describe, length, into);
      if (length === 0) return Promise.resolve(out);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.readChecked(offset, length, out);
  }

  /** A checked, non-empty read through the engine's promise form. */
  private readChecked(offset: number, length: number, out: Buffer): Promise<Buffer> {
    let bounce: Buffer;
    try {
      bounce = this.directBuffer(out, length);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.rw.read(bounce, 0, length, offset).then(
      (n) => {
        const failed = this.readEnded(bounce, out, n, offset, length);
        if (failed) throw failed;
        return out;
      },
      (e: unknown) => {
        throw this.fail(e, readWhere(offset, length));
      },
    );
  }

  write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    let src: Buffer;
    try {
      src = this.writeSource(offset, data);
      if (data.length === 0) return Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
    return this.writeChecked(offset, src, fua);
  }

  /** A checked, non-empty write of `src` (the caller's data or its aligned copy) through the engine's promise form. */
  private writeChecked(offset: number, src: Buffer, fua: boolean): Promise<void> {
    return this.rw.write(src, 0, src.length, offset, this.dsync(fua)).then(ignoreValue, (e: unknown) => {
      throw this.fail(e, writeWhere(offset, src.length));
    });
  }

  startRead(offset: number, length: number, into: Buffer, done: BackstoreCompletion): boolean {
    this.check('read', offset, length);
    const out = readTarget('read', this.describe, length, into);
    if (length === 0) return true;
    const rw = this.rw;
    if (!rw.readTo) return this.settleLater(this.readChecked(offset, length, out), done);
    const bounce = this.directBuffer(out, length);
    let n: number;
    try {
      n = rw.readTo(bounce, 0, length, offset, new FdTransfer(this, done, out, bounce, offset, length));
    } catch (e) {
      throw this.fail(e, readWhere(offset, length));
    }
    if (n < 0) return false;
    const failed = this.readEnded(bounce, out, n, offset, length);
    if (failed) throw failed;
    return true;
  }

  startWrite(offset: number, data: Buffer, fua: boolean, done: BackstoreCompletion): boolean {
    const src = this.writeSource(offset, data);
    if (data.length === 0) return true;
    const rw = this.rw;
    if (!rw.writeFrom) return this.settleLater(this.writeChecked(offset, src, fua), done);
    try {
      return rw.writeFrom(src, 0, src.length, offset, this.dsync(fua), new FdTransfer(this, done, undefined, src, offset, data.length)) >= 0;
    } catch (e) {
      throw this.fail(e, writeWhere(offset, data.length));
    }
  }

  /** The engine without a callback form (Node's fs): the promise's end is told to `done`. */
  private settleLater(p: Promise<unknown>, done: BackstoreCompletion): false {
    p.then(
      () => done.backstoreDone(undefined),
      (e: unknown) => done.backstoreDone(e),
    );
    return false;
  }

  /** Checks a write and returns what goes to the engine: `data`, or an aligned copy for O_DIRECT. */
  private writeSource(offset: number, data: Buffer): Buffer {
    this.checkModify('write', offset, data.length);
    if (data.length === 0) return data;
    const src = this.directBuffer(data, data.length);
    if (src !== data) data.copy(src);
    return src;
  }

  /** Write-through opens O_DSYNC already; write-back FUA writes ask for RWF_DSYNC. */
  private dsync(fua: boolean): boolean {
    return fua && this.cacheMode === 'writeback';
  }

  /**
   * A read of `n` bytes into `bounce` ended: fill or refuse a short read, copy out of a bounce buffer.
   * Returns the error to report, if any. (Public for FdTransfer only.)
   */
  readEnded(bounce: Buffer, out: Buffer, n: number, offset: number, length: number): BackstoreError | undefined {
    if (n < length) {
      try {
        this.shortRead(bounce, n, length);
      } catch (e) {
        return this.fail(e, readWhere(offset, length));
      }
    }
    if (bounce !== out) bounce.copy(out, 0, 0, length);
    return undefined;
  }

  /** The engine's error as this store's BackstoreError. (Public for FdTransfer only.) */
  transferFailed(e: unknown, what: string): BackstoreError {
    return this.fail(e, what);
  }

  async flush(): Promise<void> {
    // Write-through: every write was O_DSYNC and every fallocate/ioctl was followed by fdatasync.
    if (this.readOnly || this.cacheMode === 'writethrough') return;
    try {
      // On a block device fdatasync also flushes the device's volatile write cache.
      await this.rw.datasync();
    } catch (e) {
      throw this.fail(e, 'flush (fdatasync)');
    }
  }

  /** fallocate and block ioctls are not covered by O_DSYNC: write-through makes them durable explicitly. */
  protected async syncIfWriteThrough(): Promise<void> {
    if (this.cacheMode === 'writethrough') await this.file.datasync();
  }

  async refreshSize(): Promise<number> {
    try {
      const info = await this.file.devInfo();
      this.#size = info.size - (info.size % this.blockSize);
    } catch (e) {
      throw this.fail(e, `refresh size (${this.#sizeQuery})`);
    }
    return this.#size;
  }

  async close(): Promise<void> {
    if (this.file.closed) return;
    try {
      // Removing a LUN must not leave acknowledged write-back data only in the page cache.
      if (!this.readOnly && this.cacheMode === 'writeback') await this.file.datasync();
    } finally {
      await this.file.close();
    }
  }
}
