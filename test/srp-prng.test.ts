import { describe, expect, it } from 'vitest';
import { Prng, seededRandom, xorshift32 } from '../src/sim/prng.js';

describe('shared simulator PRNG (xorshift32 13/17/5)', () => {
  it('follows the published xorshift32 sequence', () => {
    // Marsaglia's example state 2463534242 -> 723471715, 2497366906, 2064144800.
    let x = 2463534242;
    const got = [0, 1, 2].map(() => (x = xorshift32(x)));
    expect(got).toEqual([723471715, 2497366906, 2064144800]);
  });

  it('is deterministic per seed, stays in [0,1), and survives a zero seed', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((v) => v >= 0 && v < 1)).toBe(true);
    expect(new Set(xs).size).toBeGreaterThan(990);
    const z = new Prng(0);
    expect([z.next(), z.next()].some((v) => v !== 0)).toBe(true);
  });

  it('int(n) covers [0, n) and nothing else', () => {
    const p = new Prng(7);
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) seen.add(p.int(6));
    expect([...seen].sort()).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
