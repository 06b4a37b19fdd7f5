/**
 * Zeroes to lend for READs of ranges that hold nothing (a null store, a memory store's unwritten
 * chunks): one shared buffer, never written — nobody may write into lent bytes — so a READ of them
 * costs no fill and no buffer of its own.
 */
import { Buffer } from 'node:buffer';
import type { LentBytes } from './backstore.js';

/** Longest run of zeroes lent; longer reads fill a buffer of their own. */
const MAX_LENT_ZEROES = 1 << 20;
let zeroes = Buffer.alloc(0);

function noop(): void {}

/** `length` bytes of zeroes to lend, or undefined when longer than the shared buffer may grow. */
export function lendZeroes(length: number): LentBytes | undefined {
  if (length <= 0 || length > MAX_LENT_ZEROES) return undefined;
  // A smaller buffer that READs still hold stays as it is: it is only ever replaced, never written.
  if (zeroes.length < length) zeroes = Buffer.alloc(Math.max(length, 64 * 1024));
  return { data: zeroes.subarray(0, length), release: noop };
}
