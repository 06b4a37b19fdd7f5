/** PERSISTENT RESERVE OUT CDB and parameter list validation (SPC-4 6.17), plus hostile-input fuzzing. */
import { describe, expect, it } from 'vitest';
import { basicParams, expectGood, nexus, Pr, proutCdb, SA } from './pr-helpers.js';

const a = nexus('iqn.2024-01.test:a', '000000000001');
const b = nexus('iqn.2024-01.test:b', '000000000002');
const cdbField = (byte: number, bit?: number) => ({
  kind: 'check',
  failure: { reason: 'INVALID_FIELD_IN_CDB', field: { inCdb: true, byte, ...(bit === undefined ? {} : { bit }) } },
});
const paramField = (byte: number, bit?: number) => ({
  kind: 'check',
  failure: { reason: 'INVALID_FIELD_IN_PARAMETER_LIST', field: { inCdb: false, byte, ...(bit === undefined ? {} : { bit }) } },
});
const PLLE = { kind: 'check', failure: { reason: 'PARAMETER_LIST_LENGTH_ERROR' } };

describe('CDB', () => {
  it('service actions past REGISTER AND MOVE (incl. REPLACE LOST RESERVATION): INVALID FIELD IN CDB byte 1 bit 4', async () => {
    const pr = await Pr.open();
    for (let sa = 8; sa < 0x20; sa++) {
      expect(await pr.m.persistentReserveOut(a, proutCdb(sa), basicParams())).toEqual(cdbField(1, 4));
    }
  });
  it('bad TYPE on RESERVE: byte 2 bit 3; bad SCOPE: byte 2 bit 7', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(a, 1n));
    for (const type of [0, 2, 4, 9, 0xf]) expect(await pr.reserve(a, 1n, type)).toEqual(cdbField(2, 3));
    expect(await pr.out(a, SA.RESERVE, basicParams({ key: 1n }), 1, 1)).toEqual(cdbField(2, 7));
    expect(await pr.out(a, SA.PREEMPT, basicParams({ key: 1n, sark: 1n }), 1, 2)).toEqual(cdbField(2, 7));
    expect(pr.readReservation(a)).not.toHaveProperty('type');
  });
  it('reserved bits in byte 1 and bytes 3-4', async () => {
    const pr = await Pr.open();
    const c = proutCdb(SA.REGISTER);
    c[1]! |= 0x80;
    expect(await pr.m.persistentReserveOut(a, c, basicParams({ sark: 1n }))).toEqual(cdbField(1, 7));
    const d = proutCdb(SA.REGISTER);
    d[3] = 1;
    expect(await pr.m.persistentReserveOut(a, d, basicParams({ sark: 1n }))).toEqual(cdbField(3));
    expect(pr.readKeys(a).keys).toEqual([]);
  });
});

