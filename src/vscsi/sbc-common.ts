/** Helpers shared by the SBC command handlers: LBA range and transfer length checks, write protect. */
import { maxTransferBlocks } from './block-limits.js';
import type { LogicalUnit } from './logical-unit.js';
import { failure, invalidCdbField, type ScsiFailure } from './sense.js';

/** SBC-3 4.5: LBA + count past the capacity → LBA OUT OF RANGE (also for count 0 beyond the end). */
export function checkRange(lu: LogicalUnit, lba: bigint, count: bigint): ScsiFailure | undefined {
  const cap = lu.capacityBlocks();
  if (lba > cap || lba + count > cap) return failure('LBA_OUT_OF_RANGE');
  return undefined;
}

/** SBC-3 6.5.3: a TRANSFER LENGTH above MAXIMUM TRANSFER LENGTH → INVALID FIELD IN CDB. */
export function checkTransferLength(lu: LogicalUnit, count: number, fieldByte: number): ScsiFailure | undefined {
  if (count > maxTransferBlocks(lu)) return invalidCdbField(fieldByte);
  return undefined;
}

/** DATA PROTECT for writes to a read-only backstore or under SWP (SBC-3 write protection / SPC-4 7.5.8 SWP). */
export function checkWritable(lu: LogicalUnit): ScsiFailure | undefined {
  if (lu.backstore.readOnly) return failure('WRITE_PROTECTED');
  if (lu.mode.swp) return failure('LOGICAL_UNIT_SOFTWARE_WRITE_PROTECTED');
  return undefined;
}

/** RDPROTECT / WRPROTECT / VRPROTECT / ORPROTECT: no protection information is ever formatted. */
export function checkProtect(cdb: Buffer): ScsiFailure | undefined {
  if (cdb[1]! & 0xe0) return invalidCdbField(1, 7);
  return undefined;
}

/** First byte offset at which a and b differ, or -1. */
export function firstMismatch(a: Buffer, b: Buffer): number {
  const n = Math.min(a.length, b.length);
  if (a.subarray(0, n).equals(b.subarray(0, n))) return a.length === b.length ? -1 : n;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return n;
}
