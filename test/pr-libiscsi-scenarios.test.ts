/**
 * The sequences libiscsi's iscsi-test-cu runs for ProutRegister*, ProutReserve*, ProutClear*,
 * ProutPreempt*, PrinReadKeys*, PrinServiceactionRange, PrinReportCapabilities, replayed against the
 * reservation manager with the same expectations.
 */
import { describe, expect, it } from 'vitest';
import { data, expectGood, isAllReg, nexus, Pr, prinCdb, TYPES } from './pr-helpers.js';

const i1 = nexus('iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test', '23d000000001');
const i2 = nexus('iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2', '23d000000002');

describe('libiscsi ProutRegister.Simple', () => {
  it('registers, refuses a re-register with the wrong key, unregisters', async () => {
    const pr = await Pr.open();
    const key = 0x1122334455667788n;
    expectGood(await pr.registerIgnore(i1, key));
    expect(pr.readKeys(i1).keys).toEqual([key]);
    // prout_reregister_key_fails: REGISTER with RESERVATION KEY 0 from a registered nexus
    expect((await pr.register(i1, 0n, key + 1n)).kind).toBe('conflict');
    expectGood(await pr.register(i1, key, 0n));
    expect(pr.readKeys(i1).keys).toEqual([]);
  });
});

describe('libiscsi PrinReadKeys', () => {
  it('Simple: ADDITIONAL LENGTH matches the data', async () => {
    const pr = await Pr.open();
    const d = data(pr.m.persistentReserveIn(i1, prinCdb(0, 16384)));
    expect(d.length).toBeGreaterThanOrEqual(8);
    expect(d.readUInt32BE(4)).toBe(d.length - 8);
  });
  it('Truncate: ADDITIONAL LENGTH is the full list even when the allocation length is 8', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(i1, 0xabcdn));
    const d = data(pr.m.persistentReserveIn(i1, prinCdb(0, 8)));
    // The core truncates to 8 bytes; the header must still announce one key.
    expect(d.subarray(0, 8).readUInt32BE(4)).toBe(8);
  });
});

describe('libiscsi PrinServiceactionRange', () => {
  it('service actions 0-3 are GOOD, 4-0x1f are INVALID FIELD IN CDB', async () => {
    const pr = await Pr.open();
    for (let sa = 0; sa < 4; sa++) expect(pr.m.persistentReserveIn(i1, prinCdb(sa)).kind).toBe('good');
    for (let sa = 4; sa < 0x20; sa++) {
      expect(pr.m.persistentReserveIn(i1, prinCdb(sa))).toEqual({
        kind: 'check',
        failure: { reason: 'INVALID_FIELD_IN_CDB', field: { inCdb: true, byte: 1, bit: 4 } },
      });
    }
  });
});

describe('libiscsi PrinReportCapabilities / ProutReserve.Simple', () => {
  it('every type in the mask can be reserved, read back and released', async () => {
    const pr = await Pr.open();
    const key = 0x42n;
    expectGood(await pr.registerIgnore(i1, key));
    const caps = data(pr.m.persistentReserveIn(i1, prinCdb(2)));
    expect(caps.readUInt16BE(0)).toBe(8);
    expect((caps[3]! >> 4) & 7).toBeLessThanOrEqual(5);
    const mask = caps.readUInt16BE(4);
    expect(mask & ~0xea01).toBe(0);
    const maskBit: Record<number, number> = { 1: 0x0200, 3: 0x0800, 5: 0x2000, 6: 0x4000, 7: 0x8000, 8: 0x0001 };
    for (const t of TYPES) {
      expect(mask & maskBit[t.code]!, t.name).not.toBe(0);
      expectGood(await pr.reserve(i1, key, t.code));
      expect(pr.readReservation(i1)).toMatchObject({ key: isAllReg(t.code) ? 0n : key, type: t.code, scope: 0 });
      expectGood(await pr.release(i1, key, t.code));
      expect(pr.readReservation(i1)).not.toHaveProperty('key');
    }
    expectGood(await pr.register(i1, key, 0n));
  });
});

