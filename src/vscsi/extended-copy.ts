/**
 * EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 6.4, 6.18): copy-offload between logical
 * units the requesting nexus can see, addressed by identification descriptor target descriptors
 * (type E4h, matched against each LU's NAA designator) and block-to-block segment descriptors (02h).
 * Data moves through the backstores in bounded chunks under the destination's range lock.
 */
import { Buffer } from 'node:buffer';
import { check, good, isFailure, type CommandContext, type CommandSpec } from './command.js';
import { u16, u32, u64 } from './cdb.js';
import type { LogicalUnit } from './logical-unit.js';
import type { NexusImpl } from './nexus.js';
import { checkWritable } from './sbc-common.js';
import { failure, invalidCdbField, invalidParamField, type ScsiFailure } from './sense.js';

export const Opcode = { EXTENDED_COPY: 0x83, RECEIVE_COPY_RESULTS: 0x84 } as const;
/** SPC-4 table "EXTENDED COPY service actions" / "RECEIVE COPY RESULTS service actions". */
export const ExtendedCopySa = { LID1: 0x00 } as const;
export const ReceiveCopyResultsSa = { COPY_STATUS: 0x00, OPERATING_PARAMETERS: 0x03 } as const;

/** SPC-4 6.4.5 / 6.4.6 descriptor type codes we implement. */
const SEGMENT_BLOCK_TO_BLOCK = 0x02;
const TARGET_IDENTIFICATION = 0xe4;

const HEADER = 16;
const TARGET_DESCRIPTOR = 32;
const B2B_SEGMENT = 28;
const MAX_TARGET_DESCRIPTORS = 2;
const MAX_SEGMENT_DESCRIPTORS = 8;
const MAX_DESCRIPTOR_LIST_LENGTH = 1024;
/** Bytes moved per backstore call while copying. */
const COPY_CHUNK_BYTES = 1024 * 1024;
/** Copy results kept per nexus (LIST ID USAGE 00b), oldest dropped first. */
const MAX_HELD_RESULTS = 16;

interface CopyResult {
  listId: number;
  status: 1 | 2; // completed without / with errors
  segments: number;
  bytes: number;
}

const heldResults = new WeakMap<NexusImpl, CopyResult[]>();

function holdResult(nexus: NexusImpl, r: CopyResult): void {
  let list = heldResults.get(nexus);
  if (!list) {
    list = [];
    heldResults.set(nexus, list);
  }
  const i = list.findIndex((x) => x.listId === r.listId);
  if (i >= 0) list.splice(i, 1);
  list.push(r);
  if (list.length > MAX_HELD_RESULTS) list.shift();
}

/** The LU a target descriptor names: an LU mapped on this nexus with the same NAA designator. */
function resolveTarget(ctx: CommandContext, d: Buffer): LogicalUnit | ScsiFailure {
  const codeSet = d[4]! & 0x0f;
  const type = d[5]! & 0x0f;
  const len = d[7]!;
  if (codeSet !== 1 || type !== 3 || (len !== 16 && len !== 8) || 8 + len > 28) {
    return failure('COPY_TARGET_DEVICE_NOT_REACHABLE');
  }
  const want = d.subarray(8, 8 + len);
  for (const [, lu] of ctx.nexus.lunMap.entries()) {
    if (lu.removed) continue;
    const naa = Buffer.alloc(16);
    naa.writeBigUInt64BE(lu.naaId >> 64n, 0);
    naa.writeBigUInt64BE(lu.naaId & 0xffffffffffffffffn, 8);
    if (naa.subarray(0, len).equals(want)) {
      // Device type specific parameters: DISK BLOCK LENGTH must describe the LU as it is.
      const blockLength = d.readUIntBE(29, 3);
      if ((d[1]! & 0x1f) !== 0 || blockLength !== lu.blockSize) return failure('COPY_TARGET_DEVICE_NOT_REACHABLE');
      return lu;
    }
  }
  return failure('COPY_TARGET_DEVICE_NOT_REACHABLE');
}

