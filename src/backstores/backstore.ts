/**
 * The contract between the SCSI core and storage (ARCHITECTURE.md rule 2): backstores get I/O verbs,
 * never CDBs. Offsets and lengths are in bytes and always multiples of `blockSize`; the core has
 * already range-checked them against `sizeBytes`. Errors are thrown as `BackstoreError` so the core can
 * map them to sense data (MEDIUM ERROR, SPACE ALLOCATION FAILED WRITE PROTECT, ...).
 */

export type CacheMode = 'writeback' | 'writethrough';

export interface BackstoreCapabilities {
  /** discard() deallocates (punch hole / BLKDISCARD); drives LBPU/LBPWS and thin provisioning reporting. */
  discard: boolean;
  /** discard()ed ranges read back as zeroes (LBPRZ). */
  discardZeroes: boolean;
  /** mapStatus() can tell mapped from deallocated ranges (GET LBA STATUS). */
  lbaStatus: boolean;
  /** Thin provisioned: storage is allocated on write (READ CAPACITY 16 LBPME). */
  thinProvisioned: boolean;
  /** Medium can be removed/ejected (START STOP UNIT LOEJ, PREVENT ALLOW MEDIUM REMOVAL). */
  removable: boolean;
}

export interface LbaStatusExtent {
  /** Byte offset of the extent start. */
  offset: number;
  length: number;
  /** true = mapped (allocated), false = deallocated (a hole). */
  mapped: boolean;
}

/**
 * How a read or write begun with `startRead` / `startWrite` ended: `error` is undefined when it
 * succeeded (a read's data is in the caller's buffer), else what `read` / `write` would reject with.
 * Told once, never before the start call has returned.
 */
export interface BackstoreCompletion {
  backstoreDone(error: unknown): void;
}

/** Bytes a store lent for reading (`Backstore.lendRead`). */
export interface LentBytes {
  readonly data: Buffer;
  /** The borrower is done with `data`; later calls do nothing. */
  readonly release: () => void;
}

export interface Backstore {
  /** Name used in config and messages ("disk0"). */
  readonly name: string;
  /** Human-readable location for error messages ("file /var/lib/vtgt/disk0.img"). */
  readonly describe: string;
  readonly blockSize: 512 | 4096;
  /**
   * The storage's own physical block size when it is known and larger than blockSize (a 512e disk:
   * 4096), as a power-of-two multiple of blockSize; undefined = same as blockSize. A hint for the core's
   * default of READ CAPACITY(16) LBPPBE; the LU's configured physicalBlockSize takes precedence.
   */
  readonly physicalBlockSize?: number;
  /** Current size in bytes (a multiple of blockSize). */
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  /** Write-back: writes may sit in a volatile cache until flush(); write-through: durable on completion. */
  readonly cacheMode: CacheMode;
  readonly capabilities: BackstoreCapabilities;
  /**
   * O_DIRECT stores: data buffers whose memory starts on a multiple of `alignment` go to the kernel as
   * they are; any other is copied through an aligned bounce buffer on every transfer. `allocate` makes
   * a buffer so aligned, so that the core's reusable data buffers can be (see BufferPool.alignTo).
   */
  readonly alignedBuffers?: { alignment: number; allocate(size: number): Buffer };

  /** Read `length` bytes at `offset`. When `into` is given the data lands there (it must be >= length). */
  read(offset: number, length: number, into?: Buffer): Promise<Buffer>;
  /** Write `data` at `offset`. `fua`: the data must be on stable storage when the promise resolves. */
  write(offset: number, data: Buffer, fua: boolean): Promise<void>;
  /**
   * Optional: `read` into `into` without a promise. The core's READ path uses it when present, so that
   * a command waiting for the device holds one object instead of a chain of promises and closures
   * (BENCHMARKS.md section 27). Returns true when the read finished before returning (`done` is not
   * told), false when `done` will be. Throws, with nothing started and `done` never told, on errors found
   * at once.
   */
  startRead?(offset: number, length: number, into: Buffer, done: BackstoreCompletion): boolean;
  /** Optional: `write` without a promise, as `startRead` is for `read`. */
  startWrite?(offset: number, data: Buffer, fua: boolean, done: BackstoreCompletion): boolean;
  /**
   * Optional, for stores that hold their data in memory: the stored bytes of [offset, offset+length)
   * themselves, so a READ sends them without first copying them into a buffer of its own. They stay
   * exactly as they are until `release` (a write meanwhile lands in a copy), so a fabric may take its
   * time sending them; nobody may write into them. Undefined when the store cannot lend this range
   * (then the caller reads as usual). Throws what `read` would reject with.
   */
  lendRead?(offset: number, length: number): LentBytes | undefined;
  /**
   * Optional, for write-through stores that hold their data in memory: the stored bytes of
   * [offset, offset+length) for a WRITE to fill in place, at once (a fabric copying its data-out
   * straight into them within the same call). Never bytes a READ still holds through `lendRead`.
   * Undefined, possibly with nothing checked, when the store cannot (the range crosses its allocation
   * units): the caller then writes as usual, which checks. Otherwise throws what `write` would reject
   * with (read-only, out of space, out of range).
   */
  lendWrite?(offset: number, length: number): Buffer | undefined;
  /** Make every completed write durable (fdatasync). No-op for write-through and volatile stores. */
  flush(): Promise<void>;
  /** Deallocate a range (UNMAP, WRITE SAME with UNMAP). Only called when capabilities.discard. */
  discard(offset: number, length: number): Promise<void>;
  /** Make a range read as zeroes, deallocating it when `unmap` and supported. */
  writeZeroes(offset: number, length: number, unmap: boolean): Promise<void>;
  /** Allocation status from `offset` onward (at least the extent containing `offset`). */
  mapStatus(offset: number, length: number): Promise<LbaStatusExtent[]>;
  /** Re-read the size of the underlying storage (after it was grown). Returns the new size. */
  refreshSize(): Promise<number>;
  close(): Promise<void>;
}

export type BackstoreErrorKind =
  | 'io' // EIO and friends -> MEDIUM ERROR
  | 'nospace' // ENOSPC/EDQUOT -> SPACE ALLOCATION FAILED WRITE PROTECT
  | 'gone' // the file or device vanished -> NOT READY / LU communication failure
  | 'readonly' // EROFS / opened read-only -> WRITE PROTECTED
  | 'unsupported';

export class BackstoreError extends Error {
  /**
   * A wrapper (the service's backstore guard) has already told the administrator about this kind of
   * failure: the core then reports it to the initiator only, without logging it a second time.
   */
  reported = false;

  constructor(
    readonly kind: BackstoreErrorKind,
    message: string,
    readonly errno?: string,
  ) {
    super(message);
    this.name = 'BackstoreError';
  }
}
