/** PERSISTENT RESERVE IN parameter data, byte by byte (SPC-4 6.16). */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ReservationManager } from '../src/vscsi/pr/index.js';
import { data, expectGood, nexus, Pr, prinCdb } from './pr-helpers.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const a = nexus('iqn.a', '123456789abc', 'tp', 0x0102);

describe('READ KEYS', () => {
  it('empty: PRGENERATION 0, ADDITIONAL LENGTH 0', async () => {
    const pr = await Pr.open();
    expect(data(pr.m.persistentReserveIn(a, prinCdb(0)))).toEqual(hex('00000000 00000000'));
  });
  it('two keys in registration order', async () => {
    const pr = await Pr.open();
    const b = nexus('iqn.b', '000000000001');
    expectGood(await pr.registerIgnore(a, 0x0102030405060708n));
    expectGood(await pr.registerIgnore(b, 0xfffffffffffffffen));
    expect(data(pr.m.persistentReserveIn(a, prinCdb(0)))).toEqual(
      hex('00000002 00000010 0102030405060708 fffffffffffffffe'),
    );
  });
});

describe('READ RESERVATION', () => {
  it('no reservation: 8-byte header only', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(a, 9n));
    expect(data(pr.m.persistentReserveIn(a, prinCdb(1)))).toEqual(hex('00000001 00000000'));
  });
  it('EA-RO: key, scope 0 / type 6', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(a, 0xa1a2a3a4a5a6a7a8n));
    expectGood(await pr.reserve(a, 0xa1a2a3a4a5a6a7a8n, 6));
    expect(data(pr.m.persistentReserveIn(a, prinCdb(1)))).toEqual(
      hex('00000001 00000010 a1a2a3a4a5a6a7a8 00000000 00 06 0000'),
    );
  });
  it('all-registrants: RESERVATION KEY 0', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(a, 0x55n));
    expectGood(await pr.reserve(a, 0x55n, 8));
    expect(data(pr.m.persistentReserveIn(a, prinCdb(1)))).toEqual(
      hex('00000001 00000010 0000000000000000 00000000 00 08 0000'),
    );
  });
});

describe('REPORT CAPABILITIES', () => {
  it('without an APTPL file: CRH SIP_C ATP_C, TMV, ALLOW COMMANDS 1, all six types', async () => {
    const pr = await Pr.open();
    expect(data(pr.m.persistentReserveIn(a, prinCdb(2)))).toEqual(hex('0008 1c 90 ea01 0000'));
  });
  it('with an APTPL file: PTPL_C, and PTPL_A once APTPL is set', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'vtgt-pr-'));
    try {
      const pr = new Pr(await ReservationManager.open({ aptplPath: path.join(dir, 'pr.json') }));
      expect(data(pr.m.persistentReserveIn(a, prinCdb(2)))).toEqual(hex('0008 1d 90 ea01 0000'));
      expectGood(await pr.registerIgnore(a, 1n, { aptpl: true }));
      expect(data(pr.m.persistentReserveIn(a, prinCdb(2)))).toEqual(hex('0008 1d 91 ea01 0000'));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('READ FULL STATUS', () => {
  it('holder descriptor with an iSCSI TransportID in ,i,0x form', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(a, 0x1122334455667788n));
    expectGood(await pr.reserve(a, 0x1122334455667788n, 1));
    // "iqn.a,i,0x123456789abc" = 22 bytes + NUL -> padded to 24; TransportID 28 bytes, format 01b.
    const tid = Buffer.concat([hex('45 00 0018'), Buffer.from('iqn.a,i,0x123456789abc'), hex('0000')]);
    expect(data(pr.m.persistentReserveIn(a, prinCdb(3)))).toEqual(
      Buffer.concat([
        hex('00000001 00000034'), // PRGENERATION 1, ADDITIONAL LENGTH 24 + 28
        hex('1122334455667788 00000000 01 01 00000000 0102 0000001c'),
        tid,
      ]),
    );
  });
  it('ALL_TG_PT registrant that does not hold: ALL_TG_PT set, R_HOLDER clear, no scope/type', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(a, 0x10n, { allTgPt: true }));
    const d = data(pr.m.persistentReserveIn(a, prinCdb(3)));
    expect(d.readUInt32BE(4)).toBe(d.length - 8);
    expect(d[8 + 12]).toBe(0x02);
    expect(d[8 + 13]).toBe(0);
    expect(d.readUInt16BE(8 + 18)).toBe(0);
  });
});

describe('PERSISTENT RESERVE IN CDB validation', () => {
  it('reserved bits and bytes: INVALID FIELD IN CDB with the field pointer', async () => {
    const pr = await Pr.open();
    const c = prinCdb(0);
    c[1] = 0x20;
    expect(pr.m.persistentReserveIn(a, c)).toEqual({ kind: 'check', failure: { reason: 'INVALID_FIELD_IN_CDB', field: { inCdb: true, byte: 1, bit: 7 } } });
    const d = prinCdb(0);
    d[4] = 1;
    expect(pr.m.persistentReserveIn(a, d)).toEqual({ kind: 'check', failure: { reason: 'INVALID_FIELD_IN_CDB', field: { inCdb: true, byte: 4 } } });
    expect(pr.m.persistentReserveIn(a, Buffer.from([0x5e, 0]))).toMatchObject({ kind: 'check' });
  });
});
