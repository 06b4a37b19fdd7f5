/** RESERVE/RELEASE (6) and (10) (SPC-2 5.5, 7.21, 7.22) and their interplay with persistent reservations (SPC-4 5.12.3). */
import { describe, expect, it } from 'vitest';
import { expectGood, nexus, Pr, prinCdb } from './pr-helpers.js';

const RESERVE6 = Buffer.from([0x16, 0, 0, 0, 0, 0]);
const RELEASE6 = Buffer.from([0x17, 0, 0, 0, 0, 0]);
const RESERVE10 = Buffer.from([0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const RELEASE10 = Buffer.from([0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const MODE_SENSE6 = Buffer.from([0x1a, 0, 0x3f, 0, 0xff, 0]);
const i1 = nexus('iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test', '23d000000001');
const i2 = nexus('iqn.2007-10.com.github:sahlberg:libiscsi:iscsi-test-2', '23d000000002');

describe('libiscsi Reserve6', () => {
  it('Simple', async () => {
    const pr = await Pr.open();
    expectGood(pr.m.reserve(i1, RESERVE6));
    expectGood(pr.m.release(i1, RELEASE6));
  });
  it('2Initiators', async () => {
    const pr = await Pr.open();
    expectGood(pr.m.reserve(i1, RESERVE6));
    expectGood(pr.m.reserve(i1, RESERVE6)); // the holder may reserve again
    expect(pr.m.reserve(i2, RESERVE6)).toEqual({ kind: 'conflict' });
    expect(pr.m.checkConflict(i2, RELEASE6)).toBe(false);
    expectGood(pr.m.release(i2, RELEASE6)); // not the holder: GOOD, nothing released
    expect(pr.m.checkConflict(i1, MODE_SENSE6)).toBe(false);
    expect(pr.m.checkConflict(i2, MODE_SENSE6)).toBe(true);
    expect(pr.m.reserve(i2, RESERVE6)).toEqual({ kind: 'conflict' });
    expectGood(pr.m.release(i1, RELEASE6));
    expectGood(pr.m.reserve(i2, RESERVE6));
    expectGood(pr.m.release(i2, RELEASE6));
    expect(pr.m.checkConflict(i1, MODE_SENSE6)).toBe(false);
  });
  it('ItNexusLoss / Logout: the reservation goes with the nexus', async () => {
    const pr = await Pr.open();
    expectGood(pr.m.reserve(i1, RESERVE6));
    expect(pr.m.reserve(i2, RESERVE6)).toEqual({ kind: 'conflict' });
    pr.m.onNexusLoss(i2); // someone else's loss changes nothing
    expect(pr.m.reserve(i2, RESERVE6)).toEqual({ kind: 'conflict' });
    pr.m.onNexusLoss(i1);
    expectGood(pr.m.reserve(i2, RESERVE6));
    expectGood(pr.m.release(i2, RELEASE6));
  });
  it('LunReset / target reset releases it', async () => {
    const pr = await Pr.open();
    expectGood(pr.m.reserve(i1, RESERVE6));
    pr.m.onLogicalUnitReset();
    expectGood(pr.m.reserve(i2, RESERVE6));
  });
  it('RESERVE(10) and RELEASE(10) behave the same', async () => {
    const pr = await Pr.open();
    expectGood(pr.m.reserve(i1, RESERVE10));
    expect(pr.m.reserve(i2, RESERVE10)).toEqual({ kind: 'conflict' });
    expect(pr.m.checkConflict(i2, Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]))).toBe(true);
    expectGood(pr.m.release(i1, RELEASE10));
    expect(pr.m.checkConflict(i2, Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]))).toBe(false);
  });
});

