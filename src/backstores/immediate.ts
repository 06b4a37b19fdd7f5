/**
 * What the stores whose reads and writes finish before returning (memory, null) have in common: the
 * promise methods and the promise-free startRead / startWrite all come from one synchronous pair.
 */
import type { Buffer } from 'node:buffer';
import type { BackstoreCompletion } from './backstore.js';

export abstract class ImmediateBackstore {
  /** The read, done: into `into` (or a new Buffer). Throws what `read` would reject with. */
  protected abstract readNow(offset: number, length: number, into: Buffer | undefined): Buffer;
  /** The write, done. Throws what `write` would reject with. */
  protected abstract writeNow(offset: number, data: Buffer): void;

  async read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.readNow(offset, length, into);
  }

  async write(offset: number, data: Buffer, _fua: boolean): Promise<void> {
    this.writeNow(offset, data);
  }

  /** Always finishes at once: `done` is never told. */
  startRead(offset: number, length: number, into: Buffer, _done: BackstoreCompletion): boolean {
    this.readNow(offset, length, into);
    return true;
  }

  startWrite(offset: number, data: Buffer, _fua: boolean, _done: BackstoreCompletion): boolean {
    this.writeNow(offset, data);
    return true;
  }
}
