import { describe, expect, it } from 'vitest';
import { decodeSamLun, encodeSamLun, INVALID_LUN } from '../src/vscsi/lun-address.js';

describe('SAM-5 LUN addressing', () => {
  it.each([
    [0, '0000000000000000'],
    [5, '0005000000000000'],
    [255, '00ff000000000000'],
    [256, '4100000000000000'],
    [16383, '7fff000000000000'],
  ])('encodes and decodes LUN %i', (n, hex) => {
    expect(encodeSamLun(n).toString('hex')).toBe(hex);
    expect(decodeSamLun(Buffer.from(hex, 'hex'))).toBe(n);
  });

  it.each([
    ['0100000000000000', 'peripheral with bus id'],
    ['8100000000000000', 'logical unit addressing'],
    ['c100000000000000', 'extended addressing'],
    ['0001000100000000', 'second level'],
    ['00010000000000ff', 'trailing garbage'],
  ])('rejects %s (%s)', (hex) => {
    expect(decodeSamLun(Buffer.from(hex, 'hex'))).toBe(INVALID_LUN);
  });

  it('rejects short buffers and out of range numbers', () => {
    expect(decodeSamLun(Buffer.alloc(4))).toBe(INVALID_LUN);
    expect(() => encodeSamLun(16384)).toThrow(RangeError);
    expect(() => encodeSamLun(-1)).toThrow(RangeError);
    expect(() => encodeSamLun(1.5)).toThrow(RangeError);
  });
});
