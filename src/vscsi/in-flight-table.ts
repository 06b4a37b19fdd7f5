/**
 * A table of the commands in flight, keyed by tag (a number or a bigint): the Map subset the fabrics
 * and the core need, without what a long-lived `Map` does to the garbage collector.
 *
 * Why not `Map`: V8 stores a Map in a hash table that it replaces as entries come and go — on growth,
 * on shrinking, and when deleted entries fill it. Once a long-lived Map's table is in the old
 * generation its replacements are allocated there too, and each replaced table keeps the entries it
 * held. Those entries are commands still in flight at that moment, so every young-generation
 * collection finds them referenced from the old generation and promotes them, whole object graphs
 * included, until the next full collection. With many sessions nearly every command went that way
 * (BENCHMARKS.md, section 21). This table keeps its slots in two arrays that only ever grow and clears
 * a slot when its entry leaves, so a finished command is unreachable at once.
 *
 * Open addressing with linear probing at a load of at most 1/2; deletion shifts the following entries
 * back instead of leaving tombstones, so lookups stay short however long the table lives.
 */
export class InFlightTable<K extends number | bigint, V> {
  private keys: Array<K | undefined>;
  private vals: Array<V | undefined>;
  private mask: number;
  /** 32 - log2(capacity): a slot is the top bits of the key's hash. */
  private shift: number;
  private count = 0;

  constructor(initialCapacity = 64) {
    let cap = 8;
    while (cap < initialCapacity) cap *= 2;
    this.mask = cap - 1;
    this.shift = 32 - Math.log2(cap);
    this.keys = filled(cap);
    this.vals = filled(cap);
  }

  get size(): number {
    return this.count;
  }

  get(key: K): V | undefined {
    const i = this.find(key);
    return i < 0 ? undefined : this.vals[i];
  }

  has(key: K): boolean {
    return this.find(key) >= 0;
  }

  set(key: K, value: V): this {
    let i = this.slotOf(key);
    for (;;) {
      const k = this.keys[i];
      if (k === undefined) break;
      if (k === key) {
        this.vals[i] = value;
        return this;
      }
      i = (i + 1) & this.mask;
    }
    if ((this.count + 1) * 2 > this.mask + 1) {
      this.grow();
      return this.set(key, value);
    }
    this.keys[i] = key;
    this.vals[i] = value;
    this.count++;
    return this;
  }

  delete(key: K): boolean {
    let hole = this.find(key);
    if (hole < 0) return false;
    const { keys, vals, mask } = this;
    keys[hole] = undefined;
    vals[hole] = undefined;
    this.count--;
    // Move back every entry of the run after the hole that may live there (its home slot is not
    // cyclically between the hole and where it sits), so no lookup stops early at the hole.
    for (let j = (hole + 1) & mask; ; j = (j + 1) & mask) {
      const k = keys[j];
      if (k === undefined) return true;
      const home = this.slotOf(k);
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      keys[hole] = k;
      vals[hole] = vals[j];
      keys[j] = undefined;
      vals[j] = undefined;
      hole = j;
    }
  }

  /** The values, as a new array (safe to change the table while going through it). */
  values(): V[] {
    const out: V[] = [];
    for (let i = 0; i <= this.mask; i++) if (this.keys[i] !== undefined) out.push(this.vals[i] as V);
    return out;
  }

  clear(): void {
    for (let i = 0; i <= this.mask; i++) {
      this.keys[i] = undefined;
      this.vals[i] = undefined;
    }
    this.count = 0;
  }

  private find(key: K): number {
    for (let i = this.slotOf(key); ; i = (i + 1) & this.mask) {
      const k = this.keys[i];
      if (k === key) return i;
      if (k === undefined) return -1;
    }
  }

  private slotOf(key: K): number {
    return hashOf(key) >>> this.shift;
  }

  private grow(): void {
    const oldKeys = this.keys;
    const oldVals = this.vals;
    const cap = (this.mask + 1) * 2;
    this.mask = cap - 1;
    this.shift--;
    this.keys = filled(cap);
    this.vals = filled(cap);
    this.count = 0;
    for (let i = 0; i < oldKeys.length; i++) {
      const k = oldKeys[i];
      if (k !== undefined) this.set(k, oldVals[i] as V);
    }
    // The old arrays are garbage now; empty them so that, should they already be in the old
    // generation, they hold nothing young alive until a full collection.
    oldKeys.fill(undefined);
    oldVals.fill(undefined);
  }
}

/** A packed array of `n` undefined slots (not a holey one: element access stays on the fast path). */
function filled<T>(n: number): Array<T | undefined> {
  const a: Array<T | undefined> = [];
  for (let i = 0; i < n; i++) a.push(undefined);
  return a;
}

const TWO_32 = 4294967296;

/**
 * Fibonacci hashing of the key's low and high 32 bits: the caller takes the top bits, which mix all
 * of them (tags are often sequential, and a bigint tag may differ only in its high half).
 */
function hashOf(key: number | bigint): number {
  const n = typeof key === 'number' ? key : Number(key);
  let lo: number;
  let hi: number;
  if (typeof key === 'number' || (n >= 0 && n <= Number.MAX_SAFE_INTEGER)) {
    lo = n % TWO_32 | 0;
    hi = (n / TWO_32) | 0;
  } else {
    // Above 2^53 a double drops the low bits: keys that differ only there (Linux ibmvscsi's tags
    // are kernel addresses) would all hash alike and every lookup would walk the whole table.
    lo = Number(BigInt.asUintN(32, key)) | 0;
    hi = Number(BigInt.asUintN(32, key >> 32n)) | 0;
  }
  return Math.imul(lo ^ Math.imul(hi, 0x85ebca6b), 0x9e3779b1);
}
