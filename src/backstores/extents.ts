/**
 * Building GET LBA STATUS answers (SBC-3 §5.6): extents in ascending order, neighbours of the same
 * state merged so an initiator sees one descriptor per run rather than one per probe step.
 */
import type { LbaStatusExtent } from './backstore.js';

export class ExtentList {
  readonly extents: LbaStatusExtent[] = [];

  /** Appends [from, to) as mapped or deallocated; empty ranges are ignored. */
  add(from: number, to: number, mapped: boolean): void {
    if (to <= from) return;
    const last = this.extents[this.extents.length - 1];
    if (last && last.mapped === mapped && last.offset + last.length === from) last.length += to - from;
    else this.extents.push({ offset: from, length: to - from, mapped });
  }

  get count(): number {
    return this.extents.length;
  }
}

/** The answer of a store that cannot tell holes from data: everything from `offset` to the end is mapped. */
export function allMapped(offset: number, sizeBytes: number): LbaStatusExtent[] {
  return offset < sizeBytes ? [{ offset, length: sizeBytes - offset, mapped: true }] : [];
}
