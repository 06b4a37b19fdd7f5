/**
 * LBA range locks of one logical unit, in two modes.
 *
 * - **Exclusive**: commands that must be atomic against every other access to their blocks — COMPARE
 *   AND WRITE and ORWRITE (read-modify-write, SBC-3 5.2, 5.8), WRITE ATOMIC, WRITE AND VERIFY with a
 *   byte check, UNMAP, WRITE SAME, SANITIZE, EXTENDED COPY's destination.
 * - **Shared**: plain WRITEs, and READs while a WRITE ATOMIC is pending. They exclude the exclusive
 *   holders of overlapping blocks but not each other: SIMPLE tasks writing the same blocks have no
 *   order between them (SAM-5), so serializing them bought no guarantee and cost every WRITE an
 *   index update — and, with many sessions writing the same blocks, made writes queue behind each
 *   other (BENCHMARKS.md, section 21).
 *
 * With many sessions a LU has a thousand writes in flight. Exclusive holders are indexed by 128-block
 * chunk so a range is compared only with those sharing one of its chunks; ranges over `MAX_CHUNKS`
 * chunks (large UNMAP extents, SANITIZE) stay in a short list compared with everything. Shared holders
 * are an `InFlightTable` (not a Set, for the garbage collector's sake — see there): taking or dropping
 * one is O(1), and only an exclusive request (rare) scans them.
 */
import { InFlightTable } from './in-flight-table.js';

interface Held {
  start: bigint;
  end: bigint; // exclusive
  shared: boolean;
  /** Shared ranges only: the key in `shared`. */
  id: number;
  /** Exclusive ranges only: first and last chunk, or undefined for a range kept in `large`. */
  chunks: [number, number] | undefined;
}

interface Waiter {
  range: Held;
  wake: () => void;
}

const CHUNK_SHIFT = 7n;
const MAX_CHUNKS = 32;
/** Chunk numbers must stay exact as JS numbers (LBAs beyond 2^60 are only possible in principle). */
const LAST_INDEXED_CHUNK = BigInt(Number.MAX_SAFE_INTEGER - MAX_CHUNKS);

const overlap = (a: Held, b: Held): boolean => a.start < b.end && b.start < a.end;

export class RangeLock {
  private readonly byChunk = new Map<number, Held[]>();
  private readonly large = new Set<Held>();
  private exclusiveHeld = 0;
  private readonly shared = new InFlightTable<number, Held>();
  private nextSharedId = 0;
  private waiters: Waiter[] = [];

  /** Take [start, start+count) exclusively now if it is free and nobody overlapping waits; else undefined. */
  tryAcquire(start: bigint, count: bigint): (() => void) | undefined {
    const range = exclusiveRange(start, count);
    return this.blocked(range) ? undefined : this.take(range);
  }

  /** Wait for [start, start+count) to be free, hold it exclusively; returns the release function. */
  acquire(start: bigint, count: bigint): Promise<() => void> {
    return this.wait(exclusiveRange(start, count));
  }

  /** Take [start, start+count) shared now unless an exclusive holder or waiter overlaps it; else undefined. */
  tryAcquireShared(start: bigint, count: bigint): (() => void) | undefined {
    const range = sharedRange(start, count);
    return this.blocked(range) ? undefined : this.take(range);
  }

  /** Wait until no exclusive holder or earlier exclusive waiter overlaps [start, start+count), hold it shared. */
  acquireShared(start: bigint, count: bigint): Promise<() => void> {
    return this.wait(sharedRange(start, count));
  }

  get heldCount(): number {
    return this.exclusiveHeld + this.shared.size;
  }

  private async wait(range: Held): Promise<() => void> {
    // FIFO fairness among conflicting waiters: a new request also waits behind earlier queued ones.
    while (this.blocked(range)) {
      await new Promise<void>((wake) => this.waiters.push({ range, wake }));
      if (!this.conflictsHeld(range)) break;
    }
    return this.take(range);
  }

  private blocked(range: Held): boolean {
    if (range.shared) {
      // The common path of every WRITE: nothing exclusive anywhere on the LU.
      if (this.exclusiveHeld === 0 && this.waiters.length === 0) return false;
      return this.conflictsHeld(range) || this.waiters.some((w) => !w.range.shared && overlap(w.range, range));
    }
    return this.conflictsHeld(range) || (this.waiters.length > 0 && this.waiters.some((w) => overlap(w.range, range)));
  }

  private conflictsHeld(range: Held): boolean {
    if (this.overlapsExclusive(range)) return true;
    if (range.shared || this.shared.size === 0) return false;
    for (const h of this.shared.values()) if (overlap(h, range)) return true;
    return false;
  }

  private overlapsExclusive(r: Held): boolean {
    if (this.exclusiveHeld === 0) return false;
    for (const h of this.large) if (overlap(h, r)) return true;
    if (!r.chunks) {
      for (const list of this.byChunk.values()) for (const h of list) if (overlap(h, r)) return true;
      return false;
    }
    for (let c = r.chunks[0]; c <= r.chunks[1]; c++) {
      const list = this.byChunk.get(c);
      if (list) for (const h of list) if (overlap(h, r)) return true;
    }
    return false;
  }

  private take(range: Held): () => void {
    if (range.shared) {
      range.id = this.nextSharedId = (this.nextSharedId + 1) | 0;
      this.shared.set(range.id, range);
    }
    else this.index(range);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (range.shared) this.shared.delete(range.id);
      else this.unindex(range);
      this.wakeAfter(range);
    };
  }

  /**
   * Wake the waiters when the released range was in the way of one of them. All of them, in order,
   * so an earlier waiter gets its turn before a later one that overlaps it.
   */
  private wakeAfter(released: Held): void {
    if (this.waiters.length === 0 || !this.waiters.some((w) => overlap(w.range, released))) return;
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w.wake();
  }

  private index(range: Held): void {
    this.exclusiveHeld++;
    if (!range.chunks) {
      this.large.add(range);
      return;
    }
    for (let c = range.chunks[0]; c <= range.chunks[1]; c++) {
      const list = this.byChunk.get(c);
      if (list) list.push(range);
      else this.byChunk.set(c, [range]);
    }
  }

  private unindex(range: Held): void {
    this.exclusiveHeld--;
    if (!range.chunks) {
      this.large.delete(range);
      return;
    }
    for (let c = range.chunks[0]; c <= range.chunks[1]; c++) {
      const list = this.byChunk.get(c)!;
      if (list.length === 1) this.byChunk.delete(c);
      else list.splice(list.indexOf(range), 1);
    }
  }
}

/** A zero-length range still covers its first block (a zero-block command still names it). */
const endOf = (start: bigint, count: bigint): bigint => start + (count > 0n ? count : 1n);

function sharedRange(start: bigint, count: bigint): Held {
  return { start, end: endOf(start, count), shared: true, id: 0, chunks: undefined };
}

function exclusiveRange(start: bigint, count: bigint): Held {
  const end = endOf(start, count);
  const first = start >> CHUNK_SHIFT;
  const last = (end - 1n) >> CHUNK_SHIFT;
  const indexed = last - first < BigInt(MAX_CHUNKS) && last <= LAST_INDEXED_CHUNK;
  return { start, end, shared: false, id: 0, chunks: indexed ? [Number(first), Number(last)] : undefined };
}
