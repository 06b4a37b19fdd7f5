/**
 * An intent journal that makes WRITE ATOMIC(16) all-or-nothing across a crash or power loss on
 * storage that only writes sectors or pages atomically (see sbc-atomic.ts).
 *
 * Protocol, one record at a time: (1) write header + data to the journal file and fdatasync it;
 * (2) write the data in place with FUA; (3) zero the header and fdatasync. A crash before (1) is
 * durable leaves a record whose checksum fails: nothing happened. A crash after it replays the record
 * at the next open, which rewrites the whole range: everything happened. Step (3) is durable before
 * the command completes, so a stale record can never replay over data written later.
 */
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { constants as fsc, promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Backstore } from '../backstores/backstore.js';

const MAGIC = Buffer.from('VTGTAJ01', 'ascii');
/** magic(8) sequence(8) offset(8) length(4) reserved(4) sha256(32). */
export const JOURNAL_HEADER_BYTES = 64;
const HASH_AT = 32;
/** Default largest journaled write: 1 MiB (256 blocks of 4 KiB, 2048 of 512). */
export const DEFAULT_JOURNAL_CAPACITY = 1024 * 1024;

function digest(header: Buffer, data: Buffer): Buffer {
  return createHash('sha256').update(header.subarray(0, HASH_AT)).update(data).digest();
}

export class AtomicWriteJournal {
  private sequence = 0n;
  /** Set when a record could not be retired: replaying it later could overwrite newer data. */
  private broken: Error | undefined;
  private tail: Promise<void> = Promise.resolve();
  /** Records committed through the journal (stats and tests). */
  committed = 0;

  private constructor(
    private readonly file: fsp.FileHandle,
    readonly path: string,
    readonly capacity: number,
    private readonly logger?: Logger,
  ) {}

  /**
   * Open (creating) the journal of a logical unit and replay an interrupted record onto `backstore`.
   * Throws an Error naming the file when it cannot be opened, read or replayed.
   */
  static async open(opts: { path: string; backstore: Backstore; capacity?: number; logger?: Logger; lu: string }): Promise<AtomicWriteJournal> {
    const capacity = opts.capacity ?? DEFAULT_JOURNAL_CAPACITY;
    let file: fsp.FileHandle | undefined;
    try {
      await fsp.mkdir(path.dirname(opts.path), { recursive: true });
      file = await fsp.open(opts.path, fsc.O_RDWR | fsc.O_CREAT, 0o600);
      const journal = new AtomicWriteJournal(file, opts.path, capacity, opts.logger);
      await journal.replay(opts.backstore, opts.lu);
      return journal;
    } catch (e) {
      await file?.close().catch(() => undefined);
      throw new Error(`logical unit ${opts.lu}: atomic write journal ${opts.path}: ${(e as Error).message}`, { cause: e });
    }
  }

  private async replay(backstore: Backstore, lu: string): Promise<void> {
    const header = Buffer.alloc(JOURNAL_HEADER_BYTES);
    const { bytesRead } = await this.file.read(header, 0, JOURNAL_HEADER_BYTES, 0);
    if (bytesRead < JOURNAL_HEADER_BYTES || !header.subarray(0, MAGIC.length).equals(MAGIC)) return;
    this.sequence = header.readBigUInt64BE(8);
    const offset = header.readBigUInt64BE(16);
    const length = header.readUInt32BE(24);
    const fits = length > 0 && length <= this.capacity && offset + BigInt(length) <= BigInt(backstore.sizeBytes);
    const data = Buffer.alloc(fits ? length : 0);
    if (fits) await this.file.read(data, 0, length, JOURNAL_HEADER_BYTES);
    if (!fits || !digest(header, data).equals(header.subarray(HASH_AT, HASH_AT + 32))) {
      // Torn while being written: the in-place write never started, so there is nothing to redo.
      await this.invalidate();
      return;
    }
    await backstore.write(Number(offset), data, true);
    await this.invalidate();
    this.logger?.warn({ lu, journal: this.path, offset: Number(offset), length }, 'replayed an atomic write interrupted by a crash');
  }

  private async invalidate(): Promise<void> {
    await this.file.write(Buffer.alloc(JOURNAL_HEADER_BYTES), 0, JOURNAL_HEADER_BYTES, 0);
    await this.file.datasync();
  }

  private async retire(): Promise<void> {
    try {
      await this.invalidate();
    } catch (e) {
      this.broken = new Error(`atomic write journal ${this.path} cannot be cleared (${(e as Error).message}); atomic writes are refused until it is fixed and the LU re-added`);
      this.logger?.error({ journal: this.path, err: e }, this.broken.message);
      throw this.broken;
    }
  }

  /** Journal `data` for byte `offset`, run `apply` (the in-place FUA write), retire the record. Serialised. */
  commit(offset: number, data: Buffer, apply: () => Promise<void>): Promise<void> {
    if (data.length === 0 || data.length > this.capacity) {
      return Promise.reject(new RangeError(`atomic write of ${data.length} bytes does not fit journal ${this.path} (${this.capacity})`));
    }
    const run = async (): Promise<void> => {
      if (this.broken) throw this.broken;
      this.sequence++;
      const header = Buffer.alloc(JOURNAL_HEADER_BYTES);
      MAGIC.copy(header, 0);
      header.writeBigUInt64BE(this.sequence, 8);
      header.writeBigUInt64BE(BigInt(offset), 16);
      header.writeUInt32BE(data.length, 24);
      digest(header, data).copy(header, HASH_AT);
      await this.file.writev([header, data], 0);
      await this.file.datasync();
      try {
        await apply();
      } catch (err) {
        // The storage failed the write: the command reports the error, and the record must not be
        // replayed over whatever the initiator writes next.
        await this.retire();
        throw err;
      }
      await this.retire();
      this.committed++;
    };
    const next = this.tail.then(run, run);
    this.tail = next.catch(() => undefined);
    return next;
  }

  async close(): Promise<void> {
    await this.tail;
    await this.file.close();
  }
}
