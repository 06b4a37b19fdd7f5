/**
 * WRITE ATOMIC(16) (SBC-4 5.48, atomic writes 4.29).
 *
 * Atomic against other commands: the write holds the LU range lock exclusively (plain WRITEs hold it
 * shared), and while it is pending READs of the LU take the range lock shared too
 * (`LogicalUnit.readGuard`), after the reads already running have finished — so no command sees part
 * of it.
 *
 * Atomic across a crash or power loss only as far as the storage itself is: the backstore verbs write
 * in place (pwrite / io_uring on a file or device, possibly through the page cache), so a larger write
 * can be torn into pages or sectors on the way down. The one unit storage commits all-or-nothing is
 * its physical block, so that is the default MAXIMUM ATOMIC TRANSFER LENGTH, aligned to physical
 * blocks. With the LU option `atomicJournalPath` writes larger than that go through an intent journal
 * (atomic-journal.ts) and the limit becomes 1 MiB; an operator whose storage guarantees more by itself
 * (a device's atomic write unit) sets `maxAtomicWriteBytes` instead, as the service does for memory
 * and null LUs (nothing of theirs survives a crash to be torn).
 */
import { blockLimits } from './block-limits.js';
import { check, good, isFailure, type CommandContext, type CommandSpec } from './command.js';
import { u16, u64 } from './cdb.js';
import { checkProtect, checkRange, checkWritable } from './sbc-common.js';
import { invalidCdbField } from './sense.js';

export const Opcode = { WRITE_ATOMIC_16: 0x9c } as const;
const FUA = 0x08;

/** SBC-4 5.48 CDB field offsets. */
const LBA_BYTE = 2;
const ATOMIC_BOUNDARY_BYTE = 10;
const TRANSFER_LENGTH_BYTE = 12;

async function writeAtomic16(ctx: CommandContext) {
  const lu = ctx.unit;
  const cdb = ctx.cdb;
  const bad = checkProtect(cdb);
  if (bad) return check(bad);
  // MAXIMUM ATOMIC BOUNDARY SIZE is 0: no atomic boundaries, the field must be zero.
  if (u16(cdb, ATOMIC_BOUNDARY_BYTE) !== 0) return check(invalidCdbField(ATOMIC_BOUNDARY_BYTE));
  const lba = u64(cdb, LBA_BYTE);
  const count = u16(cdb, TRANSFER_LENGTH_BYTE);
  const wp = checkWritable(lu);
  if (wp) return check(wp);
  const range = checkRange(lu, lba, BigInt(count));
  if (range) return check(range);
  const limits = blockLimits(lu);
  if (count > limits.maxAtomicTransferBlocks) return check(invalidCdbField(TRANSFER_LENGTH_BYTE));
  if (limits.atomicAlignment > 1 && lba % BigInt(limits.atomicAlignment) !== 0n) return check(invalidCdbField(LBA_BYTE));
  if (limits.atomicGranularity > 1 && count % limits.atomicGranularity !== 0) {
    return check(invalidCdbField(TRANSFER_LENGTH_BYTE));
  }
  const bs = lu.blockSize;
  // Exactly the CDB's blocks: writing a truncated transfer would not be all-or-nothing.
  const data = await ctx.dataOut(count * bs, 'media');
  if (isFailure(data)) return check(data);
  if (count === 0 || ctx.aborted) return good();
  lu.atomicWriters++;
  try {
    await lu.unlockedReadsDone();
    const release = await lu.rangeLock.acquire(lba, BigInt(count));
    try {
      const offset = Number(lba) * bs;
      const journal = lu.atomicJournal;
      // One physical block is written all-or-nothing by the medium itself; more needs the journal.
      if (journal && count > lu.logicalPerPhysical) {
        await journal.commit(offset, data, () => lu.backstore.write(offset, data, true));
      } else {
        await lu.backstore.write(offset, data, (cdb[1]! & FUA) !== 0);
      }
    } finally {
      release();
    }
  } finally {
    lu.atomicWriters--;
  }
  ctx.bytes = data.length;
  return good();
}

export const sbcAtomicCommands: CommandSpec[] = [
  {
    name: 'WRITE ATOMIC(16)',
    opcode: Opcode.WRITE_ATOMIC_16,
    // byte 1: WRPROTECT, DPO, FUA; 2-9 LBA; 10-11 ATOMIC BOUNDARY; 12-13 TRANSFER LENGTH; 14 GROUP NUMBER.
    usage: [0x9c, 0xf8, ...new Array<number>(12).fill(0xff), 0x3f, 0x00],
    mediaAccess: true,
    cls: 'write',
    timeoutSeconds: 30,
    run: writeAtomic16,
  },
];