describe('unsupported RESERVE/RELEASE forms: INVALID FIELD IN CDB', () => {
  const cases: [string, Buffer, number, number][] = [
    ['RESERVE(6) 3RDPTY', Buffer.from([0x16, 0x10, 0, 0, 0, 0]), 1, 4],
    ['RESERVE(6) extent', Buffer.from([0x16, 0x01, 0, 0, 0, 0]), 1, 0],
    ['RELEASE(6) 3RDPTY', Buffer.from([0x17, 0x10, 0, 0, 0, 0]), 1, 4],
    ['RESERVE(10) 3RDPTY', Buffer.from([0x56, 0x10, 0, 5, 0, 0, 0, 0, 0, 0]), 1, 4],
    ['RESERVE(10) LONGID', Buffer.from([0x56, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]), 1, 1],
    ['RELEASE(10) 3RDPTY', Buffer.from([0x57, 0x10, 0, 5, 0, 0, 0, 0, 0, 0]), 1, 4],
  ];
  it.each(cases)('%s', async (_n, cdb, byte, bit) => {
    const pr = await Pr.open();
    const o = cdb[0] === 0x16 || cdb[0] === 0x56 ? pr.m.reserve(i1, cdb) : pr.m.release(i1, cdb);
    expect(o).toEqual({ kind: 'check', failure: { reason: 'INVALID_FIELD_IN_CDB', field: { inCdb: true, byte, bit } } });
    expectGood(pr.m.reserve(i2, RESERVE6)); // nothing was reserved by the bad command
  });
  it('short CDBs', async () => {
    const pr = await Pr.open();
    expect(pr.m.reserve(i1, Buffer.from([0x56, 0]))).toMatchObject({ kind: 'check' });
    expect(pr.m.release(i1, Buffer.from([0x17]))).toMatchObject({ kind: 'check' });
  });
});

describe('RESERVE/RELEASE with persistent reservations (SPC-4 5.12.3)', () => {
  it('registrations without a reservation: RESERVE and RELEASE conflict for everyone', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(i1, 1n));
    expect(pr.m.reserve(i1, RESERVE6)).toEqual({ kind: 'conflict' });
    expect(pr.m.reserve(i2, RESERVE6)).toEqual({ kind: 'conflict' });
    expect(pr.m.release(i2, RELEASE6)).toEqual({ kind: 'conflict' });
  });
  it('the persistent reservation holder gets GOOD without effect', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(i1, 1n));
    expectGood(await pr.reserve(i1, 1n, 1));
    expectGood(pr.m.reserve(i1, RESERVE6));
    expectGood(pr.m.release(i1, RELEASE6));
    expect(pr.readReservation(i1)).toMatchObject({ type: 1, key: 1n });
    // No SPC-2 reservation was made: PR IN still works.
    expect(pr.m.persistentReserveIn(i1, prinCdb(0)).kind).toBe('good');
  });
  it('registrants of a registrants-only reservation get GOOD without effect; WE registrants conflict', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(i1, 1n));
    expectGood(await pr.registerIgnore(i2, 2n));
    expectGood(await pr.reserve(i1, 1n, 5));
    expectGood(pr.m.reserve(i2, RESERVE6));
    const pr2 = await Pr.open();
    expectGood(await pr2.registerIgnore(i1, 1n));
    expectGood(await pr2.registerIgnore(i2, 2n));
    expectGood(await pr2.reserve(i1, 1n, 1));
    expect(pr2.m.reserve(i2, RESERVE6)).toEqual({ kind: 'conflict' });
  });
  it('a RESERVE in force makes PERSISTENT RESERVE IN and OUT conflict, even for its holder', async () => {
    const pr = await Pr.open();
    expectGood(pr.m.reserve(i1, RESERVE6));
    expect(pr.m.persistentReserveIn(i1, prinCdb(0))).toEqual({ kind: 'conflict' });
    expect((await pr.registerIgnore(i1, 1n)).kind).toBe('conflict');
    expect((await pr.registerIgnore(i2, 1n)).kind).toBe('conflict');
    expectGood(pr.m.release(i1, RELEASE6));
    expectGood(await pr.registerIgnore(i1, 1n));
  });
  it('persistent reservations survive nexus loss and LU reset', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(i1, 1n));
    expectGood(await pr.reserve(i1, 1n, 3));
    pr.m.onNexusLoss(i1);
    pr.m.onLogicalUnitReset();
    expect(pr.readReservation(i2)).toMatchObject({ type: 3, key: 1n });
    expect(pr.canRead(i2)).toBe(false);
    expect(pr.canRead(i1)).toBe(true);
  });
});
