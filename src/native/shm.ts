/**
 * Guest-memory primitives for the IBM VIO and Xen fabrics: a MAP_SHARED mapping of a shared-memory file
 * or memfd, read and written only by bounds-checked copies (ARCHITECTURE.md rule 6). The other process
 * (a guest emulator) is hostile: every offset and length is checked here, with the numbers in the
 * message, and again in C++.
 */
import { loadNative, type NativeShmHandle } from './index.js';

export interface ShmSegment {
  offset: number;
  length: number;
}

/** Most segments one gather/scatter call takes (the C++ side enforces the same bound). */
export const SHM_MAX_SEGMENTS = 1 << 20;

function checkIndex(what: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new RangeError(`SharedRegion: ${what} must be a non-negative safe integer, got ${String(v)}`);
  }
  return v;
}

function checkBuffer(what: string, b: unknown): Uint8Array {
  if (!(b instanceof Uint8Array)) throw new TypeError(`SharedRegion: ${what} must be a Buffer or Uint8Array`);
  return b;
}

function checkSpan(op: string, offset: number, length: number, size: number, what: string): void {
  if (offset > size || length > size - offset) {
    throw new RangeError(`SharedRegion.${op}: ${what} offset ${offset} + length ${length} exceeds ${what} size ${size}`);
  }
}

export class SharedRegion {
  #handle: NativeShmHandle | undefined;
  readonly size: number;
  readonly readOnly: boolean;
  /** What was mapped, for messages ("file /dev/shm/x", "memfd", "fd 7"). */
  readonly describe: string;

  private constructor(handle: NativeShmHandle, readOnly: boolean, describe: string) {
    this.#handle = handle;
    this.size = handle.size();
    this.readOnly = readOnly;
    this.describe = describe;
  }

  /** Create (or truncate) `path` to `size` bytes and map it read-write, shared. */
  static create(path: string, size: number): SharedRegion {
    if (typeof path !== 'string' || path === '') throw new TypeError('SharedRegion.create: path must be a non-empty string');
    checkIndex('size', size);
    if (size === 0) throw new RangeError(`SharedRegion.create: size must be at least 1 byte (${path})`);
    return new SharedRegion(loadNative().shmCreate(path, size), false, `file ${path}`);
  }

  /** Map an existing file whole. */
  static open(path: string, opts: { readOnly?: boolean } = {}): SharedRegion {
    if (typeof path !== 'string' || path === '') throw new TypeError('SharedRegion.open: path must be a non-empty string');
    const ro = opts.readOnly === true;
    return new SharedRegion(loadNative().shmOpen(path, ro), ro, `file ${path}`);
  }

  /** Map `size` bytes of an open fd (the caller keeps owning the fd; it may be closed after this). */
  static fromFd(fd: number, size: number, opts: { readOnly?: boolean } = {}): SharedRegion {
    checkIndex('fd', fd);
    if (fd > 0x7fffffff) throw new RangeError(`SharedRegion.fromFd: fd ${fd} is not a valid descriptor`);
    checkIndex('size', size);
    if (size === 0) throw new RangeError('SharedRegion.fromFd: size must be at least 1 byte');
    const ro = opts.readOnly === true;
    return new SharedRegion(loadNative().shmFromFd(fd, size, ro), ro, `fd ${fd}`);
  }

  /**
   * An anonymous memfd region, sealed against shrinking and growing so a peer given the fd cannot make
   * accesses fault. `fd` (owned by the region, closed by close()) can be passed to a child process
   * (`spawn(..., { stdio: [..., fd] })`) or opened by path as `/proc/<pid>/fd/<fd>`.
   */
  static createAnonymous(size: number): SharedRegion {
    checkIndex('size', size);
    if (size === 0) throw new RangeError('SharedRegion.createAnonymous: size must be at least 1 byte');
    return new SharedRegion(loadNative().shmCreateAnonymous(size), false, 'memfd');
  }

