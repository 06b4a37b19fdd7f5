/**
 * SRP memory descriptors (srp.h struct srp_direct_buf / srp_indirect_buf; SRP r16a 5.3) and the
 * rules for finding them in an SRP_CMD and resolving indirect tables that are not fully embedded
 * in the IU. Everything here is pure except `resolveDescriptors`, which fetches an external table
 * through the injected data mover.
 */
import { Buffer } from 'node:buffer';
import { bad, type Decoded, ok } from './iu-common.js';

/** srp.h enum: SRP_CMD buf_fmt nibble values. */
export const SrpDataDescFormat = {
  NONE: 0,
  DIRECT: 1,
  INDIRECT: 2,
  /** SRP-2 immediate data (data-out only). Not negotiated by this target. */
  IMMEDIATE: 3,
} as const;

export const DIRECT_DESC_LEN = 16;
/** Fixed part of srp_indirect_buf: table_desc (16) + len (4). */
export const INDIRECT_DESC_FIXED_LEN = 20;

/** One (va, key, len) triple: IB virtual address + R_Key, or an IBM VIO IOBA with key 0. */
export interface DirectDescriptor {
  va: bigint;
  key: number;
  len: number;
}

export type DataBufferDescriptor =
  | { format: 'none' }
  | { format: 'direct'; desc: DirectDescriptor }
  | {
      format: 'indirect';
      /** Points at the complete table in initiator memory; table.len / 16 = number of descriptors. */
      table: DirectDescriptor;
      /** Total transfer length the initiator states (srp_indirect_buf.len). */
      totalLength: number;
      /** The first desc_cnt descriptors, copied from the IU. */
      inIu: DirectDescriptor[];
    };

export function decodeDirect(b: Buffer, off: number): DirectDescriptor {
  return { va: b.readBigUInt64BE(off), key: b.readUInt32BE(off + 8), len: b.readUInt32BE(off + 12) };
}

export function encodeDirect(d: DirectDescriptor, b: Buffer, off: number): void {
  b.writeBigUInt64BE(BigInt.asUintN(64, d.va), off);
  b.writeUInt32BE(d.key >>> 0, off + 8);
  b.writeUInt32BE(d.len >>> 0, off + 12);
}

/** Bytes a descriptor of `format` with `count` in-IU entries occupies in the SRP_CMD. */
export function descriptorSize(format: number, count: number): number {
  switch (format) {
    case SrpDataDescFormat.DIRECT:
      return DIRECT_DESC_LEN;
    case SrpDataDescFormat.INDIRECT:
      return INDIRECT_DESC_FIXED_LEN + DIRECT_DESC_LEN * count;
    case SrpDataDescFormat.IMMEDIATE:
      return 4;
    default:
      return 0;
  }
}

/** Parse the descriptor of one direction at `off` inside the received IU (bounded by iu.length). */
export function decodeDataDescriptor(
  iu: Buffer,
  off: number,
  format: number,
  count: number,
): Decoded<{ descriptor: DataBufferDescriptor; size: number }> {
  if (format === SrpDataDescFormat.NONE) return ok({ descriptor: { format: 'none' }, size: 0 });
  if (format === SrpDataDescFormat.IMMEDIATE) {
    return bad('UNSUPPORTED', 'immediate data descriptor (SRP-2) was not negotiated at login');
  }
  if (format !== SrpDataDescFormat.DIRECT && format !== SrpDataDescFormat.INDIRECT) {
    return bad('BAD_DESCRIPTOR', `data descriptor format ${format} is reserved`);
  }
  const size = descriptorSize(format, count);
  if (off + size > iu.length) {
    return bad('BAD_DESCRIPTOR', `descriptor at IU offset ${off} (${size} bytes) runs past the ${iu.length}-byte IU`);
  }
  if (format === SrpDataDescFormat.DIRECT) {
    return ok({ descriptor: { format: 'direct', desc: decodeDirect(iu, off) }, size });
  }
  const table = decodeDirect(iu, off);
  const totalLength = iu.readUInt32BE(off + 16);
  const inIu: DirectDescriptor[] = [];
  for (let i = 0; i < count; i++) inIu.push(decodeDirect(iu, off + INDIRECT_DESC_FIXED_LEN + i * DIRECT_DESC_LEN));
  return ok({ descriptor: { format: 'indirect', table, totalLength, inIu }, size });
}

/** Encode a descriptor (initiator side and fixtures). Returns the bytes. */
export function encodeDataDescriptor(d: DataBufferDescriptor): Buffer {
  if (d.format === 'none') return Buffer.alloc(0);
  if (d.format === 'direct') {
    const b = Buffer.alloc(DIRECT_DESC_LEN);
    encodeDirect(d.desc, b, 0);
    return b;
  }
  const b = Buffer.alloc(INDIRECT_DESC_FIXED_LEN + DIRECT_DESC_LEN * d.inIu.length);
  encodeDirect(d.table, b, 0);
  b.writeUInt32BE(d.totalLength >>> 0, 16);
  d.inIu.forEach((x, i) => encodeDirect(x, b, INDIRECT_DESC_FIXED_LEN + i * DIRECT_DESC_LEN));
  return b;
}

