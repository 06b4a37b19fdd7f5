/**
 * Wraps a backstore so that a failure (file vanished, disk full, EIO) is logged once per kind with
 * what the administrator should do, instead of once per I/O. The error is passed on unchanged: the
 * core turns it into sense data for that LUN only.
 */
import type { Logger } from 'pino';
import { BackstoreError, type Backstore, type BackstoreCompletion, type BackstoreErrorKind } from '../backstores/backstore.js';

const ADVICE: Record<BackstoreErrorKind, string> = {
  io: 'the storage reports I/O errors (initiators get MEDIUM ERROR); check the disk and the kernel log (dmesg)',
  nospace: 'the file system is full (initiators get SPACE ALLOCATION FAILED WRITE PROTECT); free space or grow it, writes resume by themselves',
  gone: 'the backing file or device disappeared (initiators get NOT READY); restore it and re-add the LUN (vtgt lun delete/create)',
  readonly: 'the storage is read-only (initiators get WRITE PROTECTED); remount it read-write or mark the backstore readOnly',
  unsupported: 'the storage does not support an operation the initiator asked for; this is reported as ILLEGAL REQUEST',
};

export interface GuardedBackstore extends Backstore {
  /** Kinds of failure seen since the store was opened (for `vtgt show`). */
  readonly failures: ReadonlySet<BackstoreErrorKind>;
}

/** What the guard does when a transfer ends. */
interface GuardBook {
  note(e: unknown): void;
  ok(): void;
}

/** A guarded startRead/startWrite's completion: the guard's bookkeeping, then the caller's. */
class GuardedCompletion implements BackstoreCompletion {
  constructor(
    readonly done: BackstoreCompletion,
    readonly book: GuardBook,
  ) {}

  backstoreDone(error: unknown): void {
    if (error === undefined) this.book.ok();
    else this.book.note(error);
    this.done.backstoreDone(error);
  }
}

export function guardBackstore(inner: Backstore, logger: Logger): GuardedBackstore {
  const failures = new Set<BackstoreErrorKind>();
  const note = (e: unknown): void => {
    const kind: BackstoreErrorKind = e instanceof BackstoreError ? e.kind : 'io';
    if (e instanceof BackstoreError) e.reported = true;
    if (!failures.has(kind)) {
      failures.add(kind);
      logger.error(
        { backstore: inner.name, location: inner.describe, kind, errno: (e as { errno?: string; code?: string }).errno ?? (e as { code?: string }).code, err: e },
        `backstore ${inner.name} (${inner.describe}) failed: ${ADVICE[kind]}`,
      );
    }
  };
  const seen = (e: unknown): never => {
    note(e);
    throw e;
  };
  // After a failure, the first success clears the state (disk space freed, device back) and says so,
  // so the next failure is logged again.
  const ok = <T>(v: T): T => {
    if (failures.size > 0) {
      logger.info({ backstore: inner.name, location: inner.describe, after: [...failures] }, `backstore ${inner.name} works again`);
      failures.clear();
    }
    return v;
  };
  const book: GuardBook = { note, ok: () => ok(undefined) };
  // Both or neither, as the inner store has them: the core falls back to read/write without them.
  const { startRead, startWrite } = inner;
  const started = (now: boolean): boolean => (now ? ok(now) : now);
  const callbacks: Pick<Backstore, 'startRead' | 'startWrite'> =
    startRead && startWrite
      ? {
          startRead: (offset, length, into, done) => {
            try {
              return started(startRead.call(inner, offset, length, into, new GuardedCompletion(done, book)));
            } catch (e) {
              return seen(e);
            }
          },
          startWrite: (offset, data, fua, done) => {
            try {
              return started(startWrite.call(inner, offset, data, fua, new GuardedCompletion(done, book)));
            } catch (e) {
              return seen(e);
            }
          },
        }
      : {};
  // Each as the inner store has it: the core reads and writes as usual without them.
  const lend = <R>(verb: ((offset: number, length: number) => R) | undefined) =>
    verb &&
    ((offset: number, length: number): R => {
      try {
        return verb.call(inner, offset, length);
      } catch (e) {
        return seen(e);
      }
    });
  const lendRead = lend(inner.lendRead);
  const lendWrite = lend(inner.lendWrite);
  const lending: Pick<Backstore, 'lendRead' | 'lendWrite'> = { ...(lendRead && { lendRead }), ...(lendWrite && { lendWrite }) };
  const g: GuardedBackstore = {
    ...callbacks,
    ...lending,
    get name() {
      return inner.name;
    },
    get describe() {
      return inner.describe;
    },
    get blockSize() {
      return inner.blockSize;
    },
    get sizeBytes() {
      return inner.sizeBytes;
    },
    get readOnly() {
      return inner.readOnly;
    },
    get cacheMode() {
      return inner.cacheMode;
    },
    get capabilities() {
      return inner.capabilities;
    },
    get physicalBlockSize() {
      return inner.physicalBlockSize;
    },
    get alignedBuffers() {
      return inner.alignedBuffers;
    },
    failures,
    read: (offset, length, into) => inner.read(offset, length, into).then(ok, seen),
    write: (offset, data, fua) => inner.write(offset, data, fua).then(ok, seen),
    flush: () => inner.flush().then(ok, seen),
    discard: (offset, length) => inner.discard(offset, length).catch(seen),
    writeZeroes: (offset, length, unmap) => inner.writeZeroes(offset, length, unmap).catch(seen),
    mapStatus: (offset, length) => inner.mapStatus(offset, length).catch(seen),
    refreshSize: () => inner.refreshSize().catch(seen),
    close: () => inner.close(),
  };
  return g;
}
