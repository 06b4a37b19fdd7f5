/**
 * Reusable data-in buffers for READ. A fresh Buffer per command is an off-heap ArrayBuffer the
 * garbage collector must track and sweep; at 128 KiB and more it also counts as external memory and
 * makes V8 run major collections back to back (BENCHMARKS.md). The core lends a buffer for the READ's
 * data and the fabric gives it back with `ScsiCompletion.releaseDataIn` once its transport has
 * written the bytes. A buffer never given back is simply garbage-collected, so a fabric that ignores
 * the callback stays correct.
 */

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

  constructor() {
    for (let s = MIN_SHIFT; s <= MAX_SHIFT; s++) this.free.push([]);
  }

  /** A buffer of `length` bytes (contents undefined), or a plain unpooled one beyond the largest class. */
  acquire(length: number): LentBuffer {
    const shift = length <= 1 << MIN_SHIFT ? MIN_SHIFT : 32 - Math.clz32(length - 1);
    if (shift > MAX_SHIFT || length <= 0) return { data: Buffer.allocUnsafe(Math.max(0, length)), release: noop };
    const list = this.free[shift - MIN_SHIFT]!;
    const whole = list.pop() ?? Buffer.allocUnsafeSlow(1 << shift);
    this.lent++;
    let released = false;
    return {
      data: whole.length === length ? whole : whole.subarray(0, length),
      release: () => {
        if (released) return;
        released = true;
        this.lent--;
        if ((list.length + 1) << shift <= MAX_IDLE_BYTES_PER_CLASS) list.push(whole);
      },
    };
  }

  /** Idle bytes held (for tests and metrics). */
  get idleBytes(): number {
    let n = 0;
    for (let i = 0; i < this.free.length; i++) n += this.free[i]!.length << (i + MIN_SHIFT);
    return n;
  }
}

function noop(): void {}

/** One pool per process: every LU and fabric shares it. */
export const dataInPool = new BufferPool();
