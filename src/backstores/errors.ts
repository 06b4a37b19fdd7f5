/**
 * errno → BackstoreError mapping, and the argument checks every backstore repeats. The core range-checks
 * before calling a backstore; a failed check here is a programming fault (RangeError), not a SCSI error.
 */
import { Buffer } from 'node:buffer';
import { BackstoreError, type BackstoreErrorKind } from './backstore.js';

const KIND_BY_ERRNO: Record<string, BackstoreErrorKind> = {
  ENOSPC: 'nospace',
  EDQUOT: 'nospace',
  EFBIG: 'nospace',
  ENOENT: 'gone',
  ENODEV: 'gone',
  ENXIO: 'gone',
  ESTALE: 'gone',
  ENOMEDIUM: 'gone',
  ENOTCONN: 'gone',
  EBADF: 'gone',
  EROFS: 'readonly',
  EACCES: 'readonly',
  EPERM: 'readonly',
  EOPNOTSUPP: 'unsupported',
  ENOTSUP: 'unsupported',
  ENOTTY: 'unsupported',
  ENOSYS: 'unsupported',
};

const ADVICE: Record<BackstoreErrorKind, string> = {
  io: 'check the kernel log (dmesg) and the health of the underlying disk',
  nospace: 'free space on the file system holding it or grow it',
  gone: 'restore the file or device, then re-add the LUN',
  readonly: 'check its permissions and whether its file system is mounted read-only',
  unsupported: 'the underlying file system or device does not support this operation',
};

export function errnoKind(code: string | undefined): BackstoreErrorKind {
  return (code && KIND_BY_ERRNO[code]) || 'io';
}

/**
 * Wrap a failure of `what` ("write at byte 4096 length 512") on `describe` ("file backstore disk0
 * (/var/lib/vtgt/disk0.img)") into a BackstoreError with errno, kind and advice.
 */
export function toBackstoreError(e: unknown, describe: string, what: string): BackstoreError {
  if (e instanceof BackstoreError) return e;
  const err = e as { code?: unknown; message?: unknown };
  const code = typeof err?.code === 'string' ? err.code : undefined;
  const kind = errnoKind(code);
  const detail = typeof err?.message === 'string' ? err.message : String(e);
  return new BackstoreError(kind, `${what} on ${describe} failed: ${detail}; ${ADVICE[kind]}`, code);
}

export function readOnlyError(describe: string, what: string): BackstoreError {
  return new BackstoreError('readonly', `${what} refused: ${describe} is read-only`, 'EROFS');
}

/** Offsets and lengths: non-negative safe integers, block multiples, inside the store. */
export function checkRange(
  op: string,
  describe: string,
  offset: number,
  length: number,
  blockSize: number,
  sizeBytes: number,
): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new RangeError(`${op} on ${describe}: offset ${offset} and length ${length} must be non-negative integers`);
  }
  if (offset % blockSize !== 0 || length % blockSize !== 0) {
    throw new RangeError(`${op} on ${describe}: offset ${offset} and length ${length} must be multiples of ${blockSize}`);
  }
  if (offset > sizeBytes || length > sizeBytes - offset) {
    throw new RangeError(`${op} on ${describe}: range ${offset}+${length} is past the end (${sizeBytes} bytes)`);
  }
}

/** The Buffer a read lands in: `into` (checked to be large enough) or a new one. */
export function readTarget(op: string, describe: string, length: number, into: Buffer | undefined): Buffer {
  if (into === undefined) return Buffer.allocUnsafe(length);
  if (!Buffer.isBuffer(into)) throw new TypeError(`${op} on ${describe}: into must be a Buffer`);
  if (into.length < length) {
    throw new RangeError(`${op} on ${describe}: buffer of ${into.length} bytes is smaller than the ${length} to read`);
  }
  return into.length === length ? into : into.subarray(0, length);
}
