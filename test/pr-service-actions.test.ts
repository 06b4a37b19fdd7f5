/**
 * PERSISTENT RESERVE OUT service actions x reservation type x requester (holder, registrant,
 * non-registrant), then the unit attentions, aborts and PRGENERATION rules of SPC-4 5.12.
 */
import { describe, expect, it } from 'vitest';
import { basicParams, expectGood, isAllReg, nexus, Pr, proutCdb, SA, TYPES } from './pr-helpers.js';
import type { PrOutcome } from '../src/vscsi/pr/index.js';

const holder = nexus('iqn.2024-01.test:holder', '000000000001');
const registrant = nexus('iqn.2024-01.test:registrant', '000000000002');
const stranger = nexus('iqn.2024-01.test:stranger', '000000000003');
const K1 = 0x1111n;
const K2 = 0x2222n;
const ROLES = [
  { role: 'holder', n: holder, key: K1 },
  { role: 'registrant', n: registrant, key: K2 },
  { role: 'non-registrant', n: stranger, key: 0x9999n },
] as const;

async function setup(type: number): Promise<Pr> {
  const pr = await Pr.open();
  expectGood(await pr.registerIgnore(holder, K1));
  expectGood(await pr.registerIgnore(registrant, K2));
  expectGood(await pr.reserve(holder, K1, type));
  return pr;
}
const otherType = (t: number): number => (t === 1 ? 3 : 1);
const kind = (o: PrOutcome): string => (o.kind === 'check' ? `check:${o.failure.reason}` : o.kind);

