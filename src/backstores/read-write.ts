/**
 * The two ways the fd backstores move data: the native addon's IoFile (io_uring, its thread pool, or
 * the synchronous fast path) or Node's own fs calls (libuv thread pool). bench/IO-ENGINE.md measures
 * both; `engine: 'fs'` on a file backstore picks the second.
 */
import { fdatasync as fsFdatasync, read as fsRead, write as fsWrite } from 'node:fs';
import type { IoFile, TransferListener } from '../native/io.js';

export interface ReadWrite {
  /** Bytes read; fewer than `len` only at end of file. */
  read(buf: Buffer, off: number, len: number, pos: number): Promise<number>;
  /** All of `len` bytes or an error; `dsync`: on stable storage when it resolves. The value means nothing. */
  write(buf: Buffer, off: number, len: number, pos: number, dsync: boolean): Promise<unknown>;
  datasync(): Promise<void>;
  /**
   * Optional, `read` without a promise: the bytes read when it finished at once, else -1 and the
   * listener is told later. Throws when nothing was started.
   */
  readTo?(buf: Buffer, off: number, len: number, pos: number, listener: TransferListener): number;
  /** Optional, `write` without a promise, as `readTo` is for `read`. */
  writeFrom?(buf: Buffer, off: number, len: number, pos: number, dsync: boolean, listener: TransferListener): number;
}

export function nativeReadWrite(f: IoFile): ReadWrite {
  return {
    read: (buf, off, len, pos) => f.read(buf, off, len, pos),
    write: (buf, off, len, pos, dsync) => f.write(buf, off, len, pos, dsync),
    datasync: () => f.datasync(),
    readTo: (buf, off, len, pos, listener) => f.readTo(buf, off, len, pos, listener),
    writeFrom: (buf, off, len, pos, dsync, listener) => f.writeFrom(buf, off, len, pos, dsync, listener),
  };
}

export function fsReadWrite(f: IoFile): ReadWrite {
  const datasync = (): Promise<void> =>
    new Promise((resolve, reject) => fsFdatasync(f.fd, (err) => (err ? reject(err) : resolve())));
  return {
    read: (buf, off, len, pos) =>
      new Promise((resolve, reject) => {
        let done = 0;
        const step = (): void =>
          fsRead(f.fd, buf, off + done, len - done, pos + done, (err, n) => {
            if (err) return reject(err);
            done += n;
            if (n === 0 || done === len) resolve(done);
            else step();
          });
        step();
      }),
    write: (buf, off, len, pos, dsync) =>
      new Promise<void>((resolve, reject) => {
        let done = 0;
        const step = (): void =>
          fsWrite(f.fd, buf, off + done, len - done, pos + done, (err, n) => {
            if (err) return reject(err);
            done += n;
            if (done === len) resolve();
            else if (n === 0) reject(Object.assign(new Error('pwrite wrote 0 bytes'), { code: 'EIO' }));
            else step();
          });
        step();
      }).then(() => (dsync ? datasync() : undefined)),
    datasync,
  };
}
