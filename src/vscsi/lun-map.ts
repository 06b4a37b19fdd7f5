/**
 * A LUN map: which logical unit answers at which LUN number. A target has a default map; per-initiator
 * ACLs use their own maps. Every change raises REPORTED LUNS DATA HAS CHANGED (SPC-4 6.33) on each
 * nexus that sees the map, through the listeners the core registers.
 */
import { MAX_FLAT_LUN } from './lun-address.js';
import type { LogicalUnit } from './logical-unit.js';

export type LunMapListener = (map: LunMap) => void;

export class LunMap {
  private readonly luns = new Map<number, LogicalUnit>();
  private readonly listeners = new Set<LunMapListener>();

  set(lunNumber: number, lu: LogicalUnit): void {
    if (!Number.isInteger(lunNumber) || lunNumber < 0 || lunNumber > MAX_FLAT_LUN) {
      throw new RangeError(`LUN number ${lunNumber} for logical unit ${lu.id} is invalid: use 0..${MAX_FLAT_LUN}`);
    }
    if (this.luns.get(lunNumber) === lu) return;
    this.luns.set(lunNumber, lu);
    this.changed();
  }

  delete(lunNumber: number): boolean {
    const had = this.luns.delete(lunNumber);
    if (had) this.changed();
    return had;
  }

  get(lunNumber: number): LogicalUnit | undefined {
    return this.luns.get(lunNumber);
  }

  has(lunNumber: number): boolean {
    return this.luns.has(lunNumber);
  }

  /** Entries sorted by LUN number. */
  entries(): Array<[number, LogicalUnit]> {
    return [...this.luns.entries()].sort((a, b) => a[0] - b[0]);
  }

  lunNumbers(): number[] {
    return [...this.luns.keys()].sort((a, b) => a - b);
  }

  /** LUN numbers at which `lu` appears. */
  lunsOf(lu: LogicalUnit): number[] {
    const out: number[] = [];
    for (const [n, l] of this.luns) if (l === lu) out.push(n);
    return out;
  }

  /** Remove every mapping of `lu` (when the LU is deleted). */
  deleteUnit(lu: LogicalUnit): void {
    let any = false;
    for (const [n, l] of [...this.luns]) {
      if (l === lu) {
        this.luns.delete(n);
        any = true;
      }
    }
    if (any) this.changed();
  }

  get size(): number {
    return this.luns.size;
  }

  onChange(listener: LunMapListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l(this);
  }
}
