/**
 * SPC-4 table 66 / SBC-3 table 13 (commands allowed in the presence of persistent reservations) and
 * SPC-2 5.5.1 (RESERVE(6/10)), table-driven: every reservation type x (holder, registrant,
 * non-registrant) x command class, with the expectation written out per type rather than derived
 * from the code under test.
 */
import { describe, expect, it } from 'vitest';
import { expectGood, nexus, Pr, TYPES } from './pr-helpers.js';

const cdb = (...bytes: number[]): Buffer => {
  const len = bytes[0]! < 0x20 ? 6 : bytes[0]! < 0x60 ? 10 : bytes[0]! >= 0xa0 && bytes[0]! < 0xc0 ? 12 : 16;
  const b = Buffer.alloc(Math.max(len, bytes.length));
  Buffer.from(bytes).copy(b);
  return b;
};

/** VARIABLE LENGTH CDB (SBC-3 4.2.3): opcode 0x7F, ADDITIONAL CDB LENGTH 0x18, SERVICE ACTION in bytes 8-9. */
function vlc(serviceAction: number): Buffer {
  const b = Buffer.alloc(32);
  b[0] = 0x7f;
  b[7] = 0x18;
  b.writeUInt16BE(serviceAction, 8);
  return b;
}

type Cls = 'allowed' | 'read' | 'write' | 'self';
const COMMANDS: [string, Buffer, Cls][] = [
  ['TEST UNIT READY', cdb(0x00), 'allowed'],
  ['REQUEST SENSE', cdb(0x03), 'allowed'],
  ['INQUIRY', cdb(0x12), 'allowed'],
  ['REPORT LUNS', cdb(0xa0), 'allowed'],
  ['READ CAPACITY(10)', cdb(0x25), 'allowed'],
  ['READ CAPACITY(16)', cdb(0x9e, 0x10), 'allowed'],
  ['PERSISTENT RESERVE IN', cdb(0x5e), 'allowed'],
  ['LOG SENSE', cdb(0x4d), 'allowed'],
  ['REPORT TARGET PORT GROUPS', cdb(0xa3, 0x0a), 'allowed'],
  ['REPORT SUPPORTED OPERATION CODES', cdb(0xa3, 0x0c), 'allowed'],
  ['PREVENT ALLOW MEDIUM REMOVAL (allow)', cdb(0x1e, 0, 0, 0, 0), 'allowed'],
  ['START STOP UNIT (start)', cdb(0x1b, 0, 0, 0, 1), 'allowed'],
  ['READ(6)', cdb(0x08), 'read'],
  ['READ(10)', cdb(0x28), 'read'],
  ['READ(12)', cdb(0xa8), 'read'],
  ['READ(16)', cdb(0x88), 'read'],
  ['VERIFY(10)', cdb(0x2f), 'read'],
  ['VERIFY(16)', cdb(0x8f), 'read'],
  ['PRE-FETCH(10)', cdb(0x34), 'read'],
  ['PRE-FETCH(16)', cdb(0x90), 'read'],
  ['GET LBA STATUS', cdb(0x9e, 0x12), 'read'],
  ['MODE SENSE(6)', cdb(0x1a), 'read'],
  ['MODE SENSE(10)', cdb(0x5a), 'read'],
  ['READ BUFFER', cdb(0x3c), 'read'],
  ['RECEIVE DIAGNOSTIC RESULTS', cdb(0x1c), 'read'],
  ['WRITE(6)', cdb(0x0a), 'write'],
  ['WRITE(10)', cdb(0x2a), 'write'],
  ['WRITE(12)', cdb(0xaa), 'write'],
  ['WRITE(16)', cdb(0x8a), 'write'],
  ['WRITE AND VERIFY(10)', cdb(0x2e), 'write'],
  ['WRITE SAME(10)', cdb(0x41), 'write'],
  ['WRITE SAME(16)', cdb(0x93), 'write'],
  ['UNMAP', cdb(0x42), 'write'],
  ['SYNCHRONIZE CACHE(10)', cdb(0x35), 'write'],
  ['SYNCHRONIZE CACHE(16)', cdb(0x91), 'write'],
  ['COMPARE AND WRITE', cdb(0x89), 'write'],
  ['ORWRITE', cdb(0x8b), 'write'],
  ['FORMAT UNIT', cdb(0x04), 'write'],
  ['MODE SELECT(6)', cdb(0x15), 'write'],
  ['MODE SELECT(10)', cdb(0x55), 'write'],
  ['LOG SELECT', cdb(0x4c), 'write'],
  ['WRITE BUFFER', cdb(0x3b), 'write'],
  ['PREVENT ALLOW MEDIUM REMOVAL (prevent)', cdb(0x1e, 0, 0, 0, 1), 'write'],
  ['START STOP UNIT (stop)', cdb(0x1b, 0, 0, 0, 0), 'write'],
  ['EXTENDED COPY', cdb(0x83), 'write'],
  ['vendor-specific 0xC0', cdb(0xc0), 'write'],
  ['READ MEDIA SERIAL NUMBER', cdb(0xab, 0x01), 'allowed'],
  ['MANAGEMENT PROTOCOL IN', cdb(0xa3, 0x10), 'read'],
  ['START STOP UNIT (start, power condition)', cdb(0x1b, 0, 0, 0, 0x11), 'write'],
  ['READ(32)', vlc(0x0009), 'read'],
  ['VERIFY(32)', vlc(0x000a), 'read'],
  ['WRITE(32)', vlc(0x000b), 'write'],
  ['PERSISTENT RESERVE OUT', cdb(0x5f), 'self'],
  ['RESERVE(6)', cdb(0x16), 'self'],
  ['RELEASE(6)', cdb(0x17), 'self'],
  ['RESERVE(10)', cdb(0x56), 'self'],
  ['RELEASE(10)', cdb(0x57), 'self'],
];