describe.each(TYPES)('reservation $name', ({ code: type }) => {
  describe.each(ROLES)('from the $role', ({ role, n, key }) => {
    const registered = role !== 'non-registrant';
    const holds = role === 'holder' || (role === 'registrant' && isAllReg(type));

    it('REGISTER with its key changes the key (non-registrants: conflict)', async () => {
      const pr = await setup(type);
      const g = pr.readKeys(n).generation;
      const o = await pr.register(n, key, 0xabcn);
      if (!registered) {
        expect(o.kind).toBe('conflict');
        expect(pr.readKeys(n).generation).toBe(g);
      } else {
        expectGood(o);
        expect(pr.readKeys(n).keys).toContain(0xabcn);
        expect(pr.readKeys(n).generation).toBe(g + 1);
        expect(pr.readReservation(n)).toMatchObject({ type }); // reservation survives a key change
      }
    });

    it('REGISTER AND IGNORE EXISTING KEY always succeeds', async () => {
      const pr = await setup(type);
      expectGood(await pr.registerIgnore(n, 0xdefn));
      expect(pr.readKeys(n).keys).toContain(0xdefn);
    });

    it('RESERVE of the same type: GOOD only for a holder', async () => {
      const pr = await setup(type);
      const o = await pr.reserve(n, key, type);
      expect(kind(o)).toBe(holds ? 'good' : 'conflict');
      expect(pr.readReservation(n)).toMatchObject({ type });
    });

    it('RESERVE of another type conflicts for everyone', async () => {
      const pr = await setup(type);
      expect((await pr.reserve(n, key, otherType(type))).kind).toBe('conflict');
      expect(pr.readReservation(n)).toMatchObject({ type });
    });

    it('RELEASE: holders release, registrants get GOOD without effect, strangers conflict', async () => {
      const pr = await setup(type);
      const g = pr.readKeys(n).generation;
      const o = await pr.release(n, key, type);
      expect(kind(o)).toBe(registered ? 'good' : 'conflict');
      if (holds) expect(pr.readReservation(n)).not.toHaveProperty('type');
      else expect(pr.readReservation(n)).toMatchObject({ type });
      expect(pr.readKeys(n).generation).toBe(g); // RELEASE does not bump PRGENERATION
    });

    it('RELEASE with the wrong type: INVALID RELEASE OF PERSISTENT RESERVATION for a holder', async () => {
      const pr = await setup(type);
      const o = await pr.release(n, key, otherType(type));
      expect(kind(o)).toBe(holds ? 'check:INVALID_RELEASE_OF_PERSISTENT_RESERVATION' : registered ? 'good' : 'conflict');
      expect(pr.readReservation(n)).toMatchObject({ type });
    });

    it('CLEAR: registrants clear everything, strangers conflict', async () => {
      const pr = await setup(type);
      const o = await pr.clear(n, key);
      expect(kind(o)).toBe(registered ? 'good' : 'conflict');
      expect(pr.readKeys(n).keys.length).toBe(registered ? 0 : 2);
    });

    it('PREEMPT of the holder key', async () => {
      const pr = await setup(type);
      const o = await pr.preempt(n, key, K1, type);
      if (!registered) {
        expect(o.kind).toBe('conflict');
        return;
      }
      if (role === 'holder' && isAllReg(type)) {
        // A non-zero key under an all-registrants reservation removes other registrations with that
        // key; the sender's own is spared, so there is nobody to preempt.
        expect(o.kind).toBe('conflict');
        return;
      }
      expectGood(o);
      if (role === 'holder') {
        // Self-preempt: keeps its own registration and the reservation.
        expect(pr.readKeys(n).keys.sort()).toEqual([K1, K2]);
        expect(pr.readReservation(n)).toMatchObject({ type, key: isAllReg(type) ? 0n : K1 });
      } else if (isAllReg(type)) {
        // Non-zero key under an all-registrants reservation: only removes that registration.
        expect(pr.readKeys(n).keys).toEqual([K2]);
        expect(pr.readReservation(n)).toMatchObject({ type, key: 0n });
      } else {
        expect(pr.readKeys(n).keys).toEqual([K2]);
        expect(pr.readReservation(n)).toMatchObject({ type, key: K2 });
        expect(pr.canWrite(registrant)).toBe(true);
        expect(pr.canRead(holder)).toBe(type !== 3 && type !== 6);
      }
    });

    it('PREEMPT AND ABORT of the other registrant: its registration goes and its tasks are aborted', async () => {
      const pr = await setup(type);
      pr.m.checkConflict(registrant, Buffer.alloc(6)); // the registrant's nexus is known
      pr.m.checkConflict(holder, Buffer.alloc(6));
      const victim = role === 'registrant' ? { n: holder, key: K1 } : { n: registrant, key: K2 };
      const o = await pr.preempt(n, key, victim.key, type, true);
      if (!registered) {
        expect(o.kind).toBe('conflict');
        return;
      }
      expectGood(o);
      expect(pr.readKeys(n).keys).toEqual([key]);
      expect(o.kind === 'good' && o.effects).toEqual([
        { kind: 'unitAttention', nexusKeys: [victim.n.key], reason: 'REGISTRATIONS_PREEMPTED' },
        { kind: 'abortTasks', nexusKeys: [victim.n.key] },
      ]);
      // Preempting the holder's key hands the reservation over; any other key leaves it where it was.
      const newHolderKey = isAllReg(type) ? 0n : victim.key === K1 ? key : K1;
      expect(pr.readReservation(n)).toMatchObject({ type, key: newHolderKey });
    });

    it('REGISTER AND MOVE: only the holder of a single-holder reservation may move it', async () => {
      const pr = await setup(type);
      // Move to the stranger's port on the same target port (relative target port 1).
      const tid = stranger.initiator.transportId;
      const p = Buffer.alloc(24 + tid.length);
      p.writeBigUInt64BE(key, 0);
      p.writeBigUInt64BE(0x5151n, 8);
      p.writeUInt16BE(1, 18);
      p.writeUInt32BE(tid.length, 20);
      tid.copy(p, 24);
      const o = await pr.m.persistentReserveOut(n, proutCdb(SA.REGISTER_AND_MOVE, type, p.length), p);
      if (role === 'holder' && !isAllReg(type)) {
        expectGood(o);
        expect(pr.readReservation(n)).toMatchObject({ type, key: 0x5151n });
        expect(pr.canWrite(stranger)).toBe(true);
        // The old holder stays registered (no UNREG): under registrants-only types it may still write.
        expect(pr.canWrite(holder)).toBe(type === 5 || type === 6);
      } else {
        expect(o.kind).toBe('conflict');
      }
    });
  });
});

