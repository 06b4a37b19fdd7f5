/**
 * Async block I/O through the native engine: io_uring (when the addon was built with liburing and the
 * kernel allows it) or the addon's thread pool. Every argument is validated here before crossing into
 * C++. Reads and writes complete through one sink (transfer-slots.ts, which keeps their Buffers alive);
 * other operations get a promise from the addon, which pins any Buffer. Failures reject with
 * `NativeIoError` naming the operation, the file and the offset.
 */
import { closeSync, constants as fsConstants, openSync } from 'node:fs';
import { loadNative, type NativeDevInfo, type NativeIoEngineInfo } from './index.js';
import { submitTransfer, submitTransferTo, type TransferListener, type TransferOwner } from './transfer-slots.js';

export type { TransferListener } from './transfer-slots.js';

/** Operation numbers shared with native/src/io_request.h (IoOp). */
export const IoOp = {
  READ: 0,
  WRITE: 1,
  FDATASYNC: 2,
  FSYNC: 3,
  FALLOCATE: 4,
  BLKDISCARD: 5,
  BLKZEROOUT: 6,
  SEEK_DATA: 7,
  SEEK_HOLE: 8,
  DEV_INFO: 9,
} as const;

/** fallocate(2) mode bits (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;
/** pwritev2(2) flag: this write is durable on completion (a FUA write), linux/fs.h. */
export const RWF_DSYNC = 0x02;
/** preadv2/pwritev2 flag: fail with EAGAIN instead of blocking (data not in the page cache). */
export const RWF_NOWAIT = 0x08;
/** statfs f_type of tmpfs/shmem (linux/magic.h). */
export const TMPFS_MAGIC = 0x01021994;
/** statfs f_type of ext2/3/4 (linux/magic.h). */
export const EXT4_SUPER_MAGIC = 0xef53;
const EOPNOTSUPP = 95;

/**
 * Transfers up to this size may complete synchronously on the calling thread when the data is
 * memory-resident (tmpfs) or already in the page cache (RWF_NOWAIT succeeds): a memcpy is cheaper
 * than a trip through io_uring's workers and the event loop (bench/IO-ENGINE.md). Larger ones stay
 * asynchronous so their copies run in parallel off the loop thread.
 */
export const SYNC_FAST_PATH_MAX_BYTES = 65536;

export type IoEngineKind = 'io_uring' | 'threadpool';
export type { NativeDevInfo as DeviceInfo };

export class NativeIoError extends Error {
  constructor(
    message: string,
    /** errno name: 'EIO', 'ENOSPC', ... */
    readonly code: string,
    readonly syscall: string,
    readonly path: string,
  ) {
    super(message);
    this.name = 'NativeIoError';
  }
}

export interface IoFileOptions {
  readOnly?: boolean;
  /** O_DIRECT: bypass the page cache. Buffers, offsets and lengths must be aligned to the logical block size. */
  direct?: boolean;
  /** O_DSYNC: every write is durable on completion (write-through). */
  dsync?: boolean;
  /** Create the file if absent (mode 0600 before umask); never for block devices. */
  create?: boolean;
  /** 'io_uring' (default; falls back to the thread pool when unavailable) or 'threadpool'. */
  engine?: IoEngineKind;
  /**
   * Let small reads and writes complete synchronously when they cannot block (tmpfs, page-cache hits
   * with RWF_NOWAIT); default true. Never used with O_DIRECT.
   */
  syncFastPath?: boolean;
}

const MAX_OFFSET = Number.MAX_SAFE_INTEGER;

function checkIndex(op: string, what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`${op}: ${what} must be a non-negative safe integer, got ${String(v)}`);
  }
  return v;
}

let syncOps = 0;
/** Whether any file has been opened: the engine (a ring and worker threads) is created on first use. */
let filesOpened = false;

/** True once a file was opened through IoFile, i.e. the I/O engine exists and its counters mean something. */
export function ioEngineInUse(): boolean {
  return filesOpened;
}

/** Engine state and counters: requests sent to io_uring and the pool, and synchronous fast-path hits. */
export function ioEngineInfo(): NativeIoEngineInfo & { syncOps: number } {
  return { ...loadNative().ioEngineInfo(), syncOps };
}

/** A zero-filled Buffer whose memory starts on `alignment` bytes (for O_DIRECT). */
/**
 * Hands the requests made so far in this turn to the kernel (and the thread pool) now instead of at
 * the end of the turn: for a caller about to do slower work in the same turn (a completion handler
 * that restarts a device before the answers it sends).
 */
export function flushSubmissions(): void {
  loadNative().ioFlushSubmissions();
}

