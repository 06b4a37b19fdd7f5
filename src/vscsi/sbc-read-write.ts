/**
 * READ(6/10/12/16), WRITE(6/10/12/16) and WRITE AND VERIFY(10/12/16) (SBC-3 5.7-5.11, 5.29-5.36).
 * DPO is a cache hint we have no use for; FUA goes down to the backstore so the data is stable
 * before GOOD status.
 */
import { FINISHES_LATER, check, good, isFailure, type CommandContext, type CommandOutcome, type CommandSpec, type HandlerResult } from './command.js';
import type { BackstoreCompletion } from '../backstores/backstore.js';
import { u16, u32, u64 } from './cdb.js';
import { checkProtect, checkRange, checkTransferLength, checkWritable, firstMismatch } from './sbc-common.js';
import { failure, invalidCdbField, type ScsiFailure } from './sense.js';
import { dataInPool, type LentBuffer } from './buffer-pool.js';

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

/**
 * A READ or WRITE waiting for a store's startRead / startWrite: everything its end needs, in the one
 * object the store tells. With thousands of commands waiting for a device this replaces a chain of
 * promises, closures and contexts per command (BENCHMARKS.md section 27).
 */
class BlockTransfer implements BackstoreCompletion {
  constructor(
    readonly ctx: CommandContext,
    /** Ends the command's hold on its LBA range. */
    readonly release: () => void,
    /** A READ's data-in buffer; undefined for a WRITE. */
    readonly lent: LentBuffer | undefined,
    readonly bytes: number,
  ) {}

  backstoreDone(error: unknown): void {
    this.release();
    const { ctx, lent } = this;
    if (error !== undefined) {
      lent?.release();
      ctx.fail(error);
      return;
    }
    ctx.bytes = this.bytes;
    ctx.finish(lent ? goodLent(lent.data, lent.release) : good());
  }
}

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

// READ and WRITE are promise chains, not async functions: a command waiting for its device keeps
// its frames alive, and each young-generation collection copies them (BENCHMARKS.md, section 23).
// The rare byte-checking WRITE AND VERIFY stays an async function.

function read(ctx: CommandContext): HandlerResult | Promise<HandlerResult> {
  const lu = ctx.unit;
  const opened = openTransfer(ctx, false);
  if (!isAddressed(opened)) return check(opened);
  const { lba, count } = opened;
  if (count === 0) return good();
  const guard = lu.readGuard(lba, BigInt(count));
  return typeof guard === 'function' ? readHolding(ctx, lba, count, guard) : guard.then((release) => readHolding(ctx, lba, count, release));
}

function readHolding(ctx: CommandContext, lba: bigint, count: number, release: () => void): HandlerResult | Promise<HandlerResult> {
  const lu = ctx.unit;
  const bs = lu.blockSize;
  const store = lu.backstore;
  if (store.lendRead) {
    // A store that holds its data in memory lends it: the fabric sends it from there.
    let borrowed;
    try {
      borrowed = store.lendRead(Number(lba) * bs, count * bs);
    } catch (e) {
      release();
      throw e;
    }
    if (borrowed) {
      release();
      ctx.bytes = borrowed.data.length;
      return goodLent(borrowed.data, borrowed.release);
    }
  }
  const lent = dataInPool.acquire(count * bs);
  if (store.startRead) {
    const length = count * bs;
    let now: boolean;
    try {
      now = store.startRead(Number(lba) * bs, length, lent.data, new BlockTransfer(ctx, release, lent, length));
    } catch (e) {
      lent.release();
      release();
      throw e;
    }
    if (!now) return FINISHES_LATER;
    release();
    ctx.bytes = length;
    return goodLent(lent.data, lent.release);
  }
  let reading: Promise<Buffer>;
  try {
    reading = lu.backstore.read(Number(lba) * bs, count * bs, lent.data);
  } catch (e) {
    lent.release();
    release();
    throw e;
  }
  return reading.then(
    (data) => {
      release();
      ctx.bytes = data.length;
      // A backstore may answer with its own buffer instead of filling ours.
      if (data === lent.data) return goodLent(data, lent.release);
      lent.release();
      return good(data);
    },
    (e: unknown) => {
      lent.release();
      release();
      throw e;
    },
  );
}

