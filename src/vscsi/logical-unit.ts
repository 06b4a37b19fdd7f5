/**
 * A logical unit: a backstore plus everything SCSI keeps per LU — identity (INQUIRY / VPD 0x80 / 0x83),
 * mode page state, the task set, medium state for removable LUs, reservations and counters.
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Backstore } from '../backstores/backstore.js';
import { defaultModeState, type ModeState } from './mode-pages.js';
import { RangeLock } from './range-lock.js';
import { dataInPool } from './buffer-pool.js';
import { DEFAULT_JOURNAL_CAPACITY, type AtomicWriteJournal } from './atomic-journal.js';
import type { ReservationPort } from './reservation-port.js';
import { newLuStats, type LuStats } from './stats.js';
import { TaskSet } from './task-set.js';
import type { ReasonName } from './sense.js';

/**
 * Company id used in derived NAA identifiers. 0x0A.... has the IEEE "X" (locally assigned CID) bit set,
 * so it cannot collide with a vendor's OUI; sites that own an OUI configure `naaId` instead.
 */
export const VTGT_COMPANY_ID = 0x0a7647;

export interface LogicalUnitOptions {
  id: string;
  backstore: Backstore;
  serial?: string;
  /** 128-bit NAA 6 identifier; derived from id and serial when absent. */
  naaId?: bigint;
  product?: string;
  vendor?: string;
  revision?: string;
  /** File where APTPL persistent reservation state is kept. */
  prStatePath?: string;
  /**
   * Physical block size in bytes reported to initiators (READ CAPACITY(16) LBPPBE, Block Limits
   * granularities), e.g. 4096 on a 512-byte LUN backed by 4K-sector storage; default: the
   * backstore's `physicalBlockSize`, else the logical block size.
   */
  physicalBlockSize?: number;
  /**
   * Largest WRITE ATOMIC(16) in bytes: what the storage under this LU commits all-or-nothing across a
   * crash or power loss, as the operator knows it (e.g. a device's atomic write unit). Default: one
   * physical block. See `sbc-atomic.ts` for why nothing larger is assumed.
   */
  maxAtomicWriteBytes?: number;
  /**
   * File for the atomic write intent journal; with it, WRITE ATOMIC(16) is crash-atomic up to
   * `maxAtomicWriteBytes` (default 1 MiB) instead of one physical block.
   */
  atomicJournalPath?: string;
}

/** SBC-3 5.16.2: LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT is a 4-bit field. */
const MAX_LBPPB_EXPONENT = 15;

function deriveNaa(id: string, serial: string): bigint {
  // NAA 6 (IEEE Registered Extended): 4-bit NAA, 24-bit OUI, 36-bit vendor id + 64-bit extension.
  const h = createHash('sha256').update(`${id}\0${serial}`).digest();
  let v = 0x6n << 124n;
  v |= BigInt(VTGT_COMPANY_ID) << 100n;
  v |= (h.readBigUInt64BE(0) >> 28n) << 64n; // 36 bits
  v |= h.readBigUInt64BE(8);
  return v;
}

function lbppbExponentOf(id: string, physical: number | undefined, logical: number): number {
  if (physical === undefined) return 0;
  const ratio = physical / logical;
  const exp = Math.log2(ratio);
  if (!Number.isInteger(physical) || !Number.isInteger(exp) || exp < 0 || exp > MAX_LBPPB_EXPONENT) {
    throw new Error(
      `logical unit ${id}: physicalBlockSize ${physical} must be the logical block size (${logical}) times a power of two up to 2^${MAX_LBPPB_EXPONENT}`,
    );
  }
  return exp;
}

/** Largest single transfer any SBC command accepts (mirrors block-limits.ts MAX_TRANSFER_BYTES). */
const MAX_ATOMIC_WRITE_BYTES = 32 * 1024 * 1024;