describe('libiscsi ProutReserve.Access*', () => {
  // [type, reg i2 read, reg i2 write, unreg i2 read, unreg i2 write] as verify_persistent_reserve_access
  const table: [number, boolean, boolean, boolean, boolean][] = [
    [3, false, false, false, false],
    [1, true, false, true, false],
    [6, true, true, false, false],
    [5, true, true, true, false],
    [8, true, true, false, false],
    [7, true, true, true, false],
  ];
  for (const [type, rr, rw, ur, uw] of table) {
    it(`type ${type}`, async () => {
      const pr = await Pr.open();
      const k1 = 0x1001n;
      const k2 = 0x2002n;
      expectGood(await pr.registerIgnore(i1, k1));
      expectGood(await pr.registerIgnore(i2, k2));
      expectGood(await pr.reserve(i1, k1, type));
      expect(pr.readReservation(i1)).toMatchObject({ key: isAllReg(type) ? 0n : k1, type });
      expect(pr.canRead(i1)).toBe(true);
      expect(pr.canWrite(i1)).toBe(true);
      expect(pr.canRead(i2)).toBe(rr);
      expect(pr.canWrite(i2)).toBe(rw);
      expectGood(await pr.register(i2, k2, 0n));
      expect(pr.canRead(i2)).toBe(ur);
      expect(pr.canWrite(i2)).toBe(uw);
      expectGood(await pr.release(i1, k1, type));
      expectGood(await pr.register(i1, k1, 0n));
    });
  }
});

describe('libiscsi ProutReserve.Ownership*', () => {
  for (const t of TYPES) {
    const shared = isAllReg(t.code);
    it(`${t.name}: unregistering the holder ${shared ? 'keeps' : 'releases'} the reservation`, async () => {
      const pr = await Pr.open();
      const k1 = 0x51n;
      const k2 = 0x52n;
      expectGood(await pr.registerIgnore(i1, k1));
      expectGood(await pr.registerIgnore(i2, k2));
      expectGood(await pr.reserve(i1, k1, t.code));
      const unreg = await pr.register(i1, k1, 0n);
      expectGood(unreg);
      if (shared) {
        expect(pr.readReservation(i1)).toMatchObject({ key: 0n, type: t.code });
        expectGood(await pr.release(i2, k2, t.code));
        expect(pr.readReservation(i1)).not.toHaveProperty('key');
      } else {
        expect(pr.readReservation(i1)).not.toHaveProperty('key');
        // Registrants-only: the other registrants learn the reservation is gone (SPC-4 5.12.11.3).
        const ua = unreg.kind === 'good' ? unreg.effects : [];
        if (t.code === 5 || t.code === 6) {
          expect(ua).toEqual([{ kind: 'unitAttention', nexusKeys: [i2.key], reason: 'RESERVATIONS_RELEASED' }]);
        } else {
          expect(ua).toEqual([]);
        }
      }
      expectGood(await pr.register(i2, k2, 0n));
      expect(pr.readKeys(i1).keys).toEqual([]);
    });
  }
});

describe('libiscsi ProutClear.Simple', () => {
  it('CLEAR drops reservation and registrations and bumps PRGENERATION once', async () => {
    const pr = await Pr.open();
    const key = 0x77n;
    expectGood(await pr.registerIgnore(i1, key));
    const { generation: g0, keys } = pr.readKeys(i1);
    expect(keys.length).toBe(1);
    expectGood(await pr.reserve(i1, key, 3));
    expect(pr.readReservation(i1)).toMatchObject({ key, type: 3 });
    expectGood(await pr.clear(i1, key));
    expect(pr.readReservation(i1)).not.toHaveProperty('key');
    expect(pr.readKeys(i1)).toEqual({ generation: g0 + 1, keys: [] });
  });
});

describe('libiscsi ProutPreempt.RemoveRegistration', () => {
  it('PREEMPT without a reservation removes the named registration and bumps PRGENERATION once', async () => {
    const pr = await Pr.open();
    const k1 = 0x10n;
    const k2 = 0x20n;
    expectGood(await pr.registerIgnore(i1, k1));
    expectGood(await pr.clear(i1, k1));
    expectGood(await pr.registerIgnore(i1, k1));
    expectGood(await pr.registerIgnore(i2, k2));
    const before = pr.readKeys(i1);
    expect(before.keys.length).toBe(2);
    const out = await pr.preempt(i2, k2, k1, 3);
    expectGood(out);
    expect(out.kind === 'good' && out.effects).toEqual([
      { kind: 'unitAttention', nexusKeys: [i1.key], reason: 'REGISTRATIONS_PREEMPTED' },
    ]);
    expect(pr.readKeys(i1)).toEqual({ generation: before.generation + 1, keys: [k2] });
    expectGood(await pr.register(i2, k2, 0n));
  });
});
