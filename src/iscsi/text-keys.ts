/**
 * Text key=value pairs as carried in Login and Text data segments (RFC 7143 §6.1): UTF-8, each pair
 * terminated by a NUL. Decoding never throws; malformed input comes back as a typed error.
 */
import { Buffer } from 'node:buffer';

export type KeyValues = Array<[string, string]>;

/** RFC 7143 §6.1: key names are at most 63 bytes; values at most 255 bytes except where noted (8192 for CHAP). */
export const MAX_KEY_NAME_LENGTH = 63;
export const MAX_VALUE_LENGTH = 8192;

export type TextDecodeResult = { ok: true; pairs: KeyValues } | { ok: false; error: string };

export function decodeTextKeys(data: Buffer): TextDecodeResult {
  const pairs: KeyValues = [];
  let start = 0;
  while (start < data.length) {
    let end = data.indexOf(0, start);
    if (end < 0) end = data.length; // tolerate a missing final NUL (some initiators pad with it only)
    if (end === start) {
      start++;
      continue; // stray NUL padding
    }
    const item = data.toString('utf8', start, end);
    const eq = item.indexOf('=');
    if (eq <= 0) return { ok: false, error: `text item without "key=": ${JSON.stringify(item.slice(0, 64))}` };
    const key = item.slice(0, eq);
    const value = item.slice(eq + 1);
    if (key.length > MAX_KEY_NAME_LENGTH) return { ok: false, error: `key name longer than ${MAX_KEY_NAME_LENGTH} bytes` };
    if (value.length > MAX_VALUE_LENGTH) return { ok: false, error: `value of ${key} longer than ${MAX_VALUE_LENGTH} bytes` };
    pairs.push([key, value]);
    start = end + 1;
  }
  return { ok: true, pairs };
}

export function encodeTextKeys(pairs: KeyValues): Buffer {
  if (pairs.length === 0) return Buffer.alloc(0);
  return Buffer.from(pairs.map(([k, v]) => `${k}=${v}\0`).join(''), 'utf8');
}
