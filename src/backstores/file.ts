/**
 * The `file` backstore: a regular file, created sparse if absent. UNMAP and WRITE SAME with UNMAP punch
 * holes; GET LBA STATUS comes from SEEK_DATA/SEEK_HOLE. Cache modes:
 *  - writeback: writes land in the page cache; FUA writes use RWF_DSYNC and flush() is fdatasync.
 *  - writethrough: the file is opened O_DSYNC, so every write is durable when it completes.
 * Reads and writes go through the native engine (io_uring) by default, or Node's fs (`engine: 'fs'`);
 * bench/IO-ENGINE.md records why.
 */
import {
  closeSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  read as fsRead,
  fdatasync as fsFdatasync,
  statSync,
  write as fsWrite,
} from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import {
  alignedBuffer,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  IoFile,
  isAligned,
  type IoEngineKind,
} from '../native/io.js';
import {
  BackstoreError,
  type Backstore,
  type BackstoreCapabilities,
  type CacheMode,
  type LbaStatusExtent,
} from './backstore.js';
import { checkRange, readOnlyError, readTarget, toBackstoreError } from './errors.js';

/** How reads and writes reach the file: the native addon (io_uring or its thread pool) or Node's fs. */
export type FileIoEngine = 'native' | 'native-threadpool' | 'fs';

export interface FileBackstoreOptions {
  name: string;
  path: string;
  /** Size in bytes; required when the file does not exist. A smaller existing file is grown (sparse). */
  size?: number;
  blockSize?: 512 | 4096;
  readOnly?: boolean;
  cacheMode?: CacheMode;
  /** O_DIRECT (bypass the page cache). Unaligned buffers are bounced through aligned ones. */
  direct?: boolean;
  removable?: boolean;
  engine?: FileIoEngine;
  /** Native engines: small transfers that cannot block complete synchronously (default true). */
  syncFastPath?: boolean;
  logger?: Logger;
}

/** Most extents one mapStatus call returns (GET LBA STATUS reports a prefix; the initiator asks again). */
const MAX_EXTENTS = 256;
/** Alignment for O_DIRECT bounce buffers: safe for 512- and 4096-byte sector devices. */
const DIRECT_ALIGN = 4096;
/** Zero-fill fallback writes this much at a time. */
const ZERO_CHUNK = 1 << 20;

interface ReadWrite {
  read(buf: Buffer, off: number, len: number, pos: number): Promise<number>;
  write(buf: Buffer, off: number, len: number, pos: number, dsync: boolean): Promise<void>;
  datasync(): Promise<void>;
}

function nativeReadWrite(f: IoFile): ReadWrite {
  return {
    read: (buf, off, len, pos) => f.read(buf, off, len, pos),
    write: async (buf, off, len, pos, dsync) => {
      await f.write(buf, off, len, pos, dsync);
    },
    datasync: () => f.datasync(),
  };
}

function fsReadWrite(f: IoFile): ReadWrite {
  const datasync = (): Promise<void> =>
    new Promise((resolve, reject) => fsFdatasync(f.fd, (err) => (err ? reject(err) : resolve())));
  return {
    read: (buf, off, len, pos) =>
      new Promise((resolve, reject) => {
        let done = 0;
        const step = (): void =>
          fsRead(f.fd, buf, off + done, len - done, pos + done, (err, n) => {
            if (err) return reject(err);
            done += n;
            if (n === 0 || done === len) resolve(done);
            else step();
          });
        step();
      }),
    write: (buf, off, len, pos, dsync) =>
      new Promise<void>((resolve, reject) => {
        let done = 0;
        const step = (): void =>
          fsWrite(f.fd, buf, off + done, len - done, pos + done, (err, n) => {
            if (err) return reject(err);
            done += n;
            if (done === len) resolve();
            else if (n === 0) reject(Object.assign(new Error('pwrite wrote 0 bytes'), { code: 'EIO' }));
            else step();
          });
        step();
      }).then(() => (dsync ? datasync() : undefined)),
    datasync,
  };
}

