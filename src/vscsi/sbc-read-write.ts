/**
 * READ(6/10/12/16), WRITE(6/10/12/16) and WRITE AND VERIFY(10/12/16) (SBC-3 5.7-5.11, 5.29-5.36).
 * DPO is a cache hint we have no use for; FUA goes down to the backstore so the data is stable
 * before GOOD status.
 */
import { check, good, isFailure, type CommandContext, type CommandOutcome, type CommandSpec } from './command.js';
import { u16, u32, u64 } from './cdb.js';
import { checkProtect, checkRange, checkTransferLength, checkWritable, firstMismatch } from './sbc-common.js';
import { failure, invalidCdbField, type ScsiFailure } from './sense.js';
import { dataInPool } from './buffer-pool.js';

export const Opcode = {
  READ_6: 0x08,
  WRITE_6: 0x0a,
  READ_10: 0x28,
  WRITE_10: 0x2a,
  WRITE_AND_VERIFY_10: 0x2e,
  READ_16: 0x88,
  WRITE_16: 0x8a,
  WRITE_AND_VERIFY_16: 0x8e,
  READ_12: 0xa8,
  WRITE_12: 0xaa,
  WRITE_AND_VERIFY_12: 0xae,
} as const;

const FUA = 0x08;

const goodLent = (data: Buffer, releaseData: () => void): CommandOutcome => ({ kind: 'good', data, releaseData });

interface Addressed {
  lba: bigint;
  count: number;
  /** CDB byte of the TRANSFER LENGTH field (for field pointers). */
  lengthByte: number;
}

/** Decode LBA and TRANSFER LENGTH by CDB size (SBC-3 4.2.2). */
export function addressOf(cdb: Buffer): Addressed {
  switch (cdb.length) {
    case 6:
      // READ(6)/WRITE(6): 21-bit LBA; TRANSFER LENGTH 0 means 256 blocks (SBC-3 5.7).
      return { lba: BigInt(((cdb[1]! & 0x1f) << 16) | u16(cdb, 2)), count: cdb[4]! || 256, lengthByte: 4 };
    case 10:
      return { lba: BigInt(u32(cdb, 2)), count: u16(cdb, 7), lengthByte: 7 };
    case 12:
      return { lba: BigInt(u32(cdb, 2)), count: u32(cdb, 6), lengthByte: 6 };
    default:
      return { lba: u64(cdb, 2), count: u32(cdb, 10), lengthByte: 10 };
  }
}

/**
 * The checks every READ and WRITE opens with, in the order SBC-3 and libiscsi expect: protection
 * fields, TRANSFER LENGTH against the Block Limits maximum, write protection, then the LBA range.
 */
function openTransfer(ctx: CommandContext, write: boolean): Addressed | ScsiFailure {
  const lu = ctx.unit;
  const cdb = ctx.cdb;
  // The 6-byte CDBs have no protection field (byte 1 holds LBA bits there).
  const bad = cdb.length > 6 ? checkProtect(cdb) : undefined;
  if (bad) return bad;
  const at = addressOf(cdb);
  const failed =
    checkTransferLength(lu, at.count, at.lengthByte) ??
    (write ? checkWritable(lu) : undefined) ??
    checkRange(lu, at.lba, BigInt(at.count));
  return failed ?? at;
}

const isAddressed = (x: Addressed | ScsiFailure): x is Addressed => 'lengthByte' in x;

async function read(ctx: CommandContext) {
  const lu = ctx.unit;
  const opened = openTransfer(ctx, false);
  if (!isAddressed(opened)) return check(opened);
  const { lba, count } = opened;
  if (count === 0) return good();
  const bs = lu.blockSize;
  const guard = lu.readGuard(lba, BigInt(count));
  const release = typeof guard === 'function' ? guard : await guard;
  const lent = dataInPool.acquire(count * bs);
  let data: Buffer;
  try {
    data = await lu.backstore.read(Number(lba) * bs, count * bs, lent.data);
  } catch (e) {
    lent.release();
    throw e;
  } finally {
    release();
  }
  ctx.bytes = data.length;
  // A backstore may answer with its own buffer instead of filling ours.
  if (data !== lent.data) lent.release();
  return data === lent.data ? goodLent(data, lent.release) : good(data);
}

