import { describe, expect, it } from 'vitest';
import { RangeLock } from '../src/vscsi/range-lock.js';

const turn = () => new Promise((r) => setImmediate(r));

describe('LBA range lock', () => {
  it('holds disjoint ranges together and makes an overlapping one wait for the release', async () => {
    const l = new RangeLock();
    const a = l.tryAcquire(0n, 8n);
    const b = l.tryAcquire(8n, 8n); // adjacent, same 128-block chunk
    expect(a).toBeTypeOf('function');
    expect(b).toBeTypeOf('function');
    expect(l.tryAcquire(7n, 2n)).toBeUndefined(); // straddles both
    let got = false;
    const waiting = l.acquire(4n, 1n).then((r) => ((got = true), r));
    await turn();
    expect(got).toBe(false);
    b!();
    await turn();
    expect(got).toBe(false); // still inside a
    a!();
    const c = await waiting;
    expect(got).toBe(true);
    expect(l.heldCount).toBe(1);
    c();
    c(); // a second release does nothing
    expect(l.heldCount).toBe(0);
  });

  it('finds overlaps across chunk boundaries, with large ranges and with a zero-length range', async () => {
    const l = new RangeLock();
    const span = l.tryAcquire(120n, 20n)!; // chunks 0 and 1
    expect(l.tryAcquire(139n, 1n)).toBeUndefined();
    expect(l.tryAcquire(140n, 1n)).toBeDefined();
    const big = l.tryAcquire(1_000_000n, 1_000_000n)!; // far more than 32 chunks: the large list
    expect(l.tryAcquire(1_999_999n, 1n)).toBeUndefined();
    expect(l.tryAcquire(999_999n, 1n)).toBeDefined();
    expect(l.tryAcquire(0n, 10_000_000n)).toBeUndefined(); // large against indexed and large
    expect(l.tryAcquire(130n, 0n)).toBeUndefined(); // count 0 still locks its block
    span();
    big();
    expect(l.tryAcquire(0n, 10_000_000n)).toBeUndefined(); // the two single blocks taken above are held
  });

  it('keeps FIFO order among overlapping waiters: a newcomer queues behind them', async () => {
    const l = new RangeLock();
    const first = l.tryAcquire(0n, 64n)!;
    const order: string[] = [];
    const w1 = l.acquire(0n, 8n).then((r) => (order.push('w1'), r));
    await turn();
    // Free itself, but overlapping the waiting w1: may not jump the queue.
    expect(l.tryAcquire(4n, 8n)).toBeUndefined();
    const w2 = l.acquire(4n, 8n).then((r) => (order.push('w2'), r));
    first();
    const r1 = await w1;
    await turn();
    expect(order).toEqual(['w1']);
    r1();
    (await w2)();
    expect(order).toEqual(['w1', 'w2']);
    expect(l.heldCount).toBe(0);
  });

  it('stays exact with a thousand ranges held at random LBAs', () => {
    randomModelCheck({ seed: 7, lbas: 200_000, sharedShare: 0 });
  });

  it('lets shared holders overlap each other but not an exclusive holder', async () => {
    const l = new RangeLock();
    const w1 = l.tryAcquireShared(0n, 8n)!;
    const w2 = l.tryAcquireShared(4n, 8n); // plain WRITEs of the same blocks run together
    expect(w2).toBeTypeOf('function');
    expect(l.tryAcquire(6n, 1n)).toBeUndefined(); // a CAW of a block they write must wait
    expect(l.tryAcquire(12n, 4n)).toBeTypeOf('function'); // one beside them need not
    expect(l.tryAcquireShared(14n, 1n)).toBeUndefined(); // and excludes a plain WRITE in its turn
    let got = false;
    const caw = l.acquire(6n, 1n).then((r) => ((got = true), r));
    await turn();
    w1();
    await turn();
    expect(got).toBe(false); // w2 still covers block 6
    w2!();
    (await caw)();
    expect(got).toBe(true);
    expect(l.heldCount).toBe(1); // the exclusive 12..15
  });

  it('queues a shared request behind an overlapping exclusive waiter, not behind a disjoint one', async () => {
    const l = new RangeLock();
    const write = l.tryAcquireShared(0n, 8n)!;
    const order: string[] = [];
    const caw = l.acquire(0n, 8n).then((r) => (order.push('caw'), r));
    await turn();
    // Free of holders that exclude it, but the waiting CAW came first: a stream of plain WRITEs
    // must not starve it.
    expect(l.tryAcquireShared(2n, 1n)).toBeUndefined();
    const later = l.acquireShared(2n, 1n).then((r) => (order.push('write'), r));
    const beside = l.tryAcquireShared(100n, 1n);
    expect(beside).toBeTypeOf('function');
    write();
    const releaseCaw = await caw;
    await turn();
    expect(order).toEqual(['caw']);
    releaseCaw();
    (await later)();
    beside!();
    expect(order).toEqual(['caw', 'write']);
    expect(l.heldCount).toBe(0);
  });

  it('stays exact with shared and exclusive ranges mixed at random', () => {
    const l = randomModelCheck({ seed: 11, lbas: 50_000, sharedShare: 0.75 });
    expect(l.tryAcquire(0n, 10_000_000n)).toBeTypeOf('function');
  });
});

/**
 * 5,000 random try-acquires (a few of them huge), each checked against a plain list of what is held;
 * over a thousand held, a random one is released. Ends with everything released; returns the lock.
 */
function randomModelCheck(o: { seed: number; lbas: number; sharedShare: number }): RangeLock {
  const l = new RangeLock();
  const held: Array<{ s: bigint; e: bigint; shared: boolean; r: () => void }> = [];
  let seed = o.seed;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0), seed % n);
  for (let i = 0; i < 5000; i++) {
    const shared = rnd(1000) < o.sharedShare * 1000;
    const s = BigInt(rnd(o.lbas));
    const n = BigInt(1 + rnd(i % 50 === 0 ? 20_000 : 16));
    const clash = held.some((h) => h.s < s + n && s < h.e && !(shared && h.shared));
    const r = shared ? l.tryAcquireShared(s, n) : l.tryAcquire(s, n);
    expect(r === undefined).toBe(clash);
    if (r) held.push({ s, e: s + n, shared, r });
    if (held.length > 1000) held.splice(rnd(held.length), 1)[0]!.r();
  }
  expect(l.heldCount).toBe(held.length);
  for (const h of held.splice(0)) h.r();
  expect(l.heldCount).toBe(0);
  return l;
}