describe('parameter list', () => {
  it('PARAMETER LIST LENGTH other than 24 without SPEC_I_PT: PARAMETER LIST LENGTH ERROR', async () => {
    const pr = await Pr.open();
    for (const len of [0, 8, 23, 25, 32]) {
      const p = Buffer.alloc(len);
      if (len >= 16) p.writeBigUInt64BE(5n, 8);
      expect(await pr.m.persistentReserveOut(a, proutCdb(SA.REGISTER, 0, len), p)).toEqual(PLLE);
    }
    expect(pr.readKeys(a).keys).toEqual([]);
  });
  it('fewer bytes than the PARAMETER LIST LENGTH promises: PARAMETER LIST LENGTH ERROR', async () => {
    const pr = await Pr.open();
    expect(await pr.m.persistentReserveOut(a, proutCdb(SA.REGISTER, 0, 24), Buffer.alloc(20))).toEqual(PLLE);
  });
  it('extra bytes beyond the PARAMETER LIST LENGTH are ignored', async () => {
    const pr = await Pr.open();
    const p = Buffer.concat([basicParams({ sark: 3n }), Buffer.alloc(100, 0xff)]);
    expectGood(await pr.m.persistentReserveOut(a, proutCdb(SA.REGISTER, 0, 24), p));
  });
  it('SPEC_I_PT on anything but REGISTER: INVALID FIELD IN PARAMETER LIST byte 20 bit 3', async () => {
    const pr = await Pr.open();
    expect(await pr.out(a, SA.REGISTER_AND_IGNORE, basicParams({ sark: 1n, specIPt: true }))).toEqual(paramField(20, 3));
    expectGood(await pr.registerIgnore(a, 1n));
    expect(await pr.out(a, SA.RESERVE, basicParams({ key: 1n, specIPt: true }), 1)).toEqual(paramField(20, 3));
    // ... and on REGISTER from a registered nexus.
    expect(await pr.out(a, SA.REGISTER, basicParams({ key: 1n, sark: 2n, specIPt: true }))).toEqual(paramField(20, 3));
  });
  it('APTPL without a state file: INVALID FIELD IN PARAMETER LIST byte 20 bit 0', async () => {
    const pr = await Pr.open();
    expect(await pr.registerIgnore(a, 1n, { aptpl: true })).toEqual(paramField(20, 0));
    expect(pr.readKeys(a).keys).toEqual([]);
  });
  it('SPEC_I_PT lengths: short list or TransportIDs past the end: PARAMETER LIST LENGTH ERROR', async () => {
    const pr = await Pr.open();
    const p = basicParams({ sark: 1n, specIPt: true });
    expect(await pr.out(a, SA.REGISTER, p)).toEqual(PLLE);
    const q = Buffer.concat([p, Buffer.from([0, 0, 0, 40]), Buffer.alloc(24)]);
    expect(await pr.out(a, SA.REGISTER, q)).toEqual(PLLE);
  });
  it('SPEC_I_PT with malformed TransportIDs: INVALID FIELD IN PARAMETER LIST pointing into it', async () => {
    const pr = await Pr.open();
    const cases: [Buffer, number][] = [
      [Buffer.from([0x0b, 0, 0, 20, ...Buffer.alloc(20)]), 28], // protocol 0xb has no TransportID format
      [Buffer.from([0xc5, 0, 0, 20, ...Buffer.alloc(20)]), 28], // iSCSI format 11b
      [Buffer.from([0x05, 0, 0, 20, ...Buffer.alloc(20)]), 32], // empty iSCSI name
      [Buffer.from([0x05, 0, 0, 8, ...Buffer.from('iqn.noNUL')].slice(0, 12)), 32], // no terminator
      [Buffer.concat([Buffer.from([0x45, 0, 0, 20]), Buffer.from('iqn.x,i,0xZZ\0\0\0\0\0\0\0\0')]), 37], // bad ISID
      [Buffer.concat([Buffer.from([0x45, 0, 0, 20]), Buffer.from('iqn.x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0')]), 32], // 01b without ISID
      [Buffer.from([0x06, 0, 0, 0]), 28], // SAS TransportID cut short
    ];
    for (const [tid, byte] of cases) {
      const p = Buffer.concat([basicParams({ sark: 1n, specIPt: true }), Buffer.alloc(4), tid]);
      p.writeUInt32BE(tid.length, 24);
      expect(await pr.out(a, SA.REGISTER, p), tid.toString('hex')).toEqual(paramField(byte));
    }
    expect(pr.readKeys(a).keys).toEqual([]);
  });
  it('SPEC_I_PT with ALL_TG_PT accepts SAS and SRP TransportIDs and reports them back', async () => {
    const pr = await Pr.open();
    const sas = Buffer.alloc(24);
    sas[0] = 0x06;
    Buffer.from('5000c50012345678', 'hex').copy(sas, 4);
    const srp = Buffer.alloc(24);
    srp[0] = 0x04;
    srp.fill(0xab, 8);
    const tids = Buffer.concat([sas, srp]);
    const p = Buffer.concat([basicParams({ sark: 0x99n, specIPt: true }), Buffer.alloc(4), tids]);
    p.writeUInt32BE(tids.length, 24);
    // Other protocols cannot reach this (iSCSI) target port: refused without ALL_TG_PT.
    expect(await pr.out(a, SA.REGISTER, p)).toEqual(paramField(28));
    p[20] = 0x08 | 0x04;
    expectGood(await pr.out(a, SA.REGISTER, p));
    const full = pr.m.persistentReserveIn(a, Buffer.from([0x5e, 3, 0, 0, 0, 0, 0, 0x10, 0, 0]));
    const d = full.kind === 'good' ? full.data! : Buffer.alloc(0);
    expect(d.readUInt32BE(4)).toBe(d.length - 8);
    expect(d.includes(sas)).toBe(true);
    expect(d.includes(srp)).toBe(true);
  });
});

