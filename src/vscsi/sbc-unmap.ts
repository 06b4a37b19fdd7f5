/**
 * Logical block provisioning commands: UNMAP (SBC-3 5.28) and WRITE SAME(10/16) (5.41, 5.42) with
 * the UNMAP and NDOB bits. Deallocation goes to the backstore's discard / writeZeroes verbs; the
 * pattern case writes in bounded chunks.
 */
import { Buffer } from 'node:buffer';
import { blockLimits } from './block-limits.js';
import { check, good, isFailure, type CommandContext, type CommandSpec } from './command.js';
import { u16, u32, u64 } from './cdb.js';
import { checkProtect, checkRange, checkWritable } from './sbc-common.js';
import { failure, invalidCdbField, invalidParamField } from './sense.js';

export const Opcode = { WRITE_SAME_10: 0x41, UNMAP: 0x42, WRITE_SAME_16: 0x93 } as const;

/** Largest single backstore write when expanding a WRITE SAME pattern. */
const PATTERN_CHUNK_BYTES = 1024 * 1024;
const UNMAP_HEADER = 8;
const UNMAP_DESCRIPTOR = 16;

async function unmap(ctx: CommandContext) {
  const lu = ctx.unit;
  if (ctx.cdb[1]! & 0x01) return check(invalidCdbField(1, 0)); // ANCHOR: ANC_SUP=0
  if (!lu.backstore.capabilities.discard) {
    // LBPU=0 in the provisioning VPD page: the command is not supported on this LU.
    return check(failure('INVALID_COMMAND_OPERATION_CODE', { field: { inCdb: true, byte: 0 } }));
  }
  const length = u16(ctx.cdb, 7);
  const wp = checkWritable(lu);
  if (wp) return check(wp);
  if (length === 0) return good();
  if (length < UNMAP_HEADER) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
  const params = await ctx.dataOut(length, 'parameters', 7);
  if (isFailure(params)) return check(params);
  const bdLength = Math.min(u16(params, 2), params.length - UNMAP_HEADER);
  const n = Math.floor(bdLength / UNMAP_DESCRIPTOR);
  const limits = blockLimits(lu);
  if (n > limits.maxUnmapDescriptors) return check(invalidParamField(2));
  const ranges: Array<{ lba: bigint; count: number }> = [];
  for (let i = 0; i < n; i++) {
    const o = UNMAP_HEADER + i * UNMAP_DESCRIPTOR;
    const lba = u64(params, o);
    const count = u32(params, o + 8);
    const range = checkRange(lu, lba, BigInt(count));
    if (range) return check(range);
    if (count > limits.maxUnmapLbaCount) return check(invalidParamField(o + 8));
    if (count > 0) ranges.push({ lba, count });
  }
  const bs = lu.blockSize;
  for (const r of ranges) {
    if (ctx.aborted) break;
    const release = await lu.rangeLock.acquire(r.lba, BigInt(r.count));
    try {
      await lu.backstore.discard(Number(r.lba) * bs, r.count * bs);
    } finally {
      release();
    }
  }
  return good();
}

async function writeSame(ctx: CommandContext) {
  const lu = ctx.unit;
  const cdb = ctx.cdb;
  const sixteen = cdb.length === 16;
  const bad = checkProtect(cdb);
  if (bad) return check(bad);
  const anchor = (cdb[1]! & 0x10) !== 0;
  const unmapBit = (cdb[1]! & 0x08) !== 0;
  const ndob = sixteen && (cdb[1]! & 0x01) !== 0;
  if (anchor) return check(invalidCdbField(1, 4));
  const lba = sixteen ? u64(cdb, 2) : BigInt(u32(cdb, 2));
  let count = sixteen ? u32(cdb, 10) : u16(cdb, 7);
  const countByte = sixteen ? 10 : 7;
  const caps = lu.backstore.capabilities;
  if (unmapBit && !caps.discard) return check(invalidCdbField(1, 3)); // LBPWS=0
  const maxBlocks = blockLimits(lu).maxWriteSameBlocks;
  if (count === 0) {
    // SBC-3 5.41 (WSNZ=0): zero blocks means "through the last LBA", within MAXIMUM WRITE SAME LENGTH.
    const cap = lu.capacityBlocks();
    if (lba >= cap) return check(failure('LBA_OUT_OF_RANGE'));
    if (cap - lba > BigInt(maxBlocks)) return check(invalidCdbField(countByte));
    count = Number(cap - lba);
  }
  if (count > maxBlocks) return check(invalidCdbField(countByte));
  const wp = checkWritable(lu);
  if (wp) return check(wp);
  const range = checkRange(lu, lba, BigInt(count));
  if (range) return check(range);
  const bs = lu.blockSize;
  let block: Buffer;
  if (ndob) {
    const none = await ctx.dataOut(0, 'media');
    if (isFailure(none)) return check(none);
    block = Buffer.alloc(bs);
  } else {
    const got = await ctx.dataOut(bs, 'media');
    if (isFailure(got)) return check(got);
    block = got;
  }
  if (ctx.aborted) return good();
  const zero = block.every((x) => x === 0);
  const release = await lu.rangeLock.acquire(lba, BigInt(count));
  try {
    const offset = Number(lba) * bs;
    // SBC-3 5.41: with UNMAP=1 the range is deallocated (as LIO does, and libiscsi expects even for a
    // non-zero pattern); it then reads back as zeroes (LBPRZ).
    if (zero || unmapBit) {
      await lu.backstore.writeZeroes(offset, count * bs, unmapBit);
    } else {
      const perChunk = Math.max(1, Math.floor(PATTERN_CHUNK_BYTES / bs));
      const chunk = Buffer.alloc(Math.min(count, perChunk) * bs);
      for (let i = 0; i < chunk.length; i += bs) block.copy(chunk, i);
      for (let done = 0; done < count && !ctx.aborted; ) {
        const n = Math.min(perChunk, count - done);
        await lu.backstore.write(offset + done * bs, n * bs === chunk.length ? chunk : chunk.subarray(0, n * bs), false);
        done += n;
      }
    }
  } finally {
    release();
  }
  ctx.bytes = count * bs;
  return good();
}

export const sbcUnmapCommands: CommandSpec[] = [
  {
    name: 'UNMAP',
    opcode: Opcode.UNMAP,
    usage: [0x42, 0x01, 0x00, 0x00, 0x00, 0x00, 0x3f, 0xff, 0xff, 0x00],
    mediaAccess: true,
    cls: 'write',
    timeoutSeconds: 60,
    run: unmap,
  },
  {
    name: 'WRITE SAME(10)',
    opcode: Opcode.WRITE_SAME_10,
    usage: [0x41, 0xf8, 0xff, 0xff, 0xff, 0xff, 0x3f, 0xff, 0xff, 0x00],
    mediaAccess: true,
    cls: 'write',
    timeoutSeconds: 60,
    run: writeSame,
  },
  {
    name: 'WRITE SAME(16)',
    opcode: Opcode.WRITE_SAME_16,
    usage: [0x93, 0xf9, ...new Array<number>(12).fill(0xff), 0x3f, 0x00],
    mediaAccess: true,
    cls: 'write',
    timeoutSeconds: 60,
    run: writeSame,
  },
];
