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
import { SharedRegion, type ShmSegment } from '../../native/shm.js';

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
export const GRANT_ENTRY_BYTES = 8;
export const GRANT_TABLE_BYTES = SIM_GRANT_ENTRIES * GRANT_ENTRY_BYTES;

/** Where a frame span lies: `length` bytes from `offset` within page `frame`. */
export interface FrameSpan {
  frame: number;
  offset: number;
  length: number;
}

function grantOffset(ref: number): number {
  if (!Number.isInteger(ref) || ref < 0 || ref >= SIM_GRANT_ENTRIES) throw new RangeError(`grant ref ${ref} outside the table`);
  return ref * GRANT_ENTRY_BYTES;
}

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

  /**
   * Copy several frame spans, end to end, into dst from dstOffset: one call to the addon when the
   * file is mapped (a per-page call costs more than the 4 KiB copy itself).
   */
  readFrames(spans: readonly FrameSpan[], dst: Buffer, dstOffset: number): void {
    this.moveFrames('read', spans, dst, dstOffset);
  }

  /** Copy consecutive bytes of src (from srcOffset) out to several frame spans, in order. */
  writeFrames(spans: readonly FrameSpan[], src: Buffer, srcOffset: number): void {
    this.moveFrames('write', spans, src, srcOffset);
  }

  /**
   * Whether several frame spans, end to end, hold the bytes of `expected` from `at`: compared in place
   * when the file is mapped (a guest checking what it read need not copy it out first).
   */
  framesEqual(spans: readonly FrameSpan[], expected: Buffer, at: number): boolean {
    if (this.region) return this.region.equals(this.segments(spans), expected, at);
    let total = 0;
    for (const s of spans) total += s.length;
    const got = Buffer.allocUnsafe(total);
    this.readFrames(spans, got, 0);
    return got.equals(expected.subarray(at, at + total));
  }

  private moveFrames(dir: 'read' | 'write', spans: readonly FrameSpan[], buf: Buffer, at: number): void {
    if (this.region) {
      if (dir === 'read') this.region.gather(this.segments(spans), buf, at);
      else this.region.scatter(this.segments(spans), buf, at);
      return;
    }
    for (const s of spans) {
      if (dir === 'read') this.readFrame(s.frame, s.offset, buf, at, s.length);
      else this.writeFrame(s.frame, s.offset, buf, at, s.length);
      at += s.length;
    }
  }

  private segments(spans: readonly FrameSpan[]): ShmSegment[] {
    const segs: ShmSegment[] = new Array(spans.length);
    for (let i = 0; i < spans.length; i++) {
      const s = spans[i]!;
      segs[i] = { offset: this.frameOffset(s.frame, s.offset, s.length), length: s.length };
    }
    return segs;
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
    const b = Buffer.alloc(GRANT_ENTRY_BYTES);
    this.readGrants([ref], b);
    return { flags: b.readUInt16LE(0), domid: b.readUInt16LE(2), frame: b.readUInt32LE(4) };
  }

  /**
   * Copy the raw entries of `refs` (each inside the table) into `out`, 8 bytes each, in order: one
   * call to the addon for a whole request's grants.
   */
  readGrants(refs: readonly number[], out: Buffer): void {
    if (out.length < refs.length * GRANT_ENTRY_BYTES) throw new RangeError(`${refs.length} grant entries need ${refs.length * GRANT_ENTRY_BYTES} bytes`);
    const segs: ShmSegment[] = new Array(refs.length);
    for (let i = 0; i < refs.length; i++) segs[i] = { offset: grantOffset(refs[i]!), length: GRANT_ENTRY_BYTES };
    if (refs.length === 0) return;
    if (this.region) {
      this.region.gather(segs, out, 0);
      return;
    }
    segs.forEach((s, i) => readSync(this.handle, out, i * GRANT_ENTRY_BYTES, GRANT_ENTRY_BYTES, s.offset));
  }

  writeGrant(ref: number, e: { flags: number; domid: number; frame: number }): void {
    this.writeGrants([ref], [e.frame], e.flags, e.domid);
  }

  /**
   * Fill the entries `refs[i]` with frame `frames[i]` (all 0 when omitted), `flags` and `domid`. Every
   * frame and domid is published before any flags that make an entry valid (Xen's required order);
   * with the file mapped, that is three calls to the addon for any number of entries.
   */
  writeGrants(refs: readonly number[], frames: readonly number[] | undefined, flags: number, domid: number): void {
    const n = refs.length;
    if (n === 0) return;
    // Two images laid out for two scatters: (domid, frame) per entry, then flags per entry.
    const bodies = Buffer.allocUnsafe(n * 6);
    const heads = Buffer.allocUnsafe(n * 2);
    const bodySegs: ShmSegment[] = new Array(n);
    const headSegs: ShmSegment[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const at = grantOffset(refs[i]!);
      bodies.writeUInt16LE(domid, i * 6);
      bodies.writeUInt32LE((frames ? frames[i]! : 0) >>> 0, i * 6 + 2);
      heads.writeUInt16LE(flags, i * 2);
      bodySegs[i] = { offset: at + 2, length: 6 };
      headSegs[i] = { offset: at, length: 2 };
    }
    if (this.region) {
      this.region.scatter(bodySegs, bodies, 0);
      // The first entry's flags go out as a release store followed by a full barrier: no flags
      // become visible before every frame and domid, on any architecture.
      this.region.store32le(headSegs[0]!.offset, ((flags & 0xffff) | ((domid & 0xffff) << 16)) >>> 0);
      if (n > 1) this.region.scatter(headSegs.slice(1), heads, 2);
      return;
    }
    for (let i = 0; i < n; i++) writeSync(this.handle, bodies, i * 6, 6, bodySegs[i]!.offset);
    for (let i = 0; i < n; i++) writeSync(this.handle, heads, i * 2, 2, headSegs[i]!.offset);
  }

  close(): void {
    this.region?.close();
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