/** true = RESERVATION CONFLICT, per SPC-4 table 66 / SBC-3 table 13, for [registrant, non-registrant]. */
const EXPECTED: Record<number, Record<'read' | 'write', [boolean, boolean]>> = {
  1: { read: [false, false], write: [true, true] }, // Write Exclusive
  3: { read: [true, true], write: [true, true] }, // Exclusive Access
  5: { read: [false, false], write: [false, true] }, // Write Exclusive - Registrants Only
  6: { read: [false, true], write: [false, true] }, // Exclusive Access - Registrants Only
  7: { read: [false, false], write: [false, true] }, // Write Exclusive - All Registrants
  8: { read: [false, true], write: [false, true] }, // Exclusive Access - All Registrants
};

const holder = nexus('iqn.1994-05.com.redhat:holder', '000000000001');
const registrant = nexus('iqn.1994-05.com.redhat:registrant', '000000000002');
const stranger = nexus('iqn.1994-05.com.redhat:stranger', '000000000003');

describe('no reservation: nothing conflicts', () => {
  it('for registrants and strangers alike', async () => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(registrant, 5n));
    for (const [name, c] of COMMANDS) {
      expect(pr.m.checkConflict(registrant, c), name).toBe(false);
      expect(pr.m.checkConflict(stranger, c), name).toBe(false);
    }
  });
});

describe.each(TYPES)('persistent reservation $name', ({ code }) => {
  it.each(COMMANDS)('%s', async (_name, c, cls) => {
    const pr = await Pr.open();
    expectGood(await pr.registerIgnore(holder, 1n));
    expectGood(await pr.registerIgnore(registrant, 2n));
    expectGood(await pr.reserve(holder, 1n, code));
    expect(pr.m.checkConflict(holder, c)).toBe(false);
    const [reg, non] = cls === 'allowed' || cls === 'self' ? [false, false] : EXPECTED[code]![cls];
    expect(pr.m.checkConflict(registrant, c)).toBe(reg);
    expect(pr.m.checkConflict(stranger, c)).toBe(non);
  });
});

describe('RESERVE(6) held by another I_T nexus (SPC-2 5.5.1)', () => {
  const spc2Allowed = new Set(['INQUIRY', 'REPORT LUNS', 'REQUEST SENSE', 'PREVENT ALLOW MEDIUM REMOVAL (allow)', 'RESERVE(6)', 'RELEASE(6)', 'RESERVE(10)', 'RELEASE(10)']);
  it.each(COMMANDS)('%s', async (name, c) => {
    const pr = await Pr.open();
    expectGood(pr.m.reserve(holder, Buffer.from([0x16, 0, 0, 0, 0, 0])));
    // PERSISTENT RESERVE IN/OUT conflict for everyone while a RESERVE is in force.
    const prCommand = c[0] === 0x5e || c[0] === 0x5f;
    expect(pr.m.checkConflict(holder, c)).toBe(prCommand);
    expect(pr.m.checkConflict(stranger, c)).toBe(prCommand || !spc2Allowed.has(name));
  });
});
