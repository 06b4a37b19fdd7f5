import { describe, expect, it } from 'vitest';
import { buildSense, failure, invalidCdbField, invalidParamField } from '../src/vscsi/sense.js';

describe('sense encoding', () => {
  it('fixed format: key, ASC/ASCQ, field pointer with bit, VALID with INFORMATION', () => {
    const b = buildSense(invalidCdbField(4, 1), 'fixed');
    expect(b.length).toBe(18);
    expect(b.toString('hex')).toBe('700005000000000a00000000240000' + 'c90004');
    const m = buildSense(failure('MISCOMPARE_DURING_VERIFY_OPERATION', { information: 513n }), 'fixed');
    expect(m[0]).toBe(0xf0);
    expect(m.readUInt32BE(3)).toBe(513);
    expect([m[2], m[12], m[13]]).toEqual([0x0e, 0x1d, 0x00]);
  });

  it('fixed format clears VALID when INFORMATION does not fit in 4 bytes', () => {
    const b = buildSense(failure('LBA_OUT_OF_RANGE', { information: 1n << 40n }), 'fixed');
    expect(b[0]).toBe(0x70);
    expect(b.readUInt32BE(3)).toBe(0);
  });

  it('descriptor format: header, information and sense key specific descriptors', () => {
    const b = buildSense(failure('MISCOMPARE_DURING_VERIFY_OPERATION', { information: 1n << 40n }), 'descriptor');
    expect([b[0], b[1], b[2], b[3], b[7]]).toEqual([0x72, 0x0e, 0x1d, 0x00, 12]);
    expect([b[8], b[9], b[10]]).toEqual([0x00, 0x0a, 0x80]);
    expect(b.readBigUInt64BE(12)).toBe(1n << 40n);
    const p = buildSense(invalidParamField(7), 'descriptor');
    expect(p.subarray(8).toString('hex')).toBe('0206000080000700');
  });

  it('progress indication goes into the sense key specific field', () => {
    const b = buildSense(failure('LU_NOT_READY_CAUSE_NOT_REPORTABLE', { progress: 0x8000 }), 'fixed');
    expect(b.subarray(15, 18).toString('hex')).toBe('808000');
  });
});