export function alignedBuffer(size: number, alignment = 4096): Buffer {
  checkIndex('alignedBuffer', 'size', size);
  if (!Number.isInteger(alignment) || alignment < 8 || alignment > 1 << 21 || (alignment & (alignment - 1)) !== 0) {
    throw new RangeError(`alignedBuffer: alignment ${alignment} must be a power of two between 8 and 2 MiB`);
  }
  return loadNative().alignedBuffer(size, alignment);
}

/** True when the Buffer's memory starts on a multiple of `alignment` (a power of two <= 4096). */
export function isAligned(buf: Uint8Array, alignment: number): boolean {
  return loadNative().bufferAlignment(buf) >= alignment;
}

/** An open file or block device driven by the native engine. */
export class IoFile {
  readonly path: string;
  readonly readOnly: boolean;
  readonly direct: boolean;
  readonly engine: IoEngineKind;
  #fd: number;
  #inflight = 0;
  #drained: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  /** preadv2/pwritev2 flags of the synchronous fast path, or undefined when it is off for this file. */
  #syncRead: number | undefined;
  #syncWrite: number | undefined;
  /** Buffered writes go straight to an io_uring worker (see the constructor). */
  #puntWrites = false;

  private constructor(path: string, fd: number, opts: IoFileOptions) {
    filesOpened = true;
    this.path = path;
    this.#fd = fd;
    this.readOnly = opts.readOnly === true;
    this.direct = opts.direct === true;
    const uring = opts.engine !== 'threadpool' && loadNative().ioEngineInfo().uring;
    this.engine = uring ? 'io_uring' : 'threadpool';
    if (opts.syncFastPath !== false && !this.direct) {
      let info: NativeDevInfo;
      try {
        info = this.devInfoSync();
      } catch {
        // No fast path when the file cannot even be stat'ed; the async path reports errors properly.
        return;
      }
      // A regular file on tmpfs is always in memory (and tmpfs has no RWF_NOWAIT): reads and writes
      // both qualify. Not a device node on devtmpfs: its data lives on the device, not in tmpfs.
      // Elsewhere only reads, asking the page cache with RWF_NOWAIT: a buffered write may have to
      // allocate blocks or (O_DSYNC, FUA) wait for the disk, which must never happen on this thread.
      const resident = info.fsType === TMPFS_MAGIC && (info.mode & fsConstants.S_IFMT) === fsConstants.S_IFREG;
      this.#syncRead = resident ? 0 : RWF_NOWAIT;
      this.#syncWrite = resident ? 0 : undefined;
      // ext4 cannot do a buffered write without possibly blocking, so io_uring's inline attempt of
      // each one fails before the request goes to a worker anyway: skip the attempt (≈ 4 µs of CPU
      // per 4 KiB write, BENCHMARKS.md section 10). File systems with non-blocking buffered writes
      // (XFS, btrfs) keep the inline path. VTGT_URING_PUNT_WRITES=0 turns this off.
      this.#puntWrites =
        info.fsType === EXT4_SUPER_MAGIC && (info.mode & fsConstants.S_IFMT) === fsConstants.S_IFREG && process.env.VTGT_URING_PUNT_WRITES !== '0';
    }
  }

  /** Whether buffered writes skip io_uring's inline attempt (ext4 regular files). */
  get puntsWrites(): boolean {
    return this.#puntWrites && this.engine === 'io_uring';
  }

