/**
 * The `file` backstore: a regular file, created sparse if absent. UNMAP and WRITE SAME with UNMAP punch
 * holes; GET LBA STATUS comes from SEEK_DATA/SEEK_HOLE. Cache modes:
 *  - writeback: writes land in the page cache; FUA writes use RWF_DSYNC and flush() is fdatasync.
 *  - writethrough: the file is opened O_DSYNC, so every write is durable when it completes.
 * Reads and writes go through the native engine (io_uring) by default, or Node's fs (`engine: 'fs'`);
 * bench/IO-ENGINE.md records why.
 */
import { Buffer } from 'node:buffer';
import { closeSync, fsyncSync, ftruncateSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  alignedBuffer,
  FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_PUNCH_HOLE,
  IoFile,
  type IoEngineKind,
} from '../native/io.js';
import { BackstoreError, type BackstoreCapabilities, type LbaStatusExtent } from './backstore.js';
import { toBackstoreError } from './errors.js';
import { allMapped, ExtentList } from './extents.js';
import { describeFdBackstore, DIRECT_ALIGN, FdBackstore } from './fd-backstore.js';
import type { FdBackstoreOptions, FileIoEngine } from './options.js';
import { fsReadWrite, nativeReadWrite } from './read-write.js';

export type { FileIoEngine } from './options.js';

export interface FileBackstoreOptions extends FdBackstoreOptions {
  /** Size in bytes; required when the file does not exist. A smaller existing file is grown (sparse). */
  size?: number;
  /** Default 'native'; see bench/IO-ENGINE.md. */
  engine?: FileIoEngine;
  /** Native engines: small transfers that cannot block complete synchronously (default true). */
  syncFastPath?: boolean;
}

/** Most extents one mapStatus call returns (GET LBA STATUS reports a prefix; the initiator asks again). */
const MAX_EXTENTS = 256;
/** Zero-fill fallback writes this much at a time. */
const ZERO_CHUNK = 1 << 20;

export class FileBackstore extends FdBackstore {
  readonly engine: FileIoEngine;
  #zeroRangeWorks = true;

  private constructor(
    opts: FileBackstoreOptions,
    file: IoFile,
    size: number,
    caps: BackstoreCapabilities,
    engine: FileIoEngine,
  ) {
    super(opts, {
      describe: describeFdBackstore('file', opts),
      blockSize: opts.blockSize ?? 512,
      readOnly: opts.readOnly === true,
      capabilities: caps,
      file,
      rw: engine === 'fs' ? fsReadWrite(file) : nativeReadWrite(file),
      sizeBytes: size,
      directAlign: DIRECT_ALIGN,
      sizeQuery: 'fstat',
    });
    this.engine = engine;
  }

  /** Opens (creating sparse when absent and a size is given) synchronously: a configuration-time call. */
  static open(opts: FileBackstoreOptions): FileBackstore {
    const describe = describeFdBackstore('file', opts);
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

  protected shortRead(buf: Buffer, n: number, length: number): void {
    // Past the end of a file that shrank under us: the missing tail reads as zeroes, as a hole would.
    buf.fill(0, n, length);
  }

  async discard(offset: number, length: number): Promise<void> {
    this.checkModify('discard', offset, length);
    if (!this.capabilities.discard) {
      throw new BackstoreError('unsupported', `discard on ${this.describe}: the file system cannot punch holes`);
    }
    if (length === 0) return;
    try {
      await this.file.punchHole(offset, length);
      await this.syncIfWriteThrough();
    } catch (e) {
      throw this.fail(e, `discard at byte ${offset} length ${length}`);
    }
  }

  async writeZeroes(offset: number, length: number, unmap: boolean): Promise<void> {
    this.checkModify('write zeroes', offset, length);
    if (length === 0) return;
    try {
      if (unmap && this.capabilities.discard) {
        await this.file.punchHole(offset, length);
      } else if (!(await this.#zeroAllocated(offset, length))) {
        await this.#writeZeroBuffers(offset, length);
      }
      await this.syncIfWriteThrough();
    } catch (e) {
      throw this.fail(e, `write zeroes at byte ${offset} length ${length}`);
    }
  }

  /** Zero and keep allocated: ZERO_RANGE, else punch + re-allocate. false when neither works here. */
  async #zeroAllocated(offset: number, length: number): Promise<boolean> {
    if (this.#zeroRangeWorks) {
      try {
        await this.file.zeroRange(offset, length);
        return true;
      } catch (e) {
        const code = (e as { code?: string }).code;
        if (code !== 'EOPNOTSUPP' && code !== 'EINVAL') throw e;
        this.#zeroRangeWorks = false;
      }
    }
    if (!this.capabilities.discard) return false;
    await this.file.punchHole(offset, length);
    try {
      await this.file.fallocate(FALLOC_FL_KEEP_SIZE, offset, length);
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
      await this.rw.write(zeros, 0, n, offset + pos, false);
    }
  }

  async mapStatus(offset: number, length: number): Promise<LbaStatusExtent[]> {
    this.check('map status', offset, length);
    const size = this.sizeBytes;
    if (offset >= size || !this.capabilities.lbaStatus) return allMapped(offset, size);
    const bs = this.blockSize;
    const want = Math.max(offset + length, offset + bs);
    const out = new ExtentList();
    try {
      let pos = offset;
      while (pos < want && pos < size && out.count < MAX_EXTENTS) {
        const data = await this.file.seekData(pos);
        if (data === pos) {
          // Data extent: up to the next hole, rounded up so a partly written block counts as mapped.
          const hole = await this.file.seekHole(pos);
          const end = Math.min(Math.ceil((hole < 0 ? size : hole) / bs) * bs, size);
          out.add(pos, Math.max(end, pos + bs), true);
          pos = Math.max(end, pos + bs);
        } else {
          const holeEnd = data < 0 ? size : Math.min(Math.floor(data / bs) * bs, size);
          if (holeEnd > pos) {
            out.add(pos, holeEnd, false);
            pos = holeEnd;
          } else {
            // Data begins inside this block: the block is mapped.
            out.add(pos, pos + bs, true);
            pos += bs;
          }
        }
      }
    } catch (e) {
      throw this.fail(e, `map status at byte ${offset}`);
    }
    return out.extents;
  }
}