  /** The memfd of a createAnonymous region; -1 for regions mapped from a path or a caller's fd. */
  get fd(): number {
    return this.#live('fd').fd();
  }

  get closed(): boolean {
    return this.#handle === undefined;
  }

  #live(op: string): NativeShmHandle {
    if (!this.#handle) throw new Error(`SharedRegion.${op}: region (${this.describe}) is closed`);
    return this.#handle;
  }

  #writable(op: string): NativeShmHandle {
    const h = this.#live(op);
    if (this.readOnly) throw new Error(`SharedRegion.${op}: region (${this.describe}) is mapped read-only`);
    return h;
  }

  /** Copy region bytes [offset, offset+length) into dst at dstOffset (length defaults to the rest of dst). */
  read(offset: number, dst: Buffer | Uint8Array, dstOffset = 0, length?: number): void {
    const h = this.#live('read');
    h.read(offset, dst, dstOffset, this.#copyLength('read', 'dst', offset, dst, dstOffset, length));
  }

  /** Copy src[srcOffset, srcOffset+length) into the region at offset (length defaults to the rest of src). */
  write(offset: number, src: Buffer | Uint8Array, srcOffset = 0, length?: number): void {
    const h = this.#writable('write');
    h.write(offset, src, srcOffset, this.#copyLength('write', 'src', offset, src, srcOffset, length));
  }

  /** Validates a read/write's arguments; returns the length to copy (default: the rest of the buffer). */
  #copyLength(
    op: string,
    bufName: 'dst' | 'src',
    offset: number,
    buf: Buffer | Uint8Array,
    bufOffset: number,
    length: number | undefined,
  ): number {
    checkBuffer(bufName, buf);
    checkIndex('offset', offset);
    checkIndex(`${bufName}Offset`, bufOffset);
    checkSpan(op, bufOffset, 0, buf.length, 'buffer');
    const len = length === undefined ? buf.length - bufOffset : checkIndex('length', length);
    checkSpan(op, bufOffset, len, buf.length, 'buffer');
    checkSpan(op, offset, len, this.size, 'region');
    return len;
  }

  #segments(op: string, segments: ReadonlyArray<ShmSegment>, room: number): Float64Array {
    if (!Array.isArray(segments)) throw new TypeError(`SharedRegion.${op}: segments must be an array`);
    if (segments.length > SHM_MAX_SEGMENTS) {
      throw new RangeError(`SharedRegion.${op}: ${segments.length} segments exceed the limit of ${SHM_MAX_SEGMENTS}`);
    }
    const flat = new Float64Array(segments.length * 2);
    let total = 0;
    for (let i = 0; i < segments.length; i++) {
      const s = segments[i];
      if (typeof s !== 'object' || s === null) throw new TypeError(`SharedRegion.${op}: segment ${i} is not an object`);
      // Read each field once: a getter must not be able to pass the check and then change.
      const offset = s.offset;
      const length = s.length;
      checkIndex(`segment ${i} offset`, offset);
      checkIndex(`segment ${i} length`, length);
      if (offset > this.size || length > this.size - offset) {
        throw new RangeError(
          `SharedRegion.${op}: segment ${i} offset ${offset} + length ${length} exceeds region size ${this.size}`,
        );
      }
      flat[2 * i] = offset;
      flat[2 * i + 1] = length;
      total += length;
    }
    if (total > room) {
      throw new RangeError(`SharedRegion.${op}: segments total ${total} bytes but the buffer has room for ${room}`);
    }
    return flat;
  }

  /** Copy the segments, in order, into dst starting at dstOffset. Returns the bytes copied. */
  gather(segments: ReadonlyArray<ShmSegment>, dst: Buffer | Uint8Array, dstOffset = 0): number {
    const h = this.#live('gather');
    return h.gather(this.#sgArgs('gather', 'dst', segments, dst, dstOffset), dst, dstOffset);
  }

  /** Copy consecutive bytes of src (from srcOffset) out to the segments, in order. Returns the bytes copied. */
  scatter(segments: ReadonlyArray<ShmSegment>, src: Buffer | Uint8Array, srcOffset = 0): number {
    const h = this.#writable('scatter');
    return h.scatter(this.#sgArgs('scatter', 'src', segments, src, srcOffset), src, srcOffset);
  }

  /**
   * Whether the segments, in order, hold exactly the bytes of `expected` from `expectedOffset` (as many
   * as the segments total) — compared where they lie, without copying them out first.
   */
  equals(segments: ReadonlyArray<ShmSegment>, expected: Buffer | Uint8Array, expectedOffset = 0): boolean {
    const h = this.#live('equals');
    return h.equals(this.#sgArgs('equals', 'expected', segments, expected, expectedOffset), expected, expectedOffset);
  }

  /** Validates a gather/scatter's buffer and segments; returns the flat segment list for the addon. */
  #sgArgs(
    op: string,
    bufName: 'dst' | 'src' | 'expected',
    segments: ReadonlyArray<ShmSegment>,
    buf: Buffer | Uint8Array,
    bufOffset: number,
  ): Float64Array {
    checkBuffer(bufName, buf);
    checkIndex(`${bufName}Offset`, bufOffset);
    checkSpan(op, bufOffset, 0, buf.length, 'buffer');
    return this.#segments(op, segments, buf.length - bufOffset);
  }

  /** Copy between two regions (H_COPY_RDMA / grant copy emulation); overlapping ranges are handled. */
  static copy(src: SharedRegion, srcOffset: number, dst: SharedRegion, dstOffset: number, length: number): void {
    if (!(src instanceof SharedRegion) || !(dst instanceof SharedRegion)) {
      throw new TypeError('SharedRegion.copy: src and dst must be SharedRegion instances');
    }
    const s = src.#live('copy');
    const d = dst.#writable('copy');
    checkIndex('srcOffset', srcOffset);
    checkIndex('dstOffset', dstOffset);
    checkIndex('length', length);
    checkSpan('copy', srcOffset, length, src.size, 'source region');
    checkSpan('copy', dstOffset, length, dst.size, 'destination region');
    loadNative().shmCopy(s, srcOffset, d, dstOffset, length);
  }

  #load32(op: string, offset: number, bigEndian: boolean): number {
    const h = this.#live(op);
    this.#check32(op, offset);
    return h.load32(offset, bigEndian);
  }

  #store32(op: string, offset: number, v: number, bigEndian: boolean): void {
    const h = this.#writable(op);
    this.#check32(op, offset);
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`SharedRegion.${op}: ${v} is not a uint32`);
    h.store32(offset, v, bigEndian);
  }

  #check32(op: string, offset: number): void {
    checkIndex('offset', offset);
    checkSpan(op, offset, 4, this.size, 'region');
    if (offset % 4 !== 0) throw new RangeError(`SharedRegion.${op}: offset ${offset} is not 4-byte aligned`);
  }

  /** Atomic (acquire) load of a little-endian uint32 at a 4-byte aligned offset (Xen ring indices). */
  load32le(offset: number): number {
    return this.#load32('load32le', offset, false);
  }

  /** Atomic (release, then full barrier) store of a little-endian uint32 at a 4-byte aligned offset. */
  store32le(offset: number, v: number): void {
    this.#store32('store32le', offset, v, false);
  }

  /** Big-endian variants (CRQ and SRP structures of POWER guests are big-endian). */
  load32be(offset: number): number {
    return this.#load32('load32be', offset, true);
  }

  store32be(offset: number, v: number): void {
    this.#store32('store32be', offset, v, true);
  }

  /** Unmap (and close the owned memfd). Idempotent; any later access throws a clear error. */
  close(): void {
    const h = this.#handle;
    this.#handle = undefined;
    h?.close();
  }
}
