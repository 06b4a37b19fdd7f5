import { loadNative } from './index.js';

const native = loadNative();

/** CRC32C (Castagnoli) of data, continuing from `seed` (the previous result) when given. */
export function crc32c(data: Uint8Array, seed = 0): number {
  if (!(data instanceof Uint8Array)) throw new TypeError('crc32c: data must be a Buffer or Uint8Array');
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new RangeError('crc32c: seed must be a uint32');
  return native.crc32c(data, seed);
}

export const crc32cHardware: boolean = native.crc32cHardware();
