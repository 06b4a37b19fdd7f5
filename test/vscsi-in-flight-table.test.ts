import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { InFlightTable } from '../src/vscsi/in-flight-table.js';

/** Random sets, gets and deletes against a Map as the model, over a small key space so deletes hit. */
function checkAgainstMap<K extends number | bigint>(keyOf: (n: number) => K, rounds: number, keySpace: number): void {
  const t = new InFlightTable<K, { n: number }>(8);
  const model = new Map<K, { n: number }>();
  let seed = 12345;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0), seed % n);
  for (let i = 0; i < rounds; i++) {
    const k = keyOf(rnd(keySpace));
    const op = rnd(10);
    if (op < 4) {
      const v = { n: i };
      t.set(k, v);
      model.set(k, v);
    } else if (op < 8) {
      expect(t.delete(k)).toBe(model.delete(k));
    } else {
      expect(t.get(k)).toBe(model.get(k));
      expect(t.has(k)).toBe(model.has(k));
    }
    expect(t.size).toBe(model.size);
  }
  for (const [k, v] of model) expect(t.get(k)).toBe(v);
  expect(new Set(t.values())).toEqual(new Set(model.values()));
}

describe('InFlightTable', () => {
  it('agrees with a Map under random sets and deletes of number keys', () => {
    checkAgainstMap((n) => n, 20_000, 300);
  });

  it('agrees with a Map with sequential keys, which share their low bits', () => {
    checkAgainstMap((n) => n * 4096, 20_000, 500);
  });

  it('agrees with a Map with bigint keys that differ only above bit 32 or beyond 2^53', () => {
    checkAgainstMap((n) => (BigInt(n) << 40n) | 7n, 10_000, 200);
    checkAgainstMap((n) => (1n << 63n) + BigInt(n), 10_000, 200);
  });

  it('spreads bigint keys above 2^53 that differ only in their low bits (Linux ibmvscsi tags are kernel addresses)', () => {
    const t = new InFlightTable<bigint, number>(256);
    const slotOf = (k: bigint) => (t as unknown as { slotOf(k: bigint): number }).slotOf(k);
    const families: Array<(n: number) => bigint> = [
      (n) => 0xa500000000000000n | BigInt(n),
      (n) => 0xffff888012340000n + BigInt(n) * 64n,
      (n) => -1n - BigInt(n),
    ];
    for (const key of families) {
      // 100 keys in 256 slots: a working hash puts them in ~83 different slots; a degenerate one in 1.
      expect(new Set(Array.from({ length: 100 }, (_, n) => slotOf(key(n)))).size).toBeGreaterThan(60);
    }
  });

  it('grows past its first capacity and keeps every entry', () => {
    const t = new InFlightTable<number, number>(8);
    for (let i = 0; i < 5000; i++) t.set(i * 7919, i);
    expect(t.size).toBe(5000);
    for (let i = 0; i < 5000; i++) expect(t.get(i * 7919)).toBe(i);
    for (let i = 0; i < 5000; i += 2) expect(t.delete(i * 7919)).toBe(true);
    for (let i = 0; i < 5000; i++) expect(t.get(i * 7919)).toBe(i % 2 ? i : undefined);
    expect(t.values().length).toBe(2500);
  });

  it('replaces the value of a key it holds, and forgets everything on clear', () => {
    const t = new InFlightTable<bigint, string>();
    t.set(5n, 'a').set(5n, 'b');
    expect(t.size).toBe(1);
    expect(t.get(5n)).toBe('b');
    expect(t.delete(6n)).toBe(false);
    t.clear();
    expect(t.size).toBe(0);
    expect(t.has(5n)).toBe(false);
    expect(t.values()).toEqual([]);
  });

  it('holds nothing of an entry once it is deleted, even after entries moved back over its slot', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const t = new InFlightTable<number, object>(8);
    // Keys 0, 8, 16, 24 share a home slot in some capacity: deletes shift later entries back.
    const refs: Array<WeakRef<object>> = [];
    const fill = () => {
      for (let i = 0; i < 32; i++) {
        const v = { payload: new Array(64).fill(i) };
        refs.push(new WeakRef(v));
        t.set(i * 8, v);
      }
    };
    fill();
    for (let i = 0; i < 32; i++) t.delete(i * 8);
    await new Promise((r) => setImmediate(r));
    gc();
    expect(refs.filter((r) => r.deref() !== undefined)).toHaveLength(0);
    expect(t.size).toBe(0);
  });
});