async function copyBlocks(ctx: CommandContext, src: LogicalUnit, dst: LogicalUnit, seg: Buffer): Promise<number | ScsiFailure> {
  const dc = (seg[1]! & 0x02) !== 0;
  const blocks = u16(seg, 10);
  const srcLba = u64(seg, 12);
  const dstLba = u64(seg, 20);
  // DC=1: NUMBER OF BLOCKS counts destination blocks, otherwise source blocks.
  const bytes = blocks * (dc ? dst.blockSize : src.blockSize);
  if (bytes % src.blockSize !== 0 || bytes % dst.blockSize !== 0) return invalidParamField(10);
  const srcBlocks = BigInt(bytes / src.blockSize);
  const dstBlocks = BigInt(bytes / dst.blockSize);
  if (srcLba + srcBlocks > src.capacityBlocks() || dstLba + dstBlocks > dst.capacityBlocks()) {
    return failure('COPY_ABORTED_NO_ADDITIONAL_SENSE');
  }
  const wp = checkWritable(dst);
  if (wp) return wp;
  if (bytes === 0) return 0;
  const srcBase = Number(srcLba) * src.blockSize;
  const dstBase = Number(dstLba) * dst.blockSize;
  // The destination starts inside the source on the same storage: chunks copied front to back would
  // overwrite source blocks before they are read, so copy back to front (as memmove does) and the
  // destination ends up with the source as it was when the copy began.
  const backwards = src.backstore === dst.backstore && dstBase > srcBase && dstBase < srcBase + bytes;
  for (let done = 0; done < bytes && !ctx.aborted; ) {
    const n = Math.min(COPY_CHUNK_BYTES, bytes - done);
    const at = backwards ? bytes - done - n : done;
    const release = await lockChunk(
      { lu: src, lba: srcLba + BigInt(at / src.blockSize), blocks: BigInt(n / src.blockSize) },
      { lu: dst, lba: dstLba + BigInt(at / dst.blockSize), blocks: BigInt(n / dst.blockSize) },
    );
    try {
      const data = await src.backstore.read(srcBase + at, n);
      await dst.backstore.write(dstBase + at, data, false);
    } finally {
      release();
    }
    done += n;
  }
  return bytes;
}

interface ChunkRange {
  lu: LogicalUnit;
  lba: bigint;
  blocks: bigint;
}

/**
 * Lock one chunk of a copy: its destination blocks against other writers, and its source blocks
 * against a WRITE ATOMIC(16) in progress, as READ's guard does, so no copy carries half of one.
 * With no atomic write pending the source read is only counted (WRITE ATOMIC waits for it). With
 * one pending, both ranges are locked: on one LU as a single range (a waiter overlapping both could
 * otherwise queue between our two acquisitions and wait for us), across LUs in one fixed order so
 * two copies in opposite directions cannot wait for each other.
 */
async function lockChunk(src: ChunkRange, dst: ChunkRange): Promise<() => void> {
  if (src.lu.atomicWriters === 0) {
    const releaseDst = await dst.lu.rangeLock.acquire(dst.lba, dst.blocks);
    if (src.lu.atomicWriters === 0) {
      const counted = src.lu.readGuard(src.lba, src.blocks) as () => void; // synchronous while no atomic writer
      return () => {
        counted();
        releaseDst();
      };
    }
    releaseDst();
  }
  if (src.lu === dst.lu) {
    const lo = src.lba < dst.lba ? src.lba : dst.lba;
    const srcEnd = src.lba + src.blocks;
    const dstEnd = dst.lba + dst.blocks;
    return dst.lu.rangeLock.acquire(lo, (srcEnd > dstEnd ? srcEnd : dstEnd) - lo);
  }
  const [first, second] = src.lu.id < dst.lu.id ? [src, dst] : [dst, src];
  const releaseFirst = await first.lu.rangeLock.acquire(first.lba, first.blocks);
  const releaseSecond = await second.lu.rangeLock.acquire(second.lba, second.blocks);
  return () => {
    releaseSecond();
    releaseFirst();
  };
}

