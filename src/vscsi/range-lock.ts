/**
 * Exclusive LBA range locks of one logical unit. Every command that writes the medium holds the lock of
 * its range while it runs, so COMPARE AND WRITE and ORWRITE (read-modify-write) are atomic against
 * other writers of the same blocks (SBC-3 5.2, 5.8).
 *
 * With many sessions a LU has a thousand writes in flight, and checking a new range against every
 * held one cost ~10 µs per WRITE (BENCHMARKS.md, section 10). Held ranges are therefore indexed by
 * 128-block chunk: a range is compared only with the ranges sharing one of its chunks. Ranges over
 * `MAX_CHUNKS` chunks (large UNMAP extents, SANITIZE) stay in a short list compared with everything.
 */
interface Held {
  start: bigint;
  end: bigint; // exclusive
  /** First and last chunk, or undefined for a range kept in `large`. */
  chunks: [number, number] | undefined;
}

const CHUNK_SHIFT = 7n;
const MAX_CHUNKS = 32;
/** Chunk numbers must stay exact as JS numbers (LBAs beyond 2^60 are only possible in principle). */
const LAST_INDEXED_CHUNK = BigInt(Number.MAX_SAFE_INTEGER - MAX_CHUNKS);

const overlap = (a: Held, b: Held): boolean => a.start < b.end && b.start < a.end;

export class RangeLock {
  private readonly byChunk = new Map<number, Held[]>();
  private readonly large = new Set<Held>();
  private held = 0;
  private waiters: Array<{ range: Held; wake: () => void }> = [];

  /** Take [start, start+count) now if it is free and nobody overlapping waits; else undefined. */
  tryAcquire(start: bigint, count: bigint): (() => void) | undefined {
    const range = rangeOf(start, count);
    if (this.blocked(range)) return undefined;
    return this.take(range);
  }

  /** Wait for [start, start+count) to be free, hold it; returns the release function. */
  async acquire(start: bigint, count: bigint): Promise<() => void> {
    const range = rangeOf(start, count);
    // FIFO fairness among overlapping waiters: a new request also waits behind earlier queued ones.
    while (this.blocked(range)) {
      await new Promise<void>((wake) => this.waiters.push({ range, wake }));
      if (!this.overlapsHeld(range)) break;
    }
    return this.take(range);
  }

  get heldCount(): number {
    return this.held;
  }

  private blocked(range: Held): boolean {
    return this.overlapsHeld(range) || (this.waiters.length > 0 && this.waiters.some((w) => overlap(w.range, range)));
  }

  private overlapsHeld(r: Held): boolean {
    if (this.held === 0) return false;
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
    this.held++;
    if (range.chunks) {
      for (let c = range.chunks[0]; c <= range.chunks[1]; c++) {
        const list = this.byChunk.get(c);
        if (list) list.push(range);
        else this.byChunk.set(c, [range]);
      }
    } else {
      this.large.add(range);
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.drop(range);
      if (this.waiters.length === 0) return;
      const waiting = this.waiters;
      this.waiters = [];
      for (const w of waiting) w.wake();
    };
  }

  private drop(range: Held): void {
    this.held--;
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

function rangeOf(start: bigint, count: bigint): Held {
  const end = start + (count > 0n ? count : 1n);
  const first = start >> CHUNK_SHIFT;
  const last = (end - 1n) >> CHUNK_SHIFT;
  const indexed = last - first < BigInt(MAX_CHUNKS) && last <= LAST_INDEXED_CHUNK;
  return { start, end, chunks: indexed ? [Number(first), Number(last)] : undefined };
}