export function descriptorFormatCode(d: DataBufferDescriptor): number {
  return d.format === 'none' ? 0 : d.format === 'direct' ? SrpDataDescFormat.DIRECT : SrpDataDescFormat.INDIRECT;
}

/** The initiator memory one transfer may use, in order, and the length the initiator expects. */
export interface ResolvedDescriptors {
  segments: DirectDescriptor[];
  expectedLength: number;
}

export interface DescriptorLimits {
  /** Largest number of descriptors accepted in one (possibly external) table. */
  maxDescriptors: number;
}

export const DEFAULT_DESCRIPTOR_LIMITS: DescriptorLimits = { maxDescriptors: 1024 };

/**
 * The segments of a direct (or absent) descriptor; undefined for an indirect one. Synchronous, so the
 * common case (one direct descriptor) costs no promise per command.
 */
export function resolveDirect(d: DataBufferDescriptor): Decoded<ResolvedDescriptors> | undefined {
  if (d.format === 'none') return ok({ segments: [], expectedLength: 0 });
  if (d.format === 'direct') return ok({ segments: [d.desc], expectedLength: d.desc.len });
  return undefined;
}

/**
 * Turn a parsed descriptor into the full segment list. For an indirect descriptor the count comes
 * from table.len / 16 (the Linux VIO client puts only the first 10 in the IU and points table at an
 * external list holding all of them); when the table holds more entries than the IU, the whole
 * table is fetched with `fetch` (one copy, then parsed locally).
 */
export async function resolveDescriptors(
  d: DataBufferDescriptor,
  fetch: (table: DirectDescriptor) => Promise<Buffer>,
  limits: DescriptorLimits = DEFAULT_DESCRIPTOR_LIMITS,
): Promise<Decoded<ResolvedDescriptors>> {
  if (d.format !== 'indirect') return resolveDirect(d)!;
  const { table, totalLength, inIu } = d;
  if (table.len % DIRECT_DESC_LEN !== 0) {
    return bad('BAD_DESCRIPTOR', `indirect table length ${table.len} is not a multiple of ${DIRECT_DESC_LEN}`);
  }
  const count = table.len / DIRECT_DESC_LEN;
  if (count === 0) return bad('BAD_DESCRIPTOR', 'indirect descriptor with an empty table');
  if (count > limits.maxDescriptors) {
    return bad('BAD_DESCRIPTOR', `indirect table of ${count} descriptors exceeds the limit of ${limits.maxDescriptors}`);
  }
  if (inIu.length > count) {
    return bad('BAD_DESCRIPTOR', `${inIu.length} descriptors in the IU but the table holds only ${count}`);
  }
  let segments: DirectDescriptor[];
  if (inIu.length === count) {
    segments = inIu;
  } else {
    let raw: Buffer;
    try {
      raw = await fetch(table);
    } catch (err) {
      return bad('BAD_DESCRIPTOR', `fetching the external descriptor table failed: ${(err as Error).message}`);
    }
    if (raw.length !== table.len) return bad('BAD_DESCRIPTOR', 'external descriptor table fetch returned a short buffer');
    segments = [];
    for (let i = 0; i < count; i++) segments.push(decodeDirect(raw, i * DIRECT_DESC_LEN));
  }
  let sum = 0;
  for (const s of segments) sum += s.len;
  if (sum < totalLength) {
    return bad('BAD_DESCRIPTOR', `descriptors cover ${sum} bytes but the indirect length is ${totalLength}`);
  }
  return ok({ segments, expectedLength: totalLength });
}

/**
 * The pieces of initiator memory that hold bytes [offset, offset+length) of the transfer, or
 * undefined when the range is not covered by the descriptors.
 */
export function sliceSegments(
  segments: readonly DirectDescriptor[],
  offset: number,
  length: number,
): DirectDescriptor[] | undefined {
  if (offset < 0 || length < 0) return undefined;
  const out: DirectDescriptor[] = [];
  let skip = offset;
  let need = length;
  for (const s of segments) {
    if (need === 0) break;
    if (skip >= s.len) {
      skip -= s.len;
      continue;
    }
    const take = Math.min(s.len - skip, need);
    // A whole segment is passed on as it is (segments are never modified): no new object or BigInt.
    out.push(skip === 0 && take === s.len ? s : { va: s.va + BigInt(skip), key: s.key, len: take });
    need -= take;
    skip = 0;
  }
  return need === 0 ? out : undefined;
}