async function extendedCopy(ctx: CommandContext) {
  const length = u32(ctx.cdb, 10);
  const params = await ctx.dataOut(length, 'parameters', 10);
  if (isFailure(params)) return check(params);
  if (length === 0) return good();
  if (length < HEADER) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
  const listId = params[0]!;
  const listIdUsage = (params[1]! >> 3) & 0x03;
  if (params[1]! & 0x20) return check(invalidParamField(1, 5)); // STR: no stream devices
  // SPC-4 LIST ID USAGE: 00b hold results for RECEIVE COPY RESULTS, 10b/11b do not, 01b reserved.
  if (listIdUsage === 1) return check(invalidParamField(1, 4));
  const targetLen = u16(params, 2);
  const segmentLen = u32(params, 8);
  const inlineLen = u32(params, 12);
  if (HEADER + targetLen + segmentLen + inlineLen > params.length) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
  if (targetLen + segmentLen > MAX_DESCRIPTOR_LIST_LENGTH) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
  if (inlineLen !== 0) return check(invalidParamField(12));
  if (targetLen % TARGET_DESCRIPTOR !== 0) return check(invalidParamField(2));

  // Target descriptors
  const targets: Buffer[] = [];
  for (let o = HEADER; o < HEADER + targetLen; o += TARGET_DESCRIPTOR) {
    const type = params[o]!;
    if (type !== TARGET_IDENTIFICATION) return check(failure('UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE', { field: { inCdb: false, byte: o } }));
    targets.push(params.subarray(o, o + TARGET_DESCRIPTOR));
  }
  if (targets.length > MAX_TARGET_DESCRIPTORS) return check(failure('TOO_MANY_TARGET_DESCRIPTORS'));

  // Segment descriptors
  const segments: Buffer[] = [];
  const segEnd = HEADER + targetLen + segmentLen;
  for (let o = HEADER + targetLen; o < segEnd; ) {
    if (o + 4 > segEnd) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
    const type = params[o]!;
    if (type !== SEGMENT_BLOCK_TO_BLOCK) {
      return check(failure('UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE', { field: { inCdb: false, byte: o } }));
    }
    const len = u16(params, o + 2) + 4;
    if (len !== B2B_SEGMENT) return check(invalidParamField(o + 2));
    if (o + len > segEnd) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
    segments.push(params.subarray(o, o + len));
    o += len;
  }
  if (segments.length > MAX_SEGMENT_DESCRIPTORS) return check(failure('TOO_MANY_SEGMENT_DESCRIPTORS'));

  let processed = 0;
  let bytes = 0;
  let outcome: ScsiFailure | undefined;
  for (const seg of segments) {
    if (ctx.aborted) break;
    const si = u16(seg, 4);
    const di = u16(seg, 6);
    if (si >= targets.length || di >= targets.length) {
      outcome = failure('COPY_TARGET_DEVICE_NOT_REACHABLE');
      break;
    }
    const src = resolveTarget(ctx, targets[si]!);
    const dst = resolveTarget(ctx, targets[di]!);
    if (!('backstore' in src)) {
      outcome = src;
      break;
    }
    if (!('backstore' in dst)) {
      outcome = dst;
      break;
    }
    const moved = await copyBlocks(ctx, src, dst, seg);
    if (typeof moved !== 'number') {
      outcome = moved;
      break;
    }
    bytes += moved;
    processed++;
  }
  ctx.bytes = bytes;
  if (listIdUsage === 0) holdResult(ctx.nexus, { listId, status: outcome ? 2 : 1, segments: processed, bytes });
  return outcome ? check(outcome) : good();
}

function operatingParameters(): Buffer {
  const b = Buffer.alloc(44 + 2);
  b.writeUInt32BE(b.length - 4, 0);
  b.writeUInt16BE(MAX_TARGET_DESCRIPTORS, 8);
  b.writeUInt16BE(MAX_SEGMENT_DESCRIPTORS, 10);
  b.writeUInt32BE(MAX_DESCRIPTOR_LIST_LENGTH, 12);
  b.writeUInt32BE(0xffff * 512, 16); // MAXIMUM SEGMENT LENGTH (bytes)
  b.writeUInt16BE(1, 34); // TOTAL CONCURRENT COPIES
  b[36] = 1; // MAXIMUM CONCURRENT COPIES
  b[37] = 9; // DATA SEGMENT GRANULARITY: 512 bytes (log2)
  b[43] = 2; // IMPLEMENTED DESCRIPTOR LIST LENGTH
  b[44] = SEGMENT_BLOCK_TO_BLOCK;
  b[45] = TARGET_IDENTIFICATION;
  return b;
}

function receiveCopyResults(ctx: CommandContext) {
  const sa = ctx.cdb[1]! & 0x1f;
  const listId = ctx.cdb[2]!;
  const alloc = u32(ctx.cdb, 10);
  if (sa === ReceiveCopyResultsSa.OPERATING_PARAMETERS) return ctx.dataIn(operatingParameters(), alloc);
  const held = heldResults.get(ctx.nexus)?.find((r) => r.listId === listId);
  if (!held) return check(invalidCdbField(2));
  const b = Buffer.alloc(12);
  b.writeUInt32BE(8, 0);
  b[4] = held.status;
  b.writeUInt16BE(Math.min(0xffff, held.segments), 5);
  b[7] = 0x00; // TRANSFER COUNT UNITS: bytes
  b.writeUInt32BE(Math.min(0xffffffff, held.bytes), 8);
  return ctx.dataIn(b, alloc);
}

export const extendedCopyCommands: CommandSpec[] = [
  {
    name: 'EXTENDED COPY(LID1)',
    opcode: Opcode.EXTENDED_COPY,
    serviceAction: ExtendedCopySa.LID1,
    usage: [0x83, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00],
    mediaAccess: true,
    cls: 'write',
    timeoutSeconds: 120,
    run: extendedCopy,
  },
  {
    name: 'RECEIVE COPY RESULTS / COPY STATUS',
    opcode: Opcode.RECEIVE_COPY_RESULTS,
    serviceAction: ReceiveCopyResultsSa.COPY_STATUS,
    usage: [0x84, 0x1f, 0xff, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00],
    cls: 'other',
    run: receiveCopyResults,
  },
  {
    name: 'RECEIVE COPY RESULTS / OPERATING PARAMETERS',
    opcode: Opcode.RECEIVE_COPY_RESULTS,
    serviceAction: ReceiveCopyResultsSa.OPERATING_PARAMETERS,
    usage: [0x84, 0x1f, 0x00, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00],
    cls: 'other',
    run: receiveCopyResults,
  },
];