describe('unit attentions and aborts', () => {
  const third = nexus('iqn.2024-01.test:third', '000000000004');
  async function three(type: number): Promise<Pr> {
    const pr = await setup(type);
    expectGood(await pr.registerIgnore(third, 0x3333n));
    pr.m.checkConflict(stranger, Buffer.from([0, 0, 0, 0, 0, 0])); // the stranger's nexus exists
    return pr;
  }
  const effects = (o: PrOutcome) => (o.kind === 'good' ? o.effects : undefined);

  it('RELEASE of registrants-only / all-registrants: RESERVATIONS RELEASED to the other registrants', async () => {
    for (const type of [5, 6, 7, 8]) {
      const pr = await three(type);
      expect(effects(await pr.release(holder, K1, type))).toEqual([
        { kind: 'unitAttention', nexusKeys: [registrant.key, third.key], reason: 'RESERVATIONS_RELEASED' },
      ]);
    }
  });
  it('RELEASE of WE / EA: no unit attention', async () => {
    for (const type of [1, 3]) expect(effects(await (await three(type)).release(holder, K1, type))).toEqual([]);
  });
  it('CLEAR: RESERVATIONS PREEMPTED to every other registrant', async () => {
    const pr = await three(1);
    expect(effects(await pr.clear(registrant, K2))).toEqual([
      { kind: 'unitAttention', nexusKeys: [holder.key, third.key], reason: 'RESERVATIONS_PREEMPTED' },
    ]);
  });
  it('PREEMPT of the holder with a new type: REGISTRATIONS PREEMPTED to the loser, RESERVATIONS RELEASED to the rest', async () => {
    const pr = await three(1);
    expect(effects(await pr.preempt(registrant, K2, K1, 3))).toEqual([
      { kind: 'unitAttention', nexusKeys: [holder.key], reason: 'REGISTRATIONS_PREEMPTED' },
      { kind: 'unitAttention', nexusKeys: [third.key], reason: 'RESERVATIONS_RELEASED' },
    ]);
    expect(pr.readReservation(registrant)).toMatchObject({ type: 3, key: K2 });
  });
  it('PREEMPT AND ABORT aborts the preempted nexus tasks', async () => {
    const pr = await three(1);
    expect(effects(await pr.preempt(registrant, K2, K1, 1, true))).toEqual([
      { kind: 'unitAttention', nexusKeys: [holder.key], reason: 'REGISTRATIONS_PREEMPTED' },
      { kind: 'abortTasks', nexusKeys: [holder.key] },
    ]);
  });
  it('PREEMPT with key 0 under an all-registrants reservation takes it over alone', async () => {
    const pr = await three(8);
    const g = pr.readKeys(third).generation;
    expect(effects(await pr.preempt(third, 0x3333n, 0n, 1))).toEqual([
      { kind: 'unitAttention', nexusKeys: [holder.key, registrant.key], reason: 'REGISTRATIONS_PREEMPTED' },
    ]);
    expect(pr.readKeys(third)).toEqual({ generation: g + 1, keys: [0x3333n] });
    expect(pr.readReservation(third)).toMatchObject({ type: 1, key: 0x3333n });
  });
  it('PREEMPT with key 0 and no all-registrants reservation: INVALID FIELD IN PARAMETER LIST', async () => {
    const pr = await three(1);
    expect(await pr.preempt(registrant, K2, 0n, 1)).toEqual({
      kind: 'check',
      failure: { reason: 'INVALID_FIELD_IN_PARAMETER_LIST', field: { inCdb: false, byte: 8 } },
    });
  });
  it('PREEMPT of a key nobody holds: RESERVATION CONFLICT', async () => {
    const pr = await three(1);
    expect((await pr.preempt(registrant, K2, 0x4444n, 1)).kind).toBe('conflict');
  });
  it('unregistering the holder of a registrants-only reservation tells the others', async () => {
    const pr = await three(6);
    expect(effects(await pr.register(holder, K1, 0n))).toEqual([
      { kind: 'unitAttention', nexusKeys: [registrant.key, third.key], reason: 'RESERVATIONS_RELEASED' },
    ]);
  });
  it("the sender's other paths of an ALL_TG_PT registration count as other I_T nexuses", async () => {
    const pr = await Pr.open();
    const p1 = nexus('iqn.2024-01.test:mp', '00000000000a', 'tp-A', 1);
    const p2 = nexus('iqn.2024-01.test:mp', '00000000000a', 'tp-B', 2);
    expectGood(await pr.registerIgnore(p1, 0x61n, { allTgPt: true }));
    pr.m.attachNexus(p2);
    expectGood(await pr.reserve(p1, 0x61n, 5));
    expect(effects(await pr.release(p1, 0x61n, 5))).toEqual([
      { kind: 'unitAttention', nexusKeys: [p2.key], reason: 'RESERVATIONS_RELEASED' },
    ]);
    expect(effects(await pr.clear(p2, 0x61n))).toEqual([
      { kind: 'unitAttention', nexusKeys: [p1.key], reason: 'RESERVATIONS_PREEMPTED' },
    ]);
  });
  it('unit attentions go to every known I_T nexus of an ALL_TG_PT registration, never the sender', async () => {
    const pr = await Pr.open();
    const a1 = nexus('iqn.2024-01.test:multi', '000000000009', 'tp-A', 1);
    const a2 = nexus('iqn.2024-01.test:multi', '000000000009', 'tp-B', 2);
    expectGood(await pr.registerIgnore(a1, 0x71n, { allTgPt: true }));
    pr.m.checkConflict(a2, Buffer.from([0, 0, 0, 0, 0, 0]));
    expectGood(await pr.registerIgnore(holder, K1));
    expect(effects(await pr.clear(holder, K1))).toEqual([
      { kind: 'unitAttention', nexusKeys: [a1.key, a2.key], reason: 'RESERVATIONS_PREEMPTED' },
    ]);
  });
});