describe('registration limits', () => {
  it('a SPEC_I_PT list longer than the registration table: INSUFFICIENT REGISTRATION RESOURCES, nothing registered', async () => {
    const pr = await Pr.open();
    const n = 5000;
    const tids = Buffer.alloc(24 * n);
    for (let i = 0; i < n; i++) {
      tids[24 * i] = 0x06; // SAS
      tids.writeUInt32BE(i + 1, 24 * i + 8);
    }
    const p = Buffer.concat([basicParams({ sark: 1n, specIPt: true, allTgPt: true }), Buffer.alloc(4), tids]);
    p.writeUInt32BE(tids.length, 24);
    expect(await pr.out(a, SA.REGISTER, p)).toEqual({ kind: 'check', failure: { reason: 'INSUFFICIENT_REGISTRATION_RESOURCES' } });
    expect(pr.readKeys(a).keys).toEqual([]);
    // Within the limit the same kind of list works.
    const q = Buffer.concat([basicParams({ sark: 1n, specIPt: true, allTgPt: true }), Buffer.alloc(4), tids.subarray(0, 24 * 100)]);
    q.writeUInt32BE(24 * 100, 24);
    expectGood(await pr.out(a, SA.REGISTER, q));
    expect(pr.readKeys(a).keys.length).toBe(101);
  });
});