function maxAtomicBlocksOf(opts: LogicalUnitOptions, physical: number): number {
  const logical = opts.backstore.blockSize;
  const journaled = opts.atomicJournalPath ? Math.min(DEFAULT_JOURNAL_CAPACITY, MAX_ATOMIC_WRITE_BYTES) : 0;
  const bytes = opts.maxAtomicWriteBytes ?? Math.max(physical, journaled);
  if (!Number.isInteger(bytes) || bytes < logical || bytes % logical !== 0 || bytes > MAX_ATOMIC_WRITE_BYTES) {
    throw new Error(
      `logical unit ${opts.id}: maxAtomicWriteBytes ${bytes} must be a multiple of the logical block size (${logical}) up to ${MAX_ATOMIC_WRITE_BYTES}`,
    );
  }
  return bytes / logical;
}

function deriveSerial(id: string): string {
  return createHash('sha256').update(id).digest('hex').slice(0, 16);
}

/** Printable ASCII only, padded/truncated to `len` (SPC-4 4.4.1). */
export function asciiField(s: string, len: number): Buffer {
  const b = Buffer.alloc(len, 0x20);
  const clean = s.replace(/[^\x20-\x7e]/g, '_');
  b.write(clean.slice(0, len), 'ascii');
  return b;
}

export class LogicalUnit {
  readonly id: string;
  readonly backstore: Backstore;
  readonly serial: string;
  /** 128-bit NAA 6 identifier (VPD 0x83). */
  readonly naaId: bigint;
  readonly vendor: string;
  readonly product: string;
  readonly revision: string;
  readonly prStatePath: string | undefined;
  /** log2(physical block size / logical block size), READ CAPACITY(16) LBPPBE. */
  readonly lbppbExponent: number;
  /** Largest WRITE ATOMIC(16) transfer in logical blocks (Block Limits VPD MAXIMUM ATOMIC TRANSFER LENGTH). */
  readonly maxAtomicBlocks: number;
  /** Opened by the core when `atomicJournalPath` is configured. */
  atomicJournal: AtomicWriteJournal | undefined;
  /** WRITE ATOMIC(16) commands between their start and the end of their backstore write. */
  atomicWriters = 0;
  /** READs running without the range lock (none start while `atomicWriters` > 0). */
  unlockedReads = 0;
  private readonly unlockedReadsDrained: Array<() => void> = [];
  mode: ModeState = defaultModeState();
  readonly taskSet = new TaskSet();
  readonly rangeLock = new RangeLock();
  readonly stats: LuStats = newLuStats();
  /** Removable media state (SBC-3 START STOP UNIT LOEJ, SPC-4 PREVENT ALLOW MEDIUM REMOVAL). */
  mediumPresent = true;
  /** Nexus ids that currently prevent medium removal. */
  readonly preventers = new Set<number>();
  /** START STOP UNIT START=0 stops the unit; media access then needs an initializing command. */
  stopped = false;
  reservations: ReservationPort | undefined;
  /** Resolves when the reservation manager is open (APTPL state restored). */
  ready: Promise<void> = Promise.resolve();
  /** `ready` has settled: commands can start without waiting a turn for it. */
  isReady = true;
  /** Capacity in blocks the initiators were last told; a change raises CAPACITY DATA HAS CHANGED. */
  reportedBlocks: bigint;
  removed = false;
  /**
   * Set when the LU cannot serve media access at all (its reservation state could not be restored):
   * media access commands fail with this reason until the operator fixes the cause.
   */
  fault: ReasonName | undefined;
  /** A SANITIZE operation is running (SBC-4 4.11): nearly every command gets SANITIZE IN PROGRESS. */
  sanitize: { progress: number; done: Promise<void> } | undefined;
  /** The last SANITIZE failed: media access reports SANITIZE COMMAND FAILED until one succeeds or EXIT FAILURE MODE. */
  sanitizeFailed: { ause: boolean } | undefined;
  private readonly loggedErrors = new Set<string>();

