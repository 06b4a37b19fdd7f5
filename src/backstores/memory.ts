/**
 * The `memory` backstore: sparse and volatile. Storage is a map of fixed-size chunks allocated on first
 * write, so a 1 GiB LUN costs nothing until written; discard frees whole chunks (and zeroes partial
 * ones), and mapStatus reports allocated chunks as mapped.
 *
 * READs borrow the chunk's bytes instead of copying them out (`lendRead`): bytes a READ is still
 * sending are never written in place — a write to them replaces the chunk with a copy first — so
 * each READ sends the data as it was when it ran. WRITEs from fabrics that copy synchronously land
 * their data in the chunk directly (`lendWrite`).
 */
import { Buffer } from 'node:buffer';
import { totalmem } from 'node:os';
import { BackstoreError, type Backstore, type BackstoreCapabilities, type LbaStatusExtent, type LentBytes } from './backstore.js';
import { checkRange, readOnlyError, readTarget } from './errors.js';
import { ImmediateBackstore } from './immediate.js';
import { ExtentList } from './extents.js';
import { lendZeroes } from './zeroes.js';
import type { BackstoreBaseOptions } from './options.js';

export interface MemoryBackstoreOptions extends BackstoreBaseOptions {
  size: number;
  /** Allocation unit in bytes (power of two, multiple of blockSize); default 1 MiB. */
  chunkSize?: number;
  /**
   * Most bytes the store may allocate; writes past it fail as 'nospace' (thin pool exhausted) instead
   * of an initiator filling a large LUN until the process dies. Default: the smaller of the size and
   * half of the machine's memory.
   */
  maxAllocatedBytes?: number;
}

// Large enough that the usual transfers (up to 128 KiB and more, aligned) lie within one chunk and
// can be lent; the last chunk of a store is only as long as the store.
const DEFAULT_CHUNK = 1 << 20;

/** A range of a chunk a READ is still sending. */
interface Loan {
  at: number;
  end: number;
}

/** One allocation unit, and the ranges of it READs are still sending (those are never written in place). */
class Chunk {
  readonly loans: Loan[] = [];
  constructor(readonly bytes: Buffer) {}

  /** Whether a READ still sends any byte of [at, end). */
  lentWithin(at: number, end: number): boolean {
    for (const l of this.loans) if (l.at < end && at < l.end) return true;
    return false;
  }
}

export class MemoryBackstore extends ImmediateBackstore implements Backstore {
  readonly name: string;
  readonly describe: string;
  readonly blockSize: 512 | 4096;
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  // Nothing volatile sits between a completed write and the "medium": no write cache to report.
  readonly cacheMode = 'writethrough' as const;
  readonly capabilities: BackstoreCapabilities;
  readonly chunkSize: number;
  readonly maxAllocatedBytes: number;
  readonly #chunks = new Map<number, Chunk>();
  #allocated = 0;

  constructor(opts: MemoryBackstoreOptions) {
    super();
    this.name = opts.name;
    this.describe = `memory backstore ${opts.name}`;
    this.blockSize = opts.blockSize ?? 512;
    this.sizeBytes = opts.size;
    this.readOnly = opts.readOnly === true;
    const chunk = opts.chunkSize ?? DEFAULT_CHUNK;
    if (!Number.isInteger(chunk) || chunk < this.blockSize || (chunk & (chunk - 1)) !== 0 || chunk > 1 << 24) {
      throw new RangeError(`${this.describe}: chunkSize ${chunk} must be a power of two between ${this.blockSize} and 16 MiB`);
    }
    this.chunkSize = chunk;
    this.maxAllocatedBytes = opts.maxAllocatedBytes ?? Math.min(opts.size, Math.floor(totalmem() / 2));
    this.capabilities = {
      discard: true,
      discardZeroes: true,
      lbaStatus: true,
      thinProvisioned: true,
      removable: opts.removable === true,
    };
  }

  /** Bytes currently allocated (for tests and stats). */
  get allocatedBytes(): number {
    return this.#allocated;
  }

