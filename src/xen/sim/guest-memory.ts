/**
 * A simulated domain's memory: one shared file holding its grant table (v1 entries, grant_table.h
 * `struct grant_entry_v1 { u16 flags; u16 domid; u32 frame; }`) followed by its page frames. The
 * guest process writes grant entries and data; the backend process reaches the pages only through
 * the simulated hypervisor (`grant-table.ts`), which checks each entry exactly as Xen would.
 *
 * The file is mapped shared through the addon (`SharedRegion`: bounds-checked copies, ring indices
 * with barriers). Where the addon cannot be loaded, pread/pwrite on the same file is used instead
 * (coherent through the page cache between processes; index accesses are single system calls).
 */
import { Buffer } from 'node:buffer';
import { closeSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { XEN_PAGE_SIZE } from '../ring.js';
import { SharedRegion } from '../../native/shm.js';

function tryMap(path: string): SharedRegion | undefined {
  if (process.env.VTGT_XEN_SIM_NO_SHM === '1') return undefined;
  try {
    return SharedRegion.open(path);
  } catch {
    return undefined;
  }
}

/** grant_table.h GTF_* flags of a v1 entry. */
export const GTF_invalid = 0;
export const GTF_permit_access = 1;
export const GTF_type_mask = 3;
export const GTF_readonly = 1 << 2;

/** Grant entries in the simulated table (8 pages of 8-byte v1 entries). */
export const SIM_GRANT_ENTRIES = 4096;
export const GRANT_TABLE_BYTES = SIM_GRANT_ENTRIES * 8;

export class GuestMemoryFile {
  private fd: number | undefined;
  private readonly word = Buffer.alloc(4);
  private readonly region: SharedRegion | undefined;

  private constructor(
    readonly path: string,
    fd: number,
    readonly frames: number,
  ) {
    this.fd = fd;
    this.region = tryMap(path);
  }

  /** True when the file is mapped through the addon rather than accessed with pread/pwrite. */
  get mapped(): boolean {
    return this.region !== undefined;
  }

  /** Create (truncate) a domain memory file with `frames` pages after the grant table. */
  static create(path: string, frames: number): GuestMemoryFile {
    const fd = openSync(path, 'w+', 0o600);
    ftruncateSync(fd, GRANT_TABLE_BYTES + frames * XEN_PAGE_SIZE);
    return new GuestMemoryFile(path, fd, frames);
  }

  /** Open an existing domain memory file; the frame count follows from its size. */
  static open(path: string): GuestMemoryFile {
    const fd = openSync(path, 'r+');
    const size = fstatSync(fd).size;
    return new GuestMemoryFile(path, fd, Math.max(0, Math.floor((size - GRANT_TABLE_BYTES) / XEN_PAGE_SIZE)));
  }

  private get handle(): number {
    if (this.fd === undefined) throw new Error(`guest memory ${this.path} is closed`);
    return this.fd;
  }

  /** File offset of byte `offset` of frame `frame`; RangeError outside the frame. */
  frameOffset(frame: number, offset: number, length: number): number {
    if (!Number.isInteger(frame) || frame < 0 || frame >= this.frames) throw new RangeError(`frame ${frame} outside 0..${this.frames - 1}`);
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > XEN_PAGE_SIZE) {
      throw new RangeError(`page range [${offset}, +${length}) outside the ${XEN_PAGE_SIZE}-byte page`);
    }
    return GRANT_TABLE_BYTES + frame * XEN_PAGE_SIZE + offset;
  }

  readFrame(frame: number, offset: number, dst: Buffer, dstOffset: number, length: number): void {
    if (dstOffset < 0 || dstOffset + length > dst.length) throw new RangeError('destination too small');
    const pos = this.frameOffset(frame, offset, length);
    if (this.region) return this.region.read(pos, dst, dstOffset, length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.handle, dst, dstOffset + done, length - done, pos + done);
      if (n <= 0) throw new Error(`short read from ${this.path}`);
      done += n;
    }
  }

  writeFrame(frame: number, offset: number, src: Buffer, srcOffset: number, length: number): void {
    if (srcOffset < 0 || srcOffset + length > src.length) throw new RangeError('source too small');
    const pos = this.frameOffset(frame, offset, length);
    if (this.region) return this.region.write(pos, src, srcOffset, length);
    let done = 0;
    while (done < length) done += writeSync(this.handle, src, srcOffset + done, length - done, pos + done);
  }

  load32(frame: number, offset: number): number {
    if (this.region) return this.region.load32le(this.frameOffset(frame, offset, 4));
    this.readFrame(frame, offset, this.word, 0, 4);
    return this.word.readUInt32LE(0);
  }

  store32(frame: number, offset: number, value: number): void {
    if (this.region) return this.region.store32le(this.frameOffset(frame, offset, 4), value >>> 0);
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value >>> 0, 0);
    this.writeFrame(frame, offset, b, 0, 4);
  }

  /** Read grant entry `ref` (raw; the caller validates). */
  readGrant(ref: number): { flags: number; domid: number; frame: number } {
    const b = Buffer.alloc(8);
    if (this.region) this.region.read(ref * 8, b, 0, 8);
    else readSync(this.handle, b, 0, 8, ref * 8);
    return { flags: b.readUInt16LE(0), domid: b.readUInt16LE(2), frame: b.readUInt32LE(4) };
  }

  writeGrant(ref: number, e: { flags: number; domid: number; frame: number }): void {
    if (!Number.isInteger(ref) || ref < 0 || ref >= SIM_GRANT_ENTRIES) throw new RangeError(`grant ref ${ref} outside the table`);
    const b = Buffer.alloc(8);
    // Publish frame and domid before the flags that make the entry valid (Xen's required order).
    b.writeUInt16LE(e.domid, 2);
    b.writeUInt32LE(e.frame >>> 0, 4);
    if (this.region) {
      this.region.write(ref * 8 + 2, b, 2, 6);
      // flags + domid as one barriered 32-bit store, after the frame.
      b.writeUInt16LE(e.flags, 0);
      this.region.store32le(ref * 8, b.readUInt32LE(0));
      return;
    }
    writeSync(this.handle, b, 2, 6, ref * 8 + 2);
    b.writeUInt16LE(e.flags, 0);
    writeSync(this.handle, b, 0, 2, ref * 8);
  }

  close(): void {
    this.region?.close();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
