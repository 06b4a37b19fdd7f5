/**
 * Exclusive LBA range locks of one logical unit. Every command that writes the medium holds the lock of
 * its range while it runs, so COMPARE AND WRITE and ORWRITE (read-modify-write) are atomic against
 * other writers of the same blocks (SBC-3 5.2, 5.8).
 */
interface Held {
  start: bigint;
  end: bigint; // exclusive
}

export class RangeLock {
  private readonly held = new Set<Held>();
  private waiters: Array<{ range: Held; wake: () => void }> = [];

  private overlaps(r: Held): boolean {
    for (const h of this.held) if (h.start < r.end && r.start < h.end) return true;
    return false;
  }

  /** Wait for [start, start+count) to be free, hold it; returns the release function. */
  async acquire(start: bigint, count: bigint): Promise<() => void> {
    const range: Held = { start, end: start + (count > 0n ? count : 1n) };
    // FIFO fairness among overlapping waiters: a new request also waits behind earlier queued ones.
    while (this.overlaps(range) || this.waiters.some((w) => w.range.start < range.end && range.start < w.range.end)) {
      await new Promise<void>((wake) => this.waiters.push({ range, wake }));
      if (!this.overlaps(range)) break;
    }
    this.held.add(range);
    return () => {
      if (!this.held.delete(range)) return;
      const waiting = this.waiters;
      this.waiters = [];
      for (const w of waiting) w.wake();
    };
  }

  get heldCount(): number {
    return this.held.size;
  }
}
