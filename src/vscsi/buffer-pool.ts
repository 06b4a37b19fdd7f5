/**
 * Reusable data-in buffers for READ. A fresh Buffer per command is an off-heap ArrayBuffer the
 * garbage collector must track and sweep; at 128 KiB and more it also counts as external memory and
 * makes V8 run major collections back to back (BENCHMARKS.md). The core lends a buffer for the READ's
 * data and the fabric gives it back with `ScsiCompletion.releaseDataIn` once its transport has
 * written the bytes. A buffer never given back is simply garbage-collected, so a fabric that ignores
 * the callback stays correct.
 */

import { Buffer } from 'node:buffer';
import { ScsiStatus } from './fabric.js';

/** Smallest and largest pooled sizes (power-of-two classes); larger transfers are not pooled. */
const MIN_SHIFT = 12; // 4 KiB
const MAX_SHIFT = 20; // 1 MiB
/** Bytes kept idle per size class at most: bounded memory whatever the load was. */
const MAX_IDLE_BYTES_PER_CLASS = 8 << 20;

export interface LentBuffer {
  /** Exactly the requested length (a view of the pooled buffer). */
  data: Buffer;
  /** Give the buffer back; later calls do nothing. */
  release: () => void;
}

export class BufferPool {
  private readonly free: Buffer[][] = [];
  /** Buffers handed out and not yet released (leak checks, tests). */
  lent = 0;
  /** The alignment every new buffer has (1 = whatever the allocator gives). */
  alignment = 1;
  private allocate: (size: number) => Buffer = (size) => Buffer.allocUnsafeSlow(size);
  /** Bumped by alignTo: buffers made before it are not taken back. */
  private generation = 0;

  constructor() {
    for (let s = MIN_SHIFT; s <= MAX_SHIFT; s++) this.free.push([]);
  }

  /** A buffer of `length` bytes (contents undefined), or a plain unpooled one beyond the largest class. */
  acquire(length: number): LentBuffer {
    const shift = length <= 1 << MIN_SHIFT ? MIN_SHIFT : 32 - Math.clz32(length - 1);
    if (shift > MAX_SHIFT || length <= 0) return { data: Buffer.allocUnsafe(Math.max(0, length)), release: noop };
    const list = this.free[shift - MIN_SHIFT]!;
    const whole = list.pop() ?? this.allocate(1 << shift);
    const generation = this.generation;
    this.lent++;
    let released = false;
    return {
      data: whole.length === length ? whole : whole.subarray(0, length),
      release: () => {
        if (released) return;
        released = true;
        this.lent--;
        if (generation === this.generation && (list.length + 1) << shift <= MAX_IDLE_BYTES_PER_CLASS) list.push(whole);
      },
    };
  }

  /**
   * From now on make buffers whose memory starts on a multiple of `alignment`, with `allocate`: an
   * O_DIRECT backstore takes them without a bounce copy (at 128 KiB that copy, and the aligned buffer
   * allocated for it, cost more CPU than the rest of the command; BENCHMARKS.md section 18). Buffers
   * made before are dropped as they come back. A smaller or equal alignment changes nothing.
   */
  alignTo(alignment: number, allocate: (size: number) => Buffer): void {
    if (alignment <= this.alignment) return;
    this.alignment = alignment;
    this.allocate = allocate;
    this.generation++;
    for (const list of this.free) list.length = 0;
  }

  /** Idle bytes held (for tests and metrics). */
  get idleBytes(): number {
    let n = 0;
    for (let i = 0; i < this.free.length; i++) n += this.free[i]!.length << (i + MIN_SHIFT);
    return n;
  }
}

function noop(): void {}

/**
 * Give back the pooled data-out buffers a fabric lent for one command, once the core completed it
 * (its write from them is over). After an abort they are left to the garbage collector instead: an
 * aborted command may still have been writing from them.
 */
export function releaseDataOut(releases: ReadonlyArray<() => void> | undefined, status: number): void {
  if (!releases || status === ScsiStatus.TASK_ABORTED) return;
  for (const release of releases) release();
}

/** One pool per process: every LU and fabric shares it. */
export const dataInPool = new BufferPool();