  /** Whether small transfers try the synchronous path: 'resident' (tmpfs), 'nowait' or 'off'. */
  get syncFastPath(): 'resident' | 'nowait' | 'off' {
    if (this.#syncRead === undefined && this.#syncWrite === undefined) return 'off';
    return this.#syncRead === 0 ? 'resident' : 'nowait';
  }

  /**
   * One synchronous attempt. Returns the bytes moved when it completed the transfer (all of it, or a
   * tmpfs read that reached end of file), else -1 and the caller goes asynchronous — which retries,
   * reports errors properly, and for a write rewrites the same bytes.
   */
  #trySync(write: boolean, buf: Uint8Array, bufOffset: number, length: number, position: number, dsync: boolean): number {
    const base = write ? this.#syncWrite : this.#syncRead;
    if (base === undefined || length > SYNC_FAST_PATH_MAX_BYTES || this.#fd < 0 || this.#closing) return -1;
    const n = loadNative().ioTransferSync(write, this.#fd, buf, bufOffset, length, position, base | (dsync ? RWF_DSYNC : 0));
    if (n === length || (n >= 0 && !write && base === 0)) {
      // Complete (a short tmpfs read is end of file).
      syncOps++;
      return n;
    }
    if (n === -EOPNOTSUPP) {
      // This file or device cannot do it: stop trying.
      if (write) this.#syncWrite = undefined;
      else this.#syncRead = undefined;
    }
    // EAGAIN (not cached), a short transfer or an error: the async path retries and reports errors.
    return -1;
  }

  /**
   * Open synchronously (a config-time operation). Throws Node's usual fs errors (code ENOENT, EACCES,
   * EINVAL for O_DIRECT on a file system without it), whose messages carry the path.
   */
  static openSync(path: string, opts: IoFileOptions = {}): IoFile {
    if (typeof path !== 'string' || path === '') throw new TypeError('IoFile.openSync: path must be a non-empty string');
    let flags = (opts.readOnly ? fsConstants.O_RDONLY : fsConstants.O_RDWR);
    if (opts.direct) flags |= fsConstants.O_DIRECT;
    if (opts.dsync) flags |= fsConstants.O_DSYNC;
    if (opts.create && !opts.readOnly) flags |= fsConstants.O_CREAT;
    const fd = openSync(path, flags, 0o600);
    return new IoFile(path, fd, opts);
  }

  /** Adopt an fd opened elsewhere; close() will close it. */
  static fromFd(fd: number, path: string, opts: IoFileOptions = {}): IoFile {
    checkIndex('IoFile.fromFd', 'fd', fd);
    return new IoFile(path, fd, opts);
  }

  get fd(): number {
    return this.#fd;
  }

  get closed(): boolean {
    return this.#fd < 0;
  }

  /**
   * Hand one operation other than a read or write (flushes, fallocate, block ioctls, seeks, device
   * information; reads and writes go through #transfer) to the engine, which settles a promise for it.
   */
  #submit(op: number, name: string, length: number, position: number, mode = 0): Promise<number | NativeDevInfo> {
    try {
      this.#enter(name);
    } catch (e) {
      return Promise.reject(e);
    }
    let pending: Promise<number | NativeDevInfo>;
    try {
      pending = loadNative().ioSubmit(op, this.#fd, length, position, mode, this.engine === 'io_uring');
    } catch (e) {
      this.#settled(undefined);
      return Promise.reject(this.#ioError(e, op, name, position, length));
    }
    return pending.then(this.#settled, this.#failed);
  }

  /**
   * A read or write: completed through the transfer sink (transfer-slots.ts), without a promise from
   * the addon and the `then` this file would put on it. A plain promise chain, not an async function:
   * on a device-backed LU thousands of requests wait here at once, and each scavenge copies what every
   * waiting request holds (BENCHMARKS.md, sections 23 and 25). With a listener (readTo, writeFrom) the
   * listener is told the end and nothing is returned; without, the returned promise settles. Throws,
   * with nothing submitted, when the file is closed or the addon refuses the request.
   */
  #transfer(
    listener: TransferListener | undefined,
    op: number,
    name: string,
    buf: Uint8Array,
    bufOffset: number,
    length: number,
    position: number,
    rwflags: number,
  ): Promise<number> | undefined {
    this.#enter(name);
    const uring = this.engine === 'io_uring';
    const punt = uring && op === IoOp.WRITE && this.#puntWrites;
    try {
      if (!listener) return submitTransfer(this.#owner, op, this.#fd, buf, bufOffset, length, position, rwflags, uring, punt);
      submitTransferTo(this.#owner, listener, op, this.#fd, buf, bufOffset, length, position, rwflags, uring, punt);
      return undefined;
    } catch (e) {
      this.#settled(undefined);
      throw this.#ioError(e, op, name, position, length);
    }
  }

  /** Counts a request in flight, or throws when the file is closed or closing. */
  #enter(name: string): void {
    if (this.#fd < 0 || this.#closing) throw new Error(`${name}: ${this.path} is closed`);
    this.#inflight++;
  }

  /** This file as the owner of its transfers: one object per file. */
  readonly #owner: TransferOwner = {
    transferDone: () => {
      this.#settled(undefined);
    },
    transferError: (e, op, position, length) => this.#ioError(e, op, op === IoOp.READ ? 'pread' : 'pwrite', position, length),
  };

  /** One request left the engine (one function per file, not a closure per request). */
  readonly #settled = <T>(result: T): T => {
    if (--this.#inflight === 0 && this.#drained) this.#drained();
    return result;
  };

  /** The engine's rejection carries the request's op, position and length (native/src/napi_io.cc). */
  readonly #failed = (e: unknown): never => {
    this.#settled(undefined);
    const r = e as { op?: unknown; syscall?: unknown; position?: unknown; length?: unknown };
    const op = typeof r.op === 'number' ? r.op : -1;
    const name = typeof r.syscall === 'string' ? r.syscall : 'io';
    throw this.#ioError(e, op, name, typeof r.position === 'number' ? r.position : 0, typeof r.length === 'number' ? r.length : 0);
  };

  #ioError(e: unknown, op: number, name: string, position: number, length: number): NativeIoError {
    const err = e as { code?: string; message?: string };
    const code = typeof err.code === 'string' ? err.code : 'EIO';
    const where = op === IoOp.READ || op === IoOp.WRITE || op === IoOp.FALLOCATE || op === IoOp.BLKDISCARD || op === IoOp.BLKZEROOUT
      ? ` at offset ${position} length ${length}` : '';
    return new NativeIoError(`${name} failed on ${this.path}${where}: ${err.message ?? String(e)}`, code, name, this.path);
  }

  #transferArgs(op: string, buf: Uint8Array, bufOffset: number, length: number, position: number): void {
    if (!(buf instanceof Uint8Array)) throw new TypeError(`${op}: buffer must be a Buffer or Uint8Array`);
    checkIndex(op, 'bufferOffset', bufOffset);
    checkIndex(op, 'length', length);
    checkIndex(op, 'position', position);
    if (bufOffset > buf.length || length > buf.length - bufOffset) {
      throw new RangeError(`${op}: buffer offset ${bufOffset} + length ${length} exceeds buffer size ${buf.length}`);
    }
    if (position > MAX_OFFSET - length) throw new RangeError(`${op}: position ${position} + length ${length} overflows`);
  }

  /** Read `length` bytes at `position` into buf[bufOffset...]. Resolves with the bytes read (< length only at EOF). */
  read(buf: Uint8Array, bufOffset: number, length: number, position: number): Promise<number> {
    try {
      const n = this.#readNow(buf, bufOffset, length, position);
      return n >= 0 ? Promise.resolve(n) : this.#transfer(undefined, IoOp.READ, 'pread', buf, bufOffset, length, position, 0)!;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * `read` without a promise: returns the bytes read when the read finished at once (the synchronous
   * fast path), else -1 and `listener` is told later — never before this returns. Throws when nothing
   * was started (bad arguments, file closed).
   */
  readTo(buf: Uint8Array, bufOffset: number, length: number, position: number, listener: TransferListener): number {
    const n = this.#readNow(buf, bufOffset, length, position);
    if (n < 0) this.#transfer(listener, IoOp.READ, 'pread', buf, bufOffset, length, position, 0);
    return n;
  }

  /** Checks a read's arguments and tries the synchronous fast path: bytes read, or -1 to go asynchronous. */
  #readNow(buf: Uint8Array, bufOffset: number, length: number, position: number): number {
    this.#transferArgs('pread', buf, bufOffset, length, position);
    return this.#trySync(false, buf, bufOffset, length, position, false);
  }

  /**
   * Write buf[bufOffset, +length) at `position`; resolves when all bytes are written. `dsync`: the data
   * (and the metadata needed to read it) is on stable storage when it resolves (RWF_DSYNC).
   */
  write(buf: Uint8Array, bufOffset: number, length: number, position: number, dsync = false): Promise<number> {
    try {
      const n = this.#writeNow(buf, bufOffset, length, position, dsync);
      return n >= 0 ? Promise.resolve(n) : this.#transfer(undefined, IoOp.WRITE, 'pwrite', buf, bufOffset, length, position, dsync ? RWF_DSYNC : 0)!;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** `write` without a promise, as `readTo` is for `read`. */
  writeFrom(buf: Uint8Array, bufOffset: number, length: number, position: number, dsync: boolean, listener: TransferListener): number {
    const n = this.#writeNow(buf, bufOffset, length, position, dsync);
    if (n < 0) this.#transfer(listener, IoOp.WRITE, 'pwrite', buf, bufOffset, length, position, dsync ? RWF_DSYNC : 0);
    return n;
  }

  #writeNow(buf: Uint8Array, bufOffset: number, length: number, position: number, dsync: boolean): number {
    this.#transferArgs('pwrite', buf, bufOffset, length, position);
    if (this.readOnly) throw new NativeIoError(`pwrite refused on ${this.path}: opened read-only`, 'EBADF', 'pwrite', this.path);
    return this.#trySync(true, buf, bufOffset, length, position, dsync);
  }

  async datasync(): Promise<void> {
    await this.#submit(IoOp.FDATASYNC, 'fdatasync', 0, 0);
  }

  async fsync(): Promise<void> {
    await this.#submit(IoOp.FSYNC, 'fsync', 0, 0);
  }

  #rangeArgs(op: string, offset: number, length: number): void {
    checkIndex(op, 'offset', offset);
    checkIndex(op, 'length', length);
    if (offset > MAX_OFFSET - length) throw new RangeError(`${op}: offset ${offset} + length ${length} overflows`);
  }

  #fallocateArgs(mode: number, offset: number, length: number): void {
    this.#rangeArgs('fallocate', offset, length);
    if (!Number.isInteger(mode) || mode < 0 || mode > 0x7fffffff) throw new RangeError(`fallocate: bad mode ${mode}`);
  }

