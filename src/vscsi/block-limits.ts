/**
 * The limits we advertise in the Block Limits VPD page (SBC-3 6.5.3) and enforce in the SBC
 * commands; one place so the two cannot disagree.
 */
import type { LogicalUnit } from './logical-unit.js';

/** Largest data transfer of one READ/WRITE/VERIFY, in bytes (keeps a single command's buffer bounded). */
// 32 MiB: 65536 blocks of 512 bytes, which libiscsi's 4-byte-length tests transfer in one command.
export const MAX_TRANSFER_BYTES = 32 * 1024 * 1024;
/** COMPARE AND WRITE NUMBER OF LOGICAL BLOCKS limit (the CDB field is one byte). */
export const MAX_COMPARE_AND_WRITE_BLOCKS = 255;
export const MAX_UNMAP_BLOCK_DESCRIPTORS = 256;
// libiscsi and Linux treat counts above 1 Mi blocks (other than "no limit") as implausible.
export const MAX_UNMAP_LBA_COUNT = 0x100000;
export const MAX_WRITE_SAME_BLOCKS = 0x400000;

export interface BlockLimits {
  maxTransferBlocks: number;
  optimalGranularityBlocks: number;
  maxCompareAndWriteBlocks: number;
  maxUnmapLbaCount: number;
  maxUnmapDescriptors: number;
  optimalUnmapGranularity: number;
  maxWriteSameBlocks: number;
  /** WRITE ATOMIC(16) (SBC-4 6.6.4): largest transfer, required LBA alignment (0 = none), length granularity (0 = none). */
  maxAtomicTransferBlocks: number;
  atomicAlignment: number;
  atomicGranularity: number;
}

/** MAXIMUM TRANSFER LENGTH in blocks; on its own because every READ and WRITE checks it. */
export function maxTransferBlocks(lu: LogicalUnit): number {
  return MAX_TRANSFER_BYTES / lu.blockSize;
}

export function blockLimits(lu: LogicalUnit): BlockLimits {
  const bs = lu.blockSize;
  // Whole physical blocks, and at least whole 4 KiB pages, which is what file-backed stores write
  // and punch without a read-modify-write or a partial-page zeroing.
  const granularity = Math.max(lu.logicalPerPhysical, 4096 / bs, 1);
  const discard = lu.backstore.capabilities.discard;
  return {
    maxTransferBlocks: maxTransferBlocks(lu),
    optimalGranularityBlocks: granularity,
    maxCompareAndWriteBlocks: MAX_COMPARE_AND_WRITE_BLOCKS,
    maxUnmapLbaCount: discard ? MAX_UNMAP_LBA_COUNT : 0,
    maxUnmapDescriptors: discard ? MAX_UNMAP_BLOCK_DESCRIPTORS : 0,
    optimalUnmapGranularity: granularity,
    maxWriteSameBlocks: MAX_WRITE_SAME_BLOCKS,
    maxAtomicTransferBlocks: Math.min(lu.maxAtomicBlocks, maxTransferBlocks(lu)),
    // An atomic write must not straddle physical blocks: the medium commits whole physical blocks.
    atomicAlignment: lu.logicalPerPhysical > 1 ? lu.logicalPerPhysical : 0,
    atomicGranularity: 0,
  };
}