  /** Length of chunk `idx`: the last one ends with the store. */
  #chunkLength(idx: number): number {
    return Math.min(this.chunkSize, this.sizeBytes - idx * this.chunkSize);
  }

  /**
   * Chunk `idx`, ready for bytes [at, end) of it to be changed in place: allocated if absent, and
   * replaced by a copy if a READ still sends any of those bytes. Writes beside what READs send go in
   * place: with 1 MiB chunks and many READs in flight, copying on every write would cost more than
   * the copies lending saves.
   */
  #writable(idx: number, at: number, end: number): Chunk {
    let c = this.#chunks.get(idx);
    if (!c) {
      const len = this.#chunkLength(idx);
      c = new Chunk(Buffer.alloc(len));
      this.#allocated += len;
      this.#chunks.set(idx, c);
    } else if (c.loans.length > 0 && c.lentWithin(at, end)) {
      c = new Chunk(Buffer.from(c.bytes));
      this.#chunks.set(idx, c);
    }
    return c;
  }

  #check(op: string, offset: number, length: number): void {
    checkRange(op, this.describe, offset, length, this.blockSize, this.sizeBytes);
  }

  /** Calls fn for each chunk piece of [offset, offset+length): (chunk index, offset in chunk, length, position in the range). */
  #pieces(offset: number, length: number, fn: (idx: number, at: number, len: number, pos: number) => void): void {
    let pos = 0;
    while (pos < length) {
      const abs = offset + pos;
      const idx = Math.floor(abs / this.chunkSize);
      const at = abs - idx * this.chunkSize;
      const len = Math.min(this.chunkSize - at, length - pos);
      fn(idx, at, len, pos);
      pos += len;
    }
  }

  protected readNow(offset: number, length: number, into: Buffer | undefined): Buffer {
    this.#check('read', offset, length);
    const out = readTarget('read', this.describe, length, into);
    this.#pieces(offset, length, (idx, at, len, pos) => {
      const c = this.#chunks.get(idx);
      if (c) c.bytes.copy(out, pos, at, at + len);
      else out.fill(0, pos, pos + len);
    });
    return out;
  }

  /** Index of the one chunk holding all of [offset, offset+length); -1 when none does. */
  #soleChunk(offset: number, length: number): number {
    const idx = Math.floor(offset / this.chunkSize);
    return length > 0 && offset + length <= (idx + 1) * this.chunkSize ? idx : -1;
  }

  lendRead(offset: number, length: number): LentBytes | undefined {
    this.#check('read', offset, length);
    const idx = this.#soleChunk(offset, length);
    if (idx < 0) return undefined;
    const at = offset - idx * this.chunkSize;
    const c = this.#chunks.get(idx);
    if (!c) return lendZeroes(length);
    const loan: Loan = { at, end: at + length };
    c.loans.push(loan);
    return {
      data: c.bytes.subarray(at, at + length),
      release: () => {
        const i = c.loans.indexOf(loan);
        if (i < 0) return;
        c.loans[i] = c.loans[c.loans.length - 1]!;
        c.loans.pop();
      },
    };
  }

  /** The write may go ahead: the range is valid, the store writable, and memory for it within the limit. */
  #checkWrite(offset: number, length: number): void {
    this.#check('write', offset, length);
    if (this.readOnly) throw readOnlyError(this.describe, 'write');
    let needed = 0;
    this.#pieces(offset, length, (idx) => {
      if (!this.#chunks.has(idx)) needed += this.#chunkLength(idx);
    });
    if (this.#allocated + needed > this.maxAllocatedBytes) {
      throw new BackstoreError(
        'nospace',
        `write at byte ${offset} length ${length} on ${this.describe} failed: its memory limit of ` +
          `${this.maxAllocatedBytes} bytes is reached; unmap data, or use a file backstore for this size`,
      );
    }
  }

  lendWrite(offset: number, length: number): Buffer | undefined {
    // A range across chunks goes the usual way, which checks it: checking here too would count its
    // memory twice.
    const idx = this.#soleChunk(offset, length);
    if (idx < 0) return undefined;
    this.#checkWrite(offset, length);
    const at = offset - idx * this.chunkSize;
    return this.#writable(idx, at, at + length).bytes.subarray(at, at + length);
  }

  protected writeNow(offset: number, data: Buffer): void {
    this.#checkWrite(offset, data.length);
    this.#pieces(offset, data.length, (idx, at, len, pos) => {
      data.copy(this.#writable(idx, at, at + len).bytes, at, pos, pos + len);
    });
  }

  async flush(): Promise<void> {}

  #deallocate(offset: number, length: number): void {
    this.#pieces(offset, length, (idx, at, len) => {
      const c = this.#chunks.get(idx);
      if (!c) return;
      if (len === c.bytes.length) {
        // A READ still sending it keeps its own reference; the store forgets it.
        this.#chunks.delete(idx);
        this.#allocated -= len;
      } else {
        this.#writable(idx, at, at + len).bytes.fill(0, at, at + len);
      }
    });
  }

  async discard(offset: number, length: number): Promise<void> {
    this.#check('discard', offset, length);
    if (this.readOnly) throw readOnlyError(this.describe, 'discard');
    this.#deallocate(offset, length);
  }

  async writeZeroes(offset: number, length: number, _unmap: boolean): Promise<void> {
    this.#check('write zeroes', offset, length);
    if (this.readOnly) throw readOnlyError(this.describe, 'write zeroes');
    // Zeroed chunks are freed either way: an unallocated chunk reads as zeroes (LBPRZ).
    this.#deallocate(offset, length);
  }

  async mapStatus(offset: number, length: number): Promise<LbaStatusExtent[]> {
    this.#check('map status', offset, length);
    if (offset >= this.sizeBytes) return [];
    const cs = this.chunkSize;
    // Report whole chunks: at least the one holding `offset`, through the chunk holding the range end.
    const startIdx = Math.floor(offset / cs);
    const endIdx = Math.ceil(Math.max(offset + length, offset + this.blockSize) / cs);
    const stop = Math.min(endIdx * cs, this.sizeBytes);
    // Walk allocated chunks (not the address space) so a huge sparse LUN costs only what is written.
    const keys = [...this.#chunks.keys()].filter((k) => k >= startIdx && k < endIdx).sort((a, b) => a - b);
    const out = new ExtentList();
    let pos = offset;
    for (const k of keys) {
      const from = Math.max(k * cs, offset);
      out.add(pos, from, false);
      const to = Math.min((k + 1) * cs, this.sizeBytes);
      out.add(from, to, true);
      pos = to;
    }
    out.add(pos, stop, false);
    return out.extents;
  }

  async refreshSize(): Promise<number> {
    return this.sizeBytes;
  }

  async close(): Promise<void> {
    this.#chunks.clear();
    this.#allocated = 0;
  }
}
