/**
 * Data segment descriptors of a vscsiif request: bounds for direct and indirect (feature-sg-grant)
 * segments (xen-vscsiif.md §2.1–§2.2, Linux scsiback `scsiback_gnttab_data_map`). Pure and
 * non-throwing: a defect is returned as a `SegmentError` and the backend answers host ERROR.
 */
import {
  Segment,
  VSCSIIF_SEGMENT_SIZE,
  VSCSIIF_SG_GRANT,
  VSCSIIF_SG_TABLESIZE,
  VscsiifRequest,
  XEN_PAGE_SIZE,
  decodeSegments,
} from './ring.js';

/** Linux SG_ALL: the data-segment limit the backend advertises in feature-sg-grant. */
export const VSCSI_DEFAULT_MAX_INDIRECT_SEGMENTS = 128;

export type SegmentErrorKind =
  | 'too-many-segments'
  | 'indirect-not-negotiated'
  | 'bad-indirect-descriptor'
  | 'too-many-data-segments'
  | 'segment-outside-page';

export interface SegmentError {
  kind: SegmentErrorKind;
  detail: string;
}

/** A segment lies inside one 4 KiB grant page. */
export function segmentInPage(s: Segment): boolean {
  return s.offset < XEN_PAGE_SIZE && s.length <= XEN_PAGE_SIZE && s.offset + s.length <= XEN_PAGE_SIZE;
}

/** Check data segments; returns the total byte length or an error. */
export function checkDataSegments(segs: readonly Segment[]): { total: number } | SegmentError {
  let total = 0;
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    if (!segmentInPage(s)) {
      return {
        kind: 'segment-outside-page',
        detail: `segment ${i} (gref ${s.gref}) offset ${s.offset} + length ${s.length} exceeds the ${XEN_PAGE_SIZE}-byte page`,
      };
    }
    total += s.length;
  }
  return { total };
}

/** What the request's seg[] array means. */
export type SegmentPlan =
  | { kind: 'direct'; segments: Segment[] }
  /** seg[] point at arrays of `descriptorCount` segment descriptors that must be copied out first. */
  | { kind: 'indirect'; tables: Segment[]; descriptorCount: number };

/**
 * Interpret nr_segments and seg[] of a request copy. `maxIndirect` is what we advertised in
 * feature-sg-grant (0 = indirect not offered).
 */
export function planSegments(req: VscsiifRequest, maxIndirect: number): SegmentPlan | SegmentError {
  const n = req.nrSegmentsRaw & ~VSCSIIF_SG_GRANT & 0xff;
  if (n > VSCSIIF_SG_TABLESIZE) {
    return { kind: 'too-many-segments', detail: `nr_segments ${n} exceeds VSCSIIF_SG_TABLESIZE ${VSCSIIF_SG_TABLESIZE}` };
  }
  if ((req.nrSegmentsRaw & VSCSIIF_SG_GRANT) === 0) {
    const r = checkDataSegments(req.segments);
    if ('kind' in r) return r;
    return { kind: 'direct', segments: req.segments };
  }
  if (maxIndirect <= 0) {
    return { kind: 'indirect-not-negotiated', detail: 'VSCSIIF_SG_GRANT set but feature-sg-grant was not offered' };
  }
  let descriptorCount = 0;
  for (let i = 0; i < req.segments.length; i++) {
    const t = req.segments[i]!;
    if (t.length === 0 || t.length % VSCSIIF_SEGMENT_SIZE !== 0 || !segmentInPage(t)) {
      return {
        kind: 'bad-indirect-descriptor',
        detail: `indirect table ${i} (gref ${t.gref}) offset ${t.offset} length ${t.length}: length must be a non-zero multiple of 8 inside the page`,
      };
    }
    descriptorCount += t.length / VSCSIIF_SEGMENT_SIZE;
  }
  if (descriptorCount > maxIndirect) {
    return {
      kind: 'too-many-data-segments',
      detail: `${descriptorCount} indirect data segments exceed the advertised feature-sg-grant ${maxIndirect}`,
    };
  }
  return { kind: 'indirect', tables: req.segments, descriptorCount };
}

/** Decode and check the data segments from the private copy of the indirect tables. */
export function decodeIndirectTables(copy: Buffer, descriptorCount: number): { segments: Segment[]; total: number } | SegmentError {
  if (copy.length < descriptorCount * VSCSIIF_SEGMENT_SIZE) {
    return { kind: 'bad-indirect-descriptor', detail: 'indirect table copy is shorter than its descriptors' };
  }
  const segments = decodeSegments(copy, descriptorCount);
  const r = checkDataSegments(segments);
  if ('kind' in r) return r;
  return { segments, total: r.total };
}

/** The segments covering bytes [offset, offset + length) of the concatenated buffer. */
export function sliceSegments(segs: readonly Segment[], offset: number, length: number): Segment[] {
  const out: Segment[] = [];
  let pos = 0;
  const end = offset + length;
  for (const s of segs) {
    const sEnd = pos + s.length;
    if (sEnd > offset && pos < end) {
      const from = Math.max(offset, pos) - pos;
      const to = Math.min(end, sEnd) - pos;
      // A whole segment is passed on as it is (segments are never modified).
      out.push(from === 0 && to === s.length ? s : { gref: s.gref, offset: s.offset + from, length: to - from });
    }
    pos = sEnd;
    if (pos >= end) break;
  }
  return out;
}

export const totalLength = (segs: readonly Segment[]): number => segs.reduce((a, s) => a + s.length, 0);