describe('PRGENERATION', () => {
  it('counts REGISTER, not RESERVE/RELEASE or a no-op unregister', async () => {
    const pr = await Pr.open();
    expect(pr.readKeys(holder).generation).toBe(0);
    expectGood(await pr.register(holder, 0n, 0n)); // unregistered + SARK 0: nothing happens
    expect(pr.readKeys(holder).generation).toBe(0);
    expectGood(await pr.register(holder, 0n, K1));
    expectGood(await pr.reserve(holder, K1, 1));
    expectGood(await pr.release(holder, K1, 1));
    expect(pr.readKeys(holder).generation).toBe(1);
    expectGood(await pr.register(holder, K1, 0n));
    expect(pr.readKeys(holder).generation).toBe(2);
  });
});

describe('ALL_TG_PT and SPEC_I_PT', () => {
  const pA = nexus('iqn.2024-01.test:host', '00023d000001', 'tp-A', 1);
  const pB = nexus('iqn.2024-01.test:host', '00023d000001', 'tp-B', 2);

  it('without ALL_TG_PT only the registering target port is registered', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(pA, 0x10n));
    expect((await pr.reserve(pB, 0x10n, 1)).kind).toBe('conflict');
  });
  it('with ALL_TG_PT every target port of the initiator port is registered', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(pA, 0x10n, { allTgPt: true }));
    expectGood(await pr.reserve(pB, 0x10n, 5));
    expect(pr.canWrite(pA)).toBe(true);
    expect(pr.canWrite(stranger)).toBe(false);
  });
  it('SPEC_I_PT registers the listed initiator ports too', async () => {
    const pr = await Pr.open();
    const tid = registrant.initiator.transportId;
    const p = Buffer.concat([basicParams({ sark: 0x77n, specIPt: true }), Buffer.alloc(4), tid]);
    p.writeUInt32BE(tid.length, 24);
    const same = nexus('iqn.2024-01.test:registrant', '000000000002'); // same port as `registrant`
    expectGood(await pr.m.persistentReserveOut(holder, proutCdb(SA.REGISTER, 0, p.length), p));
    expect(pr.readKeys(holder).keys).toEqual([0x77n, 0x77n]);
    expectGood(await pr.reserve(same, 0x77n, 3));
    expect(pr.canRead(holder)).toBe(false);
  });
  it('SPEC_I_PT with an iSCSI device name (format 00b) covers every port of that initiator', async () => {
    const pr = await Pr.open();
    const name = Buffer.from('iqn.2024-01.test:wide\0\0\0');
    const tid = Buffer.concat([Buffer.from([0x05, 0, 0, name.length]), name]);
    const p = Buffer.concat([basicParams({ sark: 0x78n, specIPt: true }), Buffer.alloc(4), tid]);
    p.writeUInt32BE(tid.length, 24);
    expectGood(await pr.m.persistentReserveOut(holder, proutCdb(SA.REGISTER, 0, p.length), p));
    expectGood(await pr.reserve(nexus('iqn.2024-01.TEST:wide', 'abc'), 0x78n, 1));
  });
  it('SPEC_I_PT naming an already registered port: INVALID FIELD IN PARAMETER LIST at that TransportID', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(registrant, 0x5n));
    const tid = registrant.initiator.transportId;
    const p = Buffer.concat([basicParams({ sark: 0x77n, specIPt: true }), Buffer.alloc(4), tid]);
    p.writeUInt32BE(tid.length, 24);
    expect(await pr.m.persistentReserveOut(holder, proutCdb(SA.REGISTER, 0, p.length), p)).toEqual({
      kind: 'check',
      failure: { reason: 'INVALID_FIELD_IN_PARAMETER_LIST', field: { inCdb: false, byte: 28 } },
    });
    expect(pr.readKeys(holder).keys).toEqual([0x5n]); // nothing half-done
  });
});
