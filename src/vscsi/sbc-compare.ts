/**
 * Read-modify-write commands, atomic against other writers through the LU's range lock:
 * COMPARE AND WRITE (SBC-3 5.2) and ORWRITE(16) (SBC-3 5.8).
 */
import { INVALID_FIELD_IN_CIU, check, good, isFailure, type CommandContext, type CommandSpec } from './command.js';
import { u32, u64 } from './cdb.js';
import { blockLimits } from './block-limits.js';
import { checkProtect, checkRange, checkTransferLength, checkWritable, firstMismatch } from './sbc-common.js';
import { failure, invalidCdbField } from './sense.js';

export const Opcode = { COMPARE_AND_WRITE: 0x89, ORWRITE_16: 0x8b } as const;
const FUA = 0x08;

async function compareAndWrite(ctx: CommandContext) {
  const lu = ctx.unit;
  const cdb = ctx.cdb;
  const bad = checkProtect(cdb);
  if (bad) return check(bad);
  const lba = u64(cdb, 2);
  const count = cdb[13]!;
  if (count > blockLimits(lu).maxCompareAndWriteBlocks) return check(invalidCdbField(13));
  const wp = checkWritable(lu);
  if (wp) return check(wp);
  const range = checkRange(lu, lba, BigInt(count));
  if (range) return check(range);
  const bs = lu.blockSize;
  const data = await ctx.dataOut(2 * count * bs, 'media');
  // The data-out size is fixed by NUMBER OF LOGICAL BLOCKS: a mismatch means that field is wrong
  // (e.g. 256 blocks wrapped to 0 in the one-byte field), so point at it.
  if (isFailure(data)) return check(data.reason === INVALID_FIELD_IN_CIU ? invalidCdbField(13) : data);
  // SBC-3 5.2: NUMBER OF LOGICAL BLOCKS 0 compares and writes nothing.
  if (count === 0 || ctx.aborted) return good();
  const verifyPart = data.subarray(0, count * bs);
  const writePart = data.subarray(count * bs);
  const release = await lu.rangeLock.acquire(lba, BigInt(count));
  try {
    const current = await lu.backstore.read(Number(lba) * bs, count * bs);
    const at = firstMismatch(verifyPart, current);
    if (at >= 0) return check(failure('MISCOMPARE_DURING_VERIFY_OPERATION', { information: BigInt(at) }));
    await lu.backstore.write(Number(lba) * bs, writePart, (cdb[1]! & FUA) !== 0);
  } finally {
    release();
  }
  ctx.bytes = writePart.length;
  return good();
}

async function orWrite(ctx: CommandContext) {
  const lu = ctx.unit;
  const cdb = ctx.cdb;
  const bad = checkProtect(cdb);
  if (bad) return check(bad);
  const lba = u64(cdb, 2);
  const count = u32(cdb, 10);
  const tooLong = checkTransferLength(lu, count, 10);
  if (tooLong) return check(tooLong);
  const wp = checkWritable(lu);
  if (wp) return check(wp);
  const range = checkRange(lu, lba, BigInt(count));
  if (range) return check(range);
  const bs = lu.blockSize;
  const data = await ctx.dataOut(count * bs, 'media');
  if (isFailure(data)) return check(data);
  if (count === 0 || ctx.aborted) return good();
  const release = await lu.rangeLock.acquire(lba, BigInt(count));
  try {
    const current = await lu.backstore.read(Number(lba) * bs, count * bs);
    for (let i = 0; i < current.length; i++) current[i]! |= data[i]!;
    await lu.backstore.write(Number(lba) * bs, current, (cdb[1]! & FUA) !== 0);
  } finally {
    release();
  }
  ctx.bytes = data.length;
  return good();
}

const ff = (n: number): number[] => new Array<number>(n).fill(0xff);

export const sbcCompareCommands: CommandSpec[] = [
  {
    name: 'COMPARE AND WRITE',
    opcode: Opcode.COMPARE_AND_WRITE,
    usage: [0x89, 0xfa, ...ff(8), 0x00, 0x00, 0x00, 0xff, 0x3f, 0x00],
    mediaAccess: true,
    cls: 'write',
    timeoutSeconds: 30,
    run: compareAndWrite,
  },
  {
    name: 'ORWRITE(16)',
    opcode: Opcode.ORWRITE_16,
    usage: [0x8b, 0xfa, ...ff(12), 0x3f, 0x00],
    mediaAccess: true,
    cls: 'write',
    timeoutSeconds: 30,
    run: orWrite,
  },
];