  /** fallocate(2) with the given FALLOC_FL_* mode. */
  async fallocate(mode: number, offset: number, length: number): Promise<void> {
    this.#fallocateArgs(mode, offset, length);
    await this.#submit(IoOp.FALLOCATE, 'fallocate', length, offset, mode);
  }

  /** Deallocate a range of a regular file; it reads back as zeroes and the size is unchanged. */
  punchHole(offset: number, length: number): Promise<void> {
    return this.fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
  }

  /** Zero a range of a regular file, keeping it allocated (EOPNOTSUPP on file systems without it). */
  zeroRange(offset: number, length: number): Promise<void> {
    return this.fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, offset, length);
  }

  /** BLKDISCARD on a block device (offset and length aligned to its logical block size). */
  async blkDiscard(offset: number, length: number): Promise<void> {
    this.#rangeArgs('blkdiscard', offset, length);
    await this.#submit(IoOp.BLKDISCARD, 'ioctl(BLKDISCARD)', length, offset);
  }

  /** BLKZEROOUT on a block device. */
  async blkZeroout(offset: number, length: number): Promise<void> {
    this.#rangeArgs('blkzeroout', offset, length);
    await this.#submit(IoOp.BLKZEROOUT, 'ioctl(BLKZEROOUT)', length, offset);
  }

  /** lseek(SEEK_DATA): the first data offset >= offset, or -1 when there is none before EOF. */
  async seekData(offset: number): Promise<number> {
    checkIndex('seekData', 'offset', offset);
    return (await this.#submit(IoOp.SEEK_DATA, 'lseek(SEEK_DATA)', 0, offset)) as number;
  }

  /** lseek(SEEK_HOLE): the first hole offset >= offset (EOF counts as a hole), or -1 past EOF. */
  async seekHole(offset: number): Promise<number> {
    checkIndex('seekHole', 'offset', offset);
    return (await this.#submit(IoOp.SEEK_HOLE, 'lseek(SEEK_HOLE)', 0, offset)) as number;
  }

  /** Size, and for block devices the logical/physical block size (BLKGETSIZE64, BLKSSZGET, BLKPBSZGET). */
  async devInfo(): Promise<NativeDevInfo> {
    return (await this.#submit(IoOp.DEV_INFO, 'fstat', 0, 0)) as NativeDevInfo;
  }

  #sync(op: number, name: string, position: number, length: number, mode: number): number | NativeDevInfo {
    if (this.#fd < 0 || this.#closing) throw new Error(`${name}: ${this.path} is closed`);
    try {
      return loadNative().ioExecuteSync(op, this.#fd, position, length, mode);
    } catch (e) {
      const err = e as { code?: string; message?: string };
      throw new NativeIoError(`${name} failed on ${this.path}: ${err.message ?? String(e)}`, err.code ?? 'EIO', name, this.path);
    }
  }

  /** Device info on the calling thread (configuration time). */
  devInfoSync(): NativeDevInfo {
    return this.#sync(IoOp.DEV_INFO, 'fstat', 0, 0, 0) as NativeDevInfo;
  }

  /** lseek(SEEK_HOLE) on the calling thread (feature probe: EINVAL/ENXIO where unsupported). */
  seekHoleSync(offset: number): number {
    checkIndex('seekHole', 'offset', offset);
    return this.#sync(IoOp.SEEK_HOLE, 'lseek(SEEK_HOLE)', offset, 0, 0) as number;
  }

  /** fallocate(2) on the calling thread (feature probes at open time). */
  fallocateSync(mode: number, offset: number, length: number): void {
    this.#fallocateArgs(mode, offset, length);
    this.#sync(IoOp.FALLOCATE, 'fallocate', offset, length, mode);
  }

  /** Waits for operations in flight, then closes the fd. Idempotent. */
  close(): Promise<void> {
    if (!this.#closing) {
      this.#closing = (async () => {
        if (this.#inflight > 0) await new Promise<void>((resolve) => (this.#drained = resolve));
        const fd = this.#fd;
        this.#fd = -1;
        if (fd >= 0) closeSync(fd);
      })();
    }
    return this.#closing;
  }
}
