/**
 * The `null` backstore: reads return zeroes (lent from one shared buffer), writes are discarded. A
 * performance baseline for fabrics and the smallest example of the Backstore contract.
 */
import type { Backstore, BackstoreCapabilities, LbaStatusExtent, LentBytes } from './backstore.js';
import { checkRange, readOnlyError, readTarget } from './errors.js';
import { ImmediateBackstore } from './immediate.js';
import { allMapped } from './extents.js';
import type { BackstoreBaseOptions } from './options.js';
import { lendZeroes } from './zeroes.js';

export interface NullBackstoreOptions extends BackstoreBaseOptions {
  size: number;
}

export class NullBackstore extends ImmediateBackstore implements Backstore {
  readonly name: string;
  readonly describe: string;
  readonly blockSize: 512 | 4096;
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  readonly cacheMode = 'writethrough' as const;
  readonly capabilities: BackstoreCapabilities;

  constructor(opts: NullBackstoreOptions) {
    super();
    this.name = opts.name;
    this.describe = `null backstore ${opts.name}`;
    this.blockSize = opts.blockSize ?? 512;
    this.sizeBytes = opts.size;
    this.readOnly = opts.readOnly === true;
    this.capabilities = {
      discard: true,
      discardZeroes: true,
      lbaStatus: false,
      thinProvisioned: false,
      removable: opts.removable === true,
    };
  }

  #check(op: string, offset: number, length: number): void {
    checkRange(op, this.describe, offset, length, this.blockSize, this.sizeBytes);
  }

  protected readNow(offset: number, length: number, into: Buffer | undefined): Buffer {
    this.#check('read', offset, length);
    return readTarget('read', this.describe, length, into).fill(0);
  }

  /** Lends shared zeroes: a READ then costs no fill of a buffer of its own. */
  lendRead(offset: number, length: number): LentBytes | undefined {
    this.#check('read', offset, length);
    return lendZeroes(length);
  }

  protected writeNow(offset: number, data: Buffer): void {
    this.#check('write', offset, data.length);
    if (this.readOnly) throw readOnlyError(this.describe, 'write');
  }

  async flush(): Promise<void> {}

  async discard(offset: number, length: number): Promise<void> {
    this.#check('discard', offset, length);
    if (this.readOnly) throw readOnlyError(this.describe, 'discard');
  }

  async writeZeroes(offset: number, length: number, _unmap: boolean): Promise<void> {
    this.#check('write zeroes', offset, length);
    if (this.readOnly) throw readOnlyError(this.describe, 'write zeroes');
  }

  async mapStatus(offset: number, length: number): Promise<LbaStatusExtent[]> {
    this.#check('map status', offset, length);
    return allMapped(offset, this.sizeBytes);
  }

  async refreshSize(): Promise<number> {
    return this.sizeBytes;
  }

  async close(): Promise<void> {}
}
