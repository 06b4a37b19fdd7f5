/**
 * The one small deterministic PRNG of the simulators and fuzz loops (IBM VIO and Xen guests, hostile
 * partitions, codec fuzz tests): xorshift32 with shifts 13/17/5 (Marsaglia, "Xorshift RNGs", 2003).
 * Seeded so that a failing run can be replayed; not for anything that needs unpredictability.
 */

/** One xorshift32 step on an unsigned 32-bit state; never returns 0 for a non-zero state. */
export function xorshift32(state: number): number {
  let x = state >>> 0;
  x ^= x << 13;
  x >>>= 0;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}

/** 0 is xorshift's fixed point: a zero seed would produce zeros forever, so it is replaced. */
const ZERO_SEED_REPLACEMENT = 0x9e3779b9;

export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || ZERO_SEED_REPLACEMENT;
  }

  /** A float in [0, 1). An arrow property so it can be handed out as a plain `() => number`. */
  readonly next = (): number => {
    this.state = xorshift32(this.state);
    return this.state / 0x100000000;
  };

  /** An integer in [0, n) for n >= 1. */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

/** A seeded `() => number` in [0, 1), a drop-in for Math.random in simulators. */
export function seededRandom(seed: number): () => number {
  return new Prng(seed).next;
}