export class FileBackstore implements Backstore {
  readonly name: string;
  readonly path: string;
  readonly describe: string;
  readonly blockSize: 512 | 4096;
  readonly readOnly: boolean;
  readonly cacheMode: CacheMode;
  readonly capabilities: BackstoreCapabilities;
  readonly direct: boolean;
  readonly engine: FileIoEngine;
  #size: number;
  readonly #file: IoFile;
  readonly #rw: ReadWrite;
  readonly #log: Logger | undefined;
  #zeroRangeWorks = true;

  private constructor(
    opts: FileBackstoreOptions,
    file: IoFile,
    size: number,
    caps: BackstoreCapabilities,
    engine: FileIoEngine,
  ) {
    this.name = opts.name;
    this.path = opts.path;
    this.describe = `file backstore ${opts.name} (${opts.path})`;
    this.blockSize = opts.blockSize ?? 512;
    this.readOnly = opts.readOnly === true;
    this.cacheMode = opts.cacheMode ?? 'writeback';
    this.direct = opts.direct === true;
    this.engine = engine;
    this.capabilities = caps;
    this.#size = size;
    this.#file = file;
    this.#rw = engine === 'fs' ? fsReadWrite(file) : nativeReadWrite(file);
    this.#log = opts.logger;
  }

  /** Opens (creating sparse when absent and a size is given) synchronously: a configuration-time call. */
  static open(opts: FileBackstoreOptions): FileBackstore {
    const describe = `file backstore ${opts.name} (${opts.path})`;
    const blockSize = opts.blockSize ?? 512;
    const readOnly = opts.readOnly === true;
    const cacheMode = opts.cacheMode ?? 'writeback';
    let existing: number | undefined;
    try {
      const st = statSync(opts.path);
      if (st.isDirectory()) throw new BackstoreError('unsupported', `${describe}: path is a directory; give a file path`);
      if (st.isBlockDevice()) {
        throw new BackstoreError('unsupported', `${describe}: path is a block device; use backstore type "block"`);
      }
      existing = st.size;
    } catch (e) {
      if (e instanceof BackstoreError) throw e;
      if ((e as { code?: string }).code !== 'ENOENT') throw toBackstoreError(e, describe, 'stat');
    }
    if (existing === undefined) {
      if (readOnly) throw new BackstoreError('gone', `${describe}: file does not exist and the LUN is read-only`, 'ENOENT');
      if (opts.size === undefined) {
        throw new BackstoreError('gone', `${describe}: file does not exist; give a size to create it`, 'ENOENT');
      }
    }
    const engineKind: IoEngineKind = opts.engine === 'native-threadpool' ? 'threadpool' : 'io_uring';
    let file: IoFile;
    try {
      file = IoFile.openSync(opts.path, {
        readOnly,
        direct: opts.direct === true,
        dsync: cacheMode === 'writethrough',
        create: existing === undefined,
        engine: engineKind,
        syncFastPath: opts.syncFastPath !== false,
      });
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'EINVAL' && opts.direct) {
        throw new BackstoreError(
          'unsupported',
          `${describe}: the file system does not support O_DIRECT; set direct: false for this backstore`,
          code,
        );
      }
      throw toBackstoreError(e, describe, 'open');
    }
    try {
      const fileSize = existing ?? 0;
      let size = opts.size ?? fileSize;
      if (!readOnly && opts.size !== undefined && opts.size > fileSize) {
        ftruncateSync(file.fd, opts.size); // grows sparse: no blocks allocated
        // Make the new size, and a new file's directory entry, durable before any write is acknowledged.
        fsyncSync(file.fd);
        if (existing === undefined) FileBackstore.#syncDirectory(opts.path);
      } else if (opts.size !== undefined && opts.size > fileSize) {
        throw new BackstoreError(
          'unsupported',
          `${describe}: file is ${fileSize} bytes, smaller than the configured ${opts.size}, and the LUN is read-only`,
        );
      }
      size -= size % blockSize;
      if (size < blockSize) {
        throw new BackstoreError('unsupported', `${describe}: size ${size} is smaller than one ${blockSize}-byte block`);
      }
      const discard = !readOnly && FileBackstore.#probePunchHole(file, Math.max(size, fileSize));
      const lbaStatus = FileBackstore.#probeSeekHole(file);
      const caps: BackstoreCapabilities = {
        discard,
        discardZeroes: discard,
        lbaStatus,
        thinProvisioned: discard,
        removable: opts.removable === true,
      };
      const engine: FileIoEngine = opts.engine ?? 'native';
      const bs = new FileBackstore(opts, file, size, caps, engine);
      opts.logger?.debug(
        {
          backstore: opts.name,
          path: opts.path,
          size,
          blockSize,
          cacheMode,
          engine,
          ioEngine: file.engine,
          syncFastPath: file.syncFastPath,
          discard,
        },
        existing === undefined ? 'file backstore created' : 'file backstore opened',
      );
      return bs;
    } catch (e) {
      void file.close();
      throw e instanceof BackstoreError ? e : toBackstoreError(e, describe, 'open');
    }
  }

  static #syncDirectory(path: string): void {
    const fd = openSync(dirname(path), 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Punching a hole past EOF with KEEP_SIZE changes nothing but tells whether the file system can. */
  static #probePunchHole(file: IoFile, end: number): boolean {
    const at = Math.ceil(end / 4096) * 4096 + 4096;
    try {
      file.fallocateSync(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, at, 4096);
      return true;
    } catch {
      return false;
    }
  }

  static #probeSeekHole(file: IoFile): boolean {
    try {
      file.seekHoleSync(0);
      return true;
    } catch {
      return false;
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

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    this.#check('read', offset, length);
    const out = readTarget('read', this.describe, length, into);
    if (length === 0) return out;
    const bounce = this.direct && !isAligned(out, DIRECT_ALIGN) ? alignedBuffer(length, DIRECT_ALIGN) : out;
    let n: number;
    try {
      n = await this.#rw.read(bounce, 0, length, offset);
    } catch (e) {
      throw this.#fail(e, `read at byte ${offset} length ${length}`);
    }
    // Past the end of a file that shrank under us: the missing tail reads as zeroes, as a hole would.
    if (n < length) bounce.fill(0, n, length);
    if (bounce !== out) bounce.copy(out, 0, 0, length);
    return out;
  }

  async write(offset: number, data: Buffer, fua: boolean): Promise<void> {
    this.#check('write', offset, data.length);
    if (this.readOnly) throw readOnlyError(this.describe, 'write');
    if (data.length === 0) return;
    let src = data;
    if (this.direct && !isAligned(data, DIRECT_ALIGN)) {
      src = alignedBuffer(data.length, DIRECT_ALIGN);
      data.copy(src);
    }
    try {
      // Write-through files are O_DSYNC already; write-back FUA writes ask for RWF_DSYNC.
      await this.#rw.write(src, 0, src.length, offset, fua && this.cacheMode === 'writeback');
    } catch (e) {
      throw this.#fail(e, `write at byte ${offset} length ${data.length}`);
    }
  }

  async flush(): Promise<void> {
    // Write-through: every write was O_DSYNC and every fallocate was followed by fdatasync.
    if (this.readOnly || this.cacheMode === 'writethrough') return;
    try {
      await this.#rw.datasync();
    } catch (e) {
      throw this.#fail(e, 'flush (fdatasync)');
    }
  }

  /** fallocate changes are not covered by O_DSYNC: write-through makes them durable explicitly. */
  async #syncIfWriteThrough(): Promise<void> {
    if (this.cacheMode === 'writethrough') await this.#file.datasync();
  }

  async discard(offset: number, length: number): Promise<void> {
    this.#check('discard', offset, length);
    if (this.readOnly) throw readOnlyError(this.describe, 'discard');
    if (!this.capabilities.discard) {
      throw new BackstoreError('unsupported', `discard on ${this.describe}: the file system cannot punch holes`);
    }
    if (length === 0) return;
    try {
      await this.#file.punchHole(offset, length);
      await this.#syncIfWriteThrough();
    } catch (e) {
      throw this.#fail(e, `discard at byte ${offset} length ${length}`);
    }
  }

  async writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    this.#check('write zeroes', offset, length);
    if (this.readOnly) throw readOnlyError(this.describe, 'write zeroes');
    if (length === 0) return;
    try {
      if (unmap && this.capabilities.discard) {
        await this.#file.punchHole(offset, length);
      } else if (!(await this.#zeroAllocated(offset, length))) {
        await this.#writeZeroBuffers(offset, length);
      }
      await this.#syncIfWriteThrough();
    } catch (e) {
      throw this.#fail(e, `write zeroes at byte ${offset} length ${length}`);
    }
  }

  /** Zero and keep allocated: ZERO_RANGE, else punch + re-allocate. false when neither works here. */
  async #zeroAllocated(offset: number, length: number): Promise<boolean> {
    if (this.#zeroRangeWorks) {
      try {
        await this.#file.zeroRange(offset, length);
        return true;
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code !== 'EOPNOTSUPP' && code !== 'EINVAL') throw e;
        this.#zeroRangeWorks = false;
      }
    }
    if (!this.capabilities.discard) return false;
    await this.#file.punchHole(offset, length);
    try {
      await this.#file.fallocate(FALLOC_FL_KEEP_SIZE, offset, length);
    } catch (e) {
      // The range already reads as zeroes; staying deallocated is acceptable when allocation fails.
      const code = (e as { code?: string }).code;
      if (code !== 'EOPNOTSUPP' && code !== 'EINVAL') throw e;
    }
    return true;
  }

  async #writeZeroBuffers(offset: number, length: number): Promise<void> {
    const chunk = Math.min(length, ZERO_CHUNK);
    const zeros = this.direct ? alignedBuffer(chunk, DIRECT_ALIGN) : Buffer.alloc(chunk);
    for (let pos = 0; pos < length; pos += chunk) {
      const n = Math.min(chunk, length - pos);
      await this.#rw.write(zeros, 0, n, offset + pos, false);
    }
  }

  async mapStatus(offset: number, length: number): Promise<LbaStatusExtent[]> {
    this.#check('map status', offset, length);
    const size = this.#size;
    if (offset >= size) return [];
    if (!this.capabilities.lbaStatus) return [{ offset, length: size - offset, mapped: true }];
    const bs = this.blockSize;
    const want = Math.max(offset + length, offset + bs);
    const out: LbaStatusExtent[] = [];
    const push = (from: number, to: number, mapped: boolean): void => {
      if (to <= from) return;
      const last = out[out.length - 1];
      if (last && last.mapped === mapped && last.offset + last.length === from) last.length += to - from;
      else out.push({ offset: from, length: to - from, mapped });
    };
    try {
      let pos = offset;
      while (pos < want && pos < size && out.length < MAX_EXTENTS) {
        const data = await this.#file.seekData(pos);
        if (data === pos) {
          // Data extent: up to the next hole, rounded up so a partly written block counts as mapped.
          const hole = await this.#file.seekHole(pos);
          const end = Math.min(Math.ceil((hole < 0 ? size : hole) / bs) * bs, size);
          push(pos, Math.max(end, pos + bs), true);
          pos = Math.max(end, pos + bs);
        } else {
          const holeEnd = data < 0 ? size : Math.min(Math.floor(data / bs) * bs, size);
          if (holeEnd > pos) {
            push(pos, holeEnd, false);
            pos = holeEnd;
          } else {
            // Data begins inside this block: the block is mapped.
            push(pos, pos + bs, true);
            pos += bs;
          }
        }
      }
    } catch (e) {
      throw this.#fail(e, `map status at byte ${offset}`);
    }
    return out;
  }

  async refreshSize(): Promise<number> {
    try {
      const info = await this.#file.devInfo();
      this.#size = info.size - (info.size % this.blockSize);
    } catch (e) {
      throw this.#fail(e, 'refresh size (fstat)');
    }
    return this.#size;
  }

  async close(): Promise<void> {
    if (this.#file.closed) return;
    try {
      // Removing a LUN must not leave acknowledged write-back data only in the page cache.
      if (!this.readOnly && this.cacheMode === 'writeback') await this.#file.datasync();
    } finally {
      await this.#file.close();
    }
  }
}