async function write(ctx: CommandContext, verify: boolean) {
  const lu = ctx.unit;
  const cdb = ctx.cdb;
  const opened = openTransfer(ctx, true);
  if (!isAddressed(opened)) return check(opened);
  const { lba, count } = opened;
  if (verify && (cdb[1]! & 0x04) !== 0) return check(invalidCdbField(1, 2)); // BYTCHK 1xb is reserved
  const bs = lu.blockSize;
  const data = ctx.dataOutTruncatableNow(count * bs, bs) ?? (await ctx.dataOutTruncatable(count * bs, bs));
  if (isFailure(data)) return check(data);
  if (data.length === 0 || ctx.aborted) return good();
  const blocks = data.length / bs;
  // WRITE AND VERIFY verifies against the medium, so the data must reach it: treat as FUA.
  const fua = verify || (cdb.length > 6 && (cdb[1]! & FUA) !== 0);
  // A byte-checking verify reads back what it wrote: no other write may land in between.
  const exclusive = verify && (cdb[1]! & 0x02) !== 0;
  const n = BigInt(blocks);
  const release = exclusive
    ? await lu.rangeLock.acquire(lba, n)
    : (lu.rangeLock.tryAcquireShared(lba, n) ?? (await lu.rangeLock.acquireShared(lba, n)));
  try {
    await lu.backstore.write(Number(lba) * bs, data, fua);
    if (exclusive) {
      const back = await lu.backstore.read(Number(lba) * bs, data.length);
      const at = firstMismatch(data, back);
      if (at >= 0) return check(failure('MISCOMPARE_DURING_VERIFY_OPERATION', { information: BigInt(at) }));
    }
  } finally {
    release();
  }
  ctx.bytes = data.length;
  return good();
}

const usage6 = (op: number) => [op, 0x1f, 0xff, 0xff, 0xff, 0x00];
const usage10 = (op: number, b1: number) => [op, b1, 0xff, 0xff, 0xff, 0xff, 0x3f, 0xff, 0xff, 0x00];
const usage12 = (op: number, b1: number) => [op, b1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f, 0x00];
const usage16 = (op: number, b1: number) => [op, b1, ...new Array<number>(12).fill(0xff), 0x3f, 0x00];

/** byte 1: RDPROTECT, DPO, FUA, RARC, FUA_NV (obsolete but still sent by some initiators). */
const READ_FLAGS = 0xfe;
/** byte 1: WRPROTECT, DPO, FUA, FUA_NV. */
const WRITE_FLAGS = 0xfa;
/** byte 1: WRPROTECT, DPO, BYTCHK (2 bits in SBC-4). */
const WRITE_VERIFY_FLAGS = 0xf6;

const readSpec = (name: string, opcode: number, usage: number[]): CommandSpec => ({
  name,
  opcode,
  usage,
  mediaAccess: true,
  cls: 'read',
  timeoutSeconds: 30,
  run: read,
});
const writeSpec = (name: string, opcode: number, usage: number[], verify = false): CommandSpec => ({
  name,
  opcode,
  usage,
  mediaAccess: true,
  cls: 'write',
  timeoutSeconds: 30,
  run: (ctx) => write(ctx, verify),
});

export const sbcReadWriteCommands: CommandSpec[] = [
  readSpec('READ(6)', Opcode.READ_6, usage6(Opcode.READ_6)),
  readSpec('READ(10)', Opcode.READ_10, usage10(Opcode.READ_10, READ_FLAGS)),
  readSpec('READ(12)', Opcode.READ_12, usage12(Opcode.READ_12, READ_FLAGS)),
  readSpec('READ(16)', Opcode.READ_16, usage16(Opcode.READ_16, READ_FLAGS)),
  writeSpec('WRITE(6)', Opcode.WRITE_6, usage6(Opcode.WRITE_6)),
  writeSpec('WRITE(10)', Opcode.WRITE_10, usage10(Opcode.WRITE_10, WRITE_FLAGS)),
  writeSpec('WRITE(12)', Opcode.WRITE_12, usage12(Opcode.WRITE_12, WRITE_FLAGS)),
  writeSpec('WRITE(16)', Opcode.WRITE_16, usage16(Opcode.WRITE_16, WRITE_FLAGS)),
  writeSpec('WRITE AND VERIFY(10)', Opcode.WRITE_AND_VERIFY_10, usage10(Opcode.WRITE_AND_VERIFY_10, WRITE_VERIFY_FLAGS), true),
  writeSpec('WRITE AND VERIFY(12)', Opcode.WRITE_AND_VERIFY_12, usage12(Opcode.WRITE_AND_VERIFY_12, WRITE_VERIFY_FLAGS), true),
  writeSpec('WRITE AND VERIFY(16)', Opcode.WRITE_AND_VERIFY_16, usage16(Opcode.WRITE_AND_VERIFY_16, WRITE_VERIFY_FLAGS), true),
];