  constructor(
    opts: LogicalUnitOptions,
    readonly defaults: { vendor: string; product: string },
    /** Already bound to this LU (`lu` field, core.ts): lines logged here do not repeat it. */
    readonly logger?: Logger,
  ) {
    if (!opts.id) throw new Error('logical unit id must be a non-empty string');
    this.id = opts.id;
    this.backstore = opts.backstore;
    const aligned = opts.backstore.alignedBuffers;
    if (aligned) dataInPool.alignTo(aligned.alignment, aligned.allocate);
    this.serial = opts.serial ?? deriveSerial(opts.id);
    // VPD 0x80 and the T10 vendor ID designator (8 + serial bytes, one length byte) carry it verbatim.
    if (!/^[\x21-\x7e]{1,200}$/.test(this.serial)) {
      throw new Error(`logical unit ${opts.id}: serial must be 1-200 printable ASCII characters without spaces`);
    }
    if (opts.naaId !== undefined && (opts.naaId < 0n || opts.naaId >> 128n !== 0n)) {
      throw new Error(`logical unit ${opts.id}: naaId must fit in 128 bits`);
    }
    this.naaId = opts.naaId ?? deriveNaa(opts.id, this.serial);
    this.vendor = opts.vendor ?? defaults.vendor;
    this.product = opts.product ?? defaults.product;
    this.revision = opts.revision ?? '0001';
    this.prStatePath = opts.prStatePath;
    // Configured, else what the storage reports (a 512e disk: 4096), else the logical block size.
    this.lbppbExponent = lbppbExponentOf(opts.id, opts.physicalBlockSize ?? opts.backstore.physicalBlockSize, opts.backstore.blockSize);
    this.maxAtomicBlocks = maxAtomicBlocksOf(opts, this.physicalBlockSize);
    this.reportedBlocks = this.capacityBlocks();
  }

  get blockSize(): number {
    return this.backstore.blockSize;
  }

  /** Logical blocks per physical block (1 unless `physicalBlockSize` was configured larger). */
  get logicalPerPhysical(): number {
    return 1 << this.lbppbExponent;
  }

  get physicalBlockSize(): number {
    return this.blockSize * this.logicalPerPhysical;
  }

  /**
   * Hold off media reads that could observe half of a WRITE ATOMIC(16): while an atomic write is
   * pending, reads take the range lock shared (excluded by the atomic write, not by each other);
   * otherwise they only count themselves, which is all the common path pays. Returns the release
   * function.
   */
  readGuard(lba: bigint, count: bigint): (() => void) | Promise<() => void> {
    // Synchronous in the common case: a READ pays no extra promise turn for atomic write support.
    if (this.atomicWriters > 0) return this.rangeLock.acquireShared(lba, count);
    this.unlockedReads++;
    return this.unlockedReadDone;
  }

  /** Ends one read started without the range lock: one function per LU, not a closure per READ. */
  private readonly unlockedReadDone = (): void => {
    // Checked first: at queue depth 1 the count reaches 0 after every READ, and splice allocates.
    if (--this.unlockedReads === 0 && this.unlockedReadsDrained.length > 0) {
      for (const wake of this.unlockedReadsDrained.splice(0)) wake();
    }
  };

  /** Resolves when every read that started without the range lock has finished. */
  unlockedReadsDone(): Promise<void> {
    if (this.unlockedReads === 0) return Promise.resolve();
    return new Promise((r) => this.unlockedReadsDrained.push(r));
  }

  capacityBlocks(): bigint {
    return BigInt(Math.floor(this.backstore.sizeBytes / this.backstore.blockSize));
  }

  /** Write protected by the backstore (read-only) or by the control page's SWP. */
  writeProtected(): boolean {
    return this.backstore.readOnly || this.mode.swp;
  }

  /** Log a backstore failure once per kind, so a dead disk does not flood the log. */
  logErrorOnce(kind: string, err: unknown): void {
    if (this.loggedErrors.has(kind)) return;
    this.loggedErrors.add(kind);
    this.logger?.error(
      { backstore: this.backstore.describe, kind, err },
      'backstore I/O failed; the LU reports errors to initiators until the storage is fixed',
    );
  }

  /** A medium access succeeded: if failures were logged, say the storage works again (once). */
  noteSuccess(): void {
    if (this.loggedErrors.size === 0) return;
    this.loggedErrors.clear();
    this.logger?.info({ backstore: this.backstore.describe }, 'backstore I/O works again');
  }
}