describe('REGISTER AND MOVE parameters', () => {
  function ram(key: bigint, sark: bigint, rtpi: number, tid: Buffer, flags = 0, tidLen = tid.length): Buffer {
    const p = Buffer.alloc(24 + tid.length);
    p.writeBigUInt64BE(key, 0);
    p.writeBigUInt64BE(sark, 8);
    p[17] = flags;
    p.writeUInt16BE(rtpi, 18);
    p.writeUInt32BE(tidLen, 20);
    tid.copy(p, 24);
    return p;
  }
  async function held(): Promise<Pr> {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(a, 1n));
    expectGood(await pr.reserve(a, 1n, 1));
    return pr;
  }
  it('SARK 0, unknown relative port, self, bad TransportID, truncated list', async () => {
    const pr = await held();
    const tid = b.initiator.transportId;
    expect(await pr.out(a, SA.REGISTER_AND_MOVE, ram(1n, 0n, 1, tid), 1)).toEqual(paramField(8));
    expect(await pr.out(a, SA.REGISTER_AND_MOVE, ram(1n, 2n, 77, tid), 1)).toEqual(paramField(18));
    expect(await pr.out(a, SA.REGISTER_AND_MOVE, ram(1n, 2n, 1, a.initiator.transportId), 1)).toEqual(paramField(24));
    expect(await pr.out(a, SA.REGISTER_AND_MOVE, ram(1n, 2n, 1, Buffer.alloc(24)), 1)).toEqual(paramField(24)); // FC port
    expect(await pr.out(a, SA.REGISTER_AND_MOVE, ram(1n, 2n, 1, tid, 0, 4000), 1)).toEqual(PLLE);
    expect(await pr.out(a, SA.REGISTER_AND_MOVE, Buffer.alloc(10), 1)).toEqual(PLLE);
    expect(await pr.out(a, SA.REGISTER_AND_MOVE, ram(5n, 2n, 1, tid), 1)).toEqual({ kind: 'conflict' });
    expect(pr.readReservation(a)).toMatchObject({ key: 1n, type: 1 });
  });
  it('the CDB TYPE is ignored; an already registered destination takes the new key', async () => {
    const pr = await held();
    expectGood(await pr.registerIgnore(b, 7n));
    const g = pr.readKeys(a).generation;
    expectGood(await pr.out(a, SA.REGISTER_AND_MOVE, ram(1n, 0x88n, 1, b.initiator.transportId), 0));
    expect(pr.readReservation(b)).toMatchObject({ type: 1, key: 0x88n });
    expect(pr.readKeys(a)).toEqual({ generation: g + 1, keys: [1n, 0x88n] });
    expect(pr.canWrite(b)).toBe(true);
    expect(pr.canWrite(a)).toBe(false);
  });
  it('the sender initiator port at another target port is refused too', async () => {
    const { ReservationManager } = await import('../src/vscsi/pr/index.js');
    const pr = new Pr(await ReservationManager.open({ resolveTargetPort: (r) => (r === 9 ? 'tp-far' : undefined) }));
    expectGood(await pr.registerIgnore(a, 1n));
    expectGood(await pr.reserve(a, 1n, 1));
    expect(await pr.out(a, SA.REGISTER_AND_MOVE, ram(1n, 2n, 9, a.initiator.transportId), 1)).toEqual(paramField(24));
  });
  it('UNREG drops the mover; the target port comes from resolveTargetPort', async () => {
    const { ReservationManager } = await import('../src/vscsi/pr/index.js');
    const pr = new Pr(await ReservationManager.open({ resolveTargetPort: (r) => (r === 9 ? 'tp-far' : undefined) }));
    expectGood(await pr.registerIgnore(a, 1n));
    expectGood(await pr.reserve(a, 1n, 3));
    const g = pr.readKeys(a).generation;
    expectGood(await pr.out(a, SA.REGISTER_AND_MOVE, ram(1n, 0x42n, 9, b.initiator.transportId, 0x02), 3));
    expect(pr.readKeys(a)).toEqual({ generation: g + 1, keys: [0x42n] });
    const far = nexus('iqn.2024-01.test:b', '000000000002', 'tp-far', 9);
    expect(pr.canWrite(far)).toBe(true);
    expect(pr.canRead(b)).toBe(false); // same initiator port, other target port: not the holder
  });
});

describe('hostile input never throws', () => {
  it('random CDBs and parameter lists always give an outcome', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(a, 1n));
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const bytes = (n: number): Buffer => Buffer.from(Array.from({ length: n }, () => rnd(256)));
    for (let i = 0; i < 3000; i++) {
      const cdb = bytes(rnd(3) === 0 ? rnd(12) : 10);
      if (cdb.length > 0) cdb[0] = [0x5e, 0x5f, 0x16, 0x17, 0x56, 0x57][rnd(6)]!;
      if (cdb.length > 8 && rnd(2) === 0) cdb.writeUInt32BE(rnd(64), 5);
      if (cdb.length > 1 && rnd(2) === 0) cdb[1] = rnd(8);
      const params = bytes(rnd(80));
      if (params.length > 24 && rnd(2) === 0) params[20] = 0x08;
      const who = rnd(2) === 0 ? a : b;
      let o;
      if (cdb[0] === 0x5f) o = await pr.m.persistentReserveOut(who, cdb, params);
      else if (cdb[0] === 0x5e) o = pr.m.persistentReserveIn(who, cdb);
      else if (cdb[0] === 0x16 || cdb[0] === 0x56) o = pr.m.reserve(who, cdb);
      else o = pr.m.release(who, cdb);
      expect(['good', 'conflict', 'check']).toContain(o.kind);
      pr.m.checkConflict(who, cdb);
      if (rnd(50) === 0) pr.m.onLogicalUnitReset();
    }
  });
});
