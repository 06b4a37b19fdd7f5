import { loadNative } from './index.js';

const native = loadNative();

/** CRC32C (Castagnoli) of data, continuing from `seed` (the previous result) when given. */
export function crc32c(data: Uint8Array, seed = 0): number {
  checkArgs('crc32c', data, seed);
  return native.crc32c(data, seed);
}

/**
 * The portable table implementation, whatever the CPU supports. Same results as crc32c(); it exists
 * so tests can check the path crc32c() takes on machines without SSE4.2. Slower: not for I/O paths.
 */
export function crc32cSoftware(data: Uint8Array, seed = 0): number {
  checkArgs('crc32cSoftware', data, seed);
  return native.crc32cSoftware(data, seed);
}

function checkArgs(fn: string, data: Uint8Array, seed: number): void {
  if (!(data instanceof Uint8Array)) throw new TypeError(`${fn}: data must be a Buffer or Uint8Array`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError(`${fn}: seed must be a uint32`);
}

export const crc32cHardware: boolean = native.crc32cHardware();

/**
 * CRC32C over several buffers as if concatenated (an iSCSI data digest over data segment + padding,
 * without copying them together).
 */
export function crc32cv(parts: ReadonlyArray<Uint8Array>, seed = 0): number {
  if (!Array.isArray(parts)) throw new TypeError('crc32cv: parts must be an array of Buffers');
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError('crc32cv: seed must be a uint32');
  let crc = seed;
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (!(p instanceof Uint8Array)) throw new TypeError(`crc32cv: part ${i} must be a Buffer or Uint8Array`);
    if (p.length > 0) crc = native.crc32c(p, crc);
  }
  return crc;
}