function write(ctx: CommandContext, verify: boolean): HandlerResult | Promise<HandlerResult> {
  const lu = ctx.unit;
  const cdb = ctx.cdb;
  const opened = openTransfer(ctx, true);
  if (!isAddressed(opened)) return check(opened);
  const { lba, count } = opened;
  if (verify && (cdb[1]! & 0x04) !== 0) return check(invalidCdbField(1, 2)); // BYTCHK 1xb is reserved
  const bs = lu.blockSize;
  if (!verify && lu.backstore.lendWrite && ctx.request.port.fetchDataOutInto) {
    const written = writeInPlace(ctx, lba, count);
    if (written) return written;
  }
  const data = ctx.dataOutTruncatableNow(count * bs, bs);
  if (data === undefined) return ctx.dataOutTruncatable(count * bs, bs).then((d) => writeData(ctx, lba, d, verify));
  return writeData(ctx, lba, data, verify);
}

/**
 * A WRITE whose data the fabric copies synchronously, to a store that holds its data in memory: the
 * data-out lands in the store's own bytes, with no buffer in between. Undefined when that cannot be
 * done (another command holds the range exclusively, the range crosses the store's allocation units,
 * or the fabric cannot copy at once): nothing was written, and the caller writes as usual.
 */
function writeInPlace(ctx: CommandContext, lba: bigint, count: number): HandlerResult | undefined {
  const lu = ctx.unit;
  const bs = lu.blockSize;
  const release = lu.rangeLock.tryAcquireShared(lba, BigInt(count));
  if (!release) return undefined;
  try {
    const written = ctx.dataOutTruncatableInto(count * bs, bs, (n) => lu.backstore.lendWrite!(Number(lba) * bs, n));
    if (written === undefined) return undefined;
    if (typeof written !== 'number') return check(written);
    ctx.bytes = written;
    return good();
  } finally {
    release();
  }
}

function writeData(ctx: CommandContext, lba: bigint, data: Buffer | ScsiFailure, verify: boolean): HandlerResult | Promise<HandlerResult> {
  if (isFailure(data)) return check(data);
  if (data.length === 0 || ctx.aborted) return good();
  const cdb = ctx.cdb;
  // A byte-checking verify reads back what it wrote: no other write may land in between.
  if (verify && (cdb[1]! & 0x02) !== 0) return writeAndCompare(ctx, lba, data);
  // WRITE AND VERIFY verifies against the medium, so the data must reach it: treat as FUA.
  const fua = verify || (cdb.length > 6 && (cdb[1]! & FUA) !== 0);
  const lock = ctx.unit.rangeLock;
  const n = BigInt(data.length / ctx.unit.blockSize);
  const release = lock.tryAcquireShared(lba, n);
  if (release) return writeHolding(ctx, lba, data, fua, release);
  return lock.acquireShared(lba, n).then((r) => writeHolding(ctx, lba, data, fua, r));
}

function writeHolding(ctx: CommandContext, lba: bigint, data: Buffer, fua: boolean, release: () => void): HandlerResult | Promise<HandlerResult> {
  const lu = ctx.unit;
  const store = lu.backstore;
  if (store.startWrite) {
    let now: boolean;
    try {
      now = store.startWrite(Number(lba) * lu.blockSize, data, fua, new BlockTransfer(ctx, release, undefined, data.length));
    } catch (e) {
      release();
      throw e;
    }
    if (!now) return FINISHES_LATER;
    release();
    ctx.bytes = data.length;
    return good();
  }
  let writing: Promise<void>;
  try {
    writing = lu.backstore.write(Number(lba) * lu.blockSize, data, fua);
  } catch (e) {
    release();
    throw e;
  }
  return writing.then(
    () => {
      release();
      ctx.bytes = data.length;
      return good();
    },
    (e: unknown) => {
      release();
      throw e;
    },
  );
}

async function writeAndCompare(ctx: CommandContext, lba: bigint, data: Buffer): Promise<CommandOutcome> {
  const lu = ctx.unit;
  const bs = lu.blockSize;
  const release = await lu.rangeLock.acquire(lba, BigInt(data.length / bs));
  try {
    await lu.backstore.write(Number(lba) * bs, data, true);
    const back = await lu.backstore.read(Number(lba) * bs, data.length);
    const at = firstMismatch(data, back);
    if (at >= 0) return check(failure('MISCOMPARE_DURING_VERIFY_OPERATION', { information: BigInt(at) }));
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
