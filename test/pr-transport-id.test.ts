/** TransportID codec (SPC-4 7.6.4): annotated fixtures both ways, and hostile bytes. */
import { describe, expect, it } from 'vitest';
import { buildTransportId, parseTransportId, prNexusKey } from '../src/vscsi/pr/index.js';
import { iscsiPort } from './pr-helpers.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('iSCSI TransportIDs (SPC-4 7.6.4.6)', () => {
  it('format 01b parses to name + normalised ISID and builds back identically', () => {
    // byte 0: FORMAT CODE 01b | PROTOCOL IDENTIFIER 5; bytes 2-3: ADDITIONAL LENGTH 0x1c;
    // "iqn.x:y,i,0x00023d000001" (24 bytes), NUL, padded to a multiple of 4.
    const fixture = Buffer.concat([hex('45 00 001c'), Buffer.from('iqn.x:y,i,0x00023d000001'), hex('00 000000')]);
    const r = parseTransportId(fixture, 0, fixture.length);
    expect(r).toMatchObject({ ok: true, length: 32, identity: { protocolId: 5, name: 'iqn.x:y', portSuffix: ',i,0x00023d000001' } });
    if (r.ok) expect(buildTransportId(r.identity)).toEqual(fixture);
  });
  it('format 00b names the whole initiator device (portSuffix null)', () => {
    const fixture = Buffer.concat([hex('05 00 0014'), Buffer.from('iqn.2024-01.a:b'), Buffer.alloc(5)]);
    const r = parseTransportId(fixture, 0, fixture.length);
    expect(r).toMatchObject({ ok: true, length: 24, identity: { name: 'iqn.2024-01.a:b', portSuffix: null } });
    if (r.ok) expect(buildTransportId(r.identity)).toEqual(fixture);
  });
  it('names compare case-insensitively and ISIDs as numbers', () => {
    const fixture = Buffer.concat([hex('45 00 0014'), Buffer.from('IQN.X:Y,i,0x3D0001'), Buffer.alloc(2)]);
    const r = parseTransportId(fixture, 0, fixture.length);
    expect(r).toMatchObject({ ok: true, identity: { name: 'iqn.x:y', portSuffix: ',i,0x0000003d0001' } });
  });
  it('offsets: parses at an offset and reports errors relative to the buffer', () => {
    const t = buildTransportId({ protocolId: 5, name: 'iqn.p', portSuffix: ',i,0x000000000001' });
    const buf = Buffer.concat([Buffer.alloc(28, 0xee), t]);
    expect(parseTransportId(buf, 28, buf.length)).toMatchObject({ ok: true, length: t.length });
    expect(parseTransportId(buf, 28, buf.length - 1)).toEqual({ ok: false, errorOffset: 30, why: 'truncated' });
  });
});

describe('24-byte TransportIDs', () => {
  it('SAS (7.6.4.7): SAS address in bytes 4-11', () => {
    const sas = hex('06 000000 5000c50012345678 0000000000000000 00000000');
    const r = parseTransportId(sas, 0, sas.length);
    expect(r).toMatchObject({ ok: true, length: 24, transportId: sas });
  });
  it('SRP (7.6.4.5) and FC (7.6.4.2)', () => {
    const srp = Buffer.alloc(24, 0x11);
    srp[0] = 0x04;
    expect(parseTransportId(srp, 0, 24)).toMatchObject({ ok: true, identity: { protocolId: 4 } });
    const fc = Buffer.alloc(24);
    fc.writeBigUInt64BE(0x2100001b32a1b2c3n, 8);
    expect(parseTransportId(fc, 0, 24)).toMatchObject({ ok: true, identity: { protocolId: 0 } });
  });
  it('unknown protocols and non-zero format codes are refused', () => {
    expect(parseTransportId(Buffer.from([0x0f, ...Buffer.alloc(23)]), 0, 24)).toMatchObject({ ok: false, why: 'unsupported-protocol' });
    expect(parseTransportId(Buffer.from([0x46, ...Buffer.alloc(23)]), 0, 24)).toMatchObject({ ok: false, why: 'bad-format' });
  });
});

describe('hostile bytes', () => {
  it('never throws, and every success stays inside the bounds', () => {
    let seed = 99;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 5000; i++) {
      const len = rnd(64);
      const b = Buffer.from(Array.from({ length: len }, () => rnd(256)));
      if (len > 0 && rnd(2) === 0) b[0] = rnd(2) === 0 ? 0x05 : 0x45;
      if (len > 3 && rnd(2) === 0) b.writeUInt16BE(rnd(70), 2);
      const end = rnd(len + 1);
      const r = parseTransportId(b, 0, end);
      if (r.ok) expect(r.length).toBeLessThanOrEqual(end);
      else expect(r.errorOffset).toBeGreaterThanOrEqual(0);
    }
  });
});

describe('prNexusKey', () => {
  it('is the same for spellings of one I_T nexus and differs across ports', () => {
    const k1 = prNexusKey(iscsiPort('iqn.A:b', '00023d000001'), 'tp1');
    expect(prNexusKey(iscsiPort('iqn.a:B', '23D000001'), 'tp1')).toBe(k1);
    expect(prNexusKey(iscsiPort('iqn.a:b', '00023d000002'), 'tp1')).not.toBe(k1);
    expect(prNexusKey(iscsiPort('iqn.a:b', '00023d000001'), 'tp2')).not.toBe(k1);
  });
});
