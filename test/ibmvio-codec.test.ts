import { describe, expect, it } from 'vitest';
import { decodeCrq, encodeCrq, INIT_COMPLETE_ENTRY, INIT_ENTRY, transportEventEntry } from '../src/ibmvio/crq-entry.js';
import { decodeVioLun, encodeVioLun } from '../src/ibmvio/lun.js';
import {
  decodeAdapterInfo,
  decodeCapabilities,
  decodeMad,
  encodeAdapterInfo,
  encodeClientCapabilities,
  encodeMad,
} from '../src/ibmvio/mad-codec.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');

describe('CRQ entries (viosrp.h struct viosrp_crq)', () => {
  it('encodes and decodes an SRP request entry', () => {
    const bytes = hex(`
      80 01 00 00             # valid command, format SRP, reserved, status
      003c 0100               # timeout 60 s, IU_length 256
      0000000000001200        # IU_data_ptr: IOBA 0x1200
    `);
    const e = decodeCrq(bytes)!;
    expect(e).toMatchObject({ valid: 0x80, format: 1, status: 0, timeout: 60, iuLength: 256 });
    expect(e.word1.readBigUInt64BE(0)).toBe(0x1200n);
    expect(encodeCrq(e)).toEqual(bytes);
  });

  it('has the init and transport event images of ibmvio.md §3.4-3.5', () => {
    expect(INIT_ENTRY()).toEqual(hex('c001000000000000 0000000000000000'));
    expect(INIT_COMPLETE_ENTRY()).toEqual(hex('c002000000000000 0000000000000000'));
    expect(transportEventEntry(0x02)).toEqual(hex('ff02000000000000 0000000000000000'));
    expect(decodeCrq(Buffer.alloc(8))).toBeUndefined();
  });
});

describe('MADs (viosrp.h)', () => {
  it('ADAPTER_INFO request IU (24 bytes)', () => {
    const bytes = hex(`
      00000003 0000 0094      # type ADAPTER_INFO, status 0, length 148
      a500000000000007        # tag
      0000000000009000        # buffer IOBA
    `);
    const m = decodeMad(bytes)!;
    expect(m).toMatchObject({ type: 3, status: 0, length: 148, buffer: 0x9000n });
    expect(encodeMad(m)).toEqual(bytes);
    expect(encodeMad({ type: 8, status: 0xf7, length: 16, tag: m.tag })).toEqual(hex('00000008 00f7 0010 a500000000000007'));
  });

  it('adapter info data (148 bytes) both directions, sanitizing guest strings', () => {
    const info = { srpVersion: '16.a', partitionName: 'lpar7', partitionNumber: 7, madVersion: 1, osType: 3, maxTransfer: 0x100000 };
    const b = encodeAdapterInfo(info);
    expect(b.length).toBe(148);
    expect(b.subarray(0, 8)).toEqual(hex('31362e6100000000')); // "16.a"
    expect(b.readUInt32BE(104)).toBe(7);
    expect(b.readUInt32BE(112)).toBe(3);
    expect(b.readUInt32BE(116)).toBe(0x100000);
    expect(decodeAdapterInfo(b)).toEqual(info);
    const evil = Buffer.from(b);
    evil.write('a\nb\u0007\u0000', 8, 'latin1');
    expect(decodeAdapterInfo(evil).partitionName).toBe('a?b?');
    expect(decodeAdapterInfo(b.subarray(0, 10)).partitionNumber).toBe(0);
  });

  it('capabilities (92 bytes): records walked by their length, hostile lengths stop the walk', () => {
    const c = encodeClientCapabilities({ flags: 0x04, name: 'host0', loc: 'U1', reserve: true });
    expect(c.length).toBe(92);
    expect(c.subarray(68, 92)).toEqual(hex('00000001 000c 0001 00000001   00000002 000c 0001 00000001'));
    const d = decodeCapabilities(c);
    expect(d.flags).toBe(4);
    expect(d.name).toBe('host0');
    expect(d.records.map((r) => [r.capType, r.offset])).toEqual([[1, 68], [2, 80]]);
    const evil = Buffer.from(c);
    evil.writeUInt16BE(0, 72); // zero-length record would loop forever if trusted
    expect(decodeCapabilities(evil).records).toEqual([]);
    expect(decodeCapabilities(Buffer.alloc(2)).records).toEqual([]);
  });
});

describe('VIO LUN encoding (ibmvio.md §5)', () => {
  it('Linux client: 0x8000 | target<<8 | bus<<5 | lun, flattened as ibmvscsis does', () => {
    expect(decodeVioLun(hex('8000000000000000'), 'linux')).toBe(0);
    expect(decodeVioLun(hex('8003000000000000'), 'linux')).toBe(3);
    expect(decodeVioLun(hex('8125000000000000'), 'linux')).toBe(256 + 32 + 5);
    expect(encodeVioLun(256 + 32 + 5, 'linux')).toEqual(hex('8125000000000000'));
    for (const n of [0, 1, 31, 32, 300, 2047]) expect(decodeVioLun(encodeVioLun(n, 'linux'), 'linux')).toBe(n);
  });

  it('AIX: disks numbered by the target field (0x8100000000000000 = LUN 1)', () => {
    expect(decodeVioLun(hex('8100000000000000'), 'aix')).toBe(1);
    expect(encodeVioLun(5, 'aix')).toEqual(hex('8500000000000000'));
    expect(decodeVioLun(hex('8101000000000000'), 'aix')).toBe(-1);
  });

  it('accepts SAM peripheral / flat addressing and refuses the rest', () => {
    expect(decodeVioLun(hex('0002000000000000'), 'linux')).toBe(2);
    expect(decodeVioLun(hex('4105000000000000'), 'linux')).toBe(0x105);
    expect(decodeVioLun(hex('c101000000000000'), 'linux')).toBe(-1);
    expect(decodeVioLun(hex('8000000000000001'), 'linux')).toBe(-1);
    expect(decodeVioLun(Buffer.alloc(3), 'linux')).toBe(-1);
  });
});
