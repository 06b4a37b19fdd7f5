import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { crc32c, crc32cHardware, crc32cSoftware, crc32cv } from '../src/native/crc32c.js';

// Check values from RFC 3720 appendix B.4 (iSCSI CRC32C examples).
describe('crc32c', () => {
  // crc32c() takes the SSE4.2 path where the CPU has it; crc32cSoftware() is always the table code.
  for (const [name, fn] of [
    ['crc32c', crc32c],
    ['crc32cSoftware', crc32cSoftware],
  ] as const) {
    it(`${name} matches the RFC 3720 B.4 vectors`, () => {
      expect(fn(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
      expect(fn(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
      const inc = Buffer.from(Array.from({ length: 32 }, (_, i) => i));
      expect(fn(inc)).toBe(0x46dd794e);
      const dec = Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i));
      expect(fn(dec)).toBe(0x113fdb5c);
      expect(fn(Buffer.from('123456789'))).toBe(0xe3069283);
    });
  }
  it(`hardware (${crc32cHardware ? 'in use' : 'absent'}) and table paths agree on random buffers`, () => {
    const pool = randomBytes(70_000);
    for (let round = 0; round < 200; round++) {
      // Unaligned starts and every short tail length, then longer random slices.
      const start = round % 16;
      const len = round < 40 ? round : (pool[round] * 271 + round) % (pool.length - 16);
      const part = pool.subarray(start, start + len);
      const seed = round % 2 === 0 ? 0 : pool.readUInt32LE(round * 4);
      expect(crc32c(part, seed)).toBe(crc32cSoftware(part, seed));
    }
  });
  it('crc32cSoftware continues across chunks and validates like crc32c', () => {
    const data = Buffer.from('123456789');
    expect(crc32cSoftware(data.subarray(3), crc32cSoftware(data.subarray(0, 3)))).toBe(0xe3069283);
    expect(() => crc32cSoftware('abc' as unknown as Uint8Array)).toThrow(TypeError);
    expect(() => crc32cSoftware(data, -1)).toThrow(RangeError);
  });
  it('continues across chunks', () => {
    const data = Buffer.from('123456789');
    expect(crc32c(data)).toBe(0xe3069283);
    expect(crc32c(data.subarray(4), crc32c(data.subarray(0, 4)))).toBe(0xe3069283);
  });
  it('rejects non-buffers before crossing into C++', () => {
    expect(() => crc32c('abc' as unknown as Uint8Array)).toThrow(TypeError);
  });
  it('crc32cv over parts equals crc32c over the concatenation', () => {
    const a = Buffer.from('iSCSI data segment ');
    const b = Buffer.alloc(0);
    const c = Buffer.from([1, 2, 3, 0]); // pad bytes
    const whole = Buffer.concat([a, b, c]);
    expect(crc32cv([a, b, c])).toBe(crc32c(whole));
    expect(crc32cv([])).toBe(0);
    const big = Buffer.alloc(100_003, 0x5a);
    expect(crc32cv([big.subarray(0, 7), big.subarray(7, 65_536), big.subarray(65_536)])).toBe(crc32c(big));
    expect(() => crc32cv([a, 'x' as unknown as Buffer])).toThrow(/part 1/);
  });
});
