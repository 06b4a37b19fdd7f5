/**
 * Table-driven checks over the whole opcode table: every reserved bit of every command is refused with
 * a field pointer to it, and allocation lengths cut data exactly.
 */
import { describe, expect, it } from 'vitest';
import { allCommands } from '../src/vscsi/opcodes.js';
import { usageData } from '../src/vscsi/maintenance-in.js';
import { GOOD, rig, senseOf } from './vscsi-helpers.js';

describe('reserved bits', () => {
  it('every bit outside a command\'s CDB usage data fails with INVALID FIELD IN CDB pointing at it', async () => {
    const { fab } = rig();
    let checked = 0;
    for (const spec of allCommands()) {
      const base = usageData(spec);
      // A valid-shaped CDB: opcode and service action only.
      const clean = Buffer.alloc(base.length);
      clean[0] = spec.opcode;
      if (spec.serviceAction !== undefined) clean[1] = spec.serviceAction;
      for (let byte = 1; byte < spec.usage.length; byte++) {
        for (let bit = 7; bit >= 0; bit--) {
          if (spec.usage[byte]! & (1 << bit)) continue;
          const cdb = Buffer.from(clean);
          cdb[byte]! |= 1 << bit;
          const r = await fab.submit({ cdb, expectedLength: 0 });
          const s = senseOf(r);
          expect([spec.name, s.key, s.asc]).toEqual([spec.name, 0x5, 0x24]);
          expect([spec.name, s.field]).toEqual([spec.name, { inCdb: true, byte, bit }]);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(300);
  });

  it('CDB usage data reports the opcode, the service action and the CDB length', () => {
    for (const spec of allCommands()) {
      const u = usageData(spec);
      expect(u[0]).toBe(spec.opcode);
      expect([6, 10, 12, 16]).toContain(u.length);
      if (spec.serviceAction !== undefined) expect(u[1]! & 0x1f).toBe(spec.serviceAction);
    }
  });
});

describe('allocation lengths', () => {
  const cases: Array<[string, (alloc: number) => number[], number]> = [
    ['INQUIRY', (a) => [0x12, 0, 0, a >> 8, a & 0xff, 0], 96],
    ['INQUIRY VPD 0x83', (a) => [0x12, 1, 0x83, a >> 8, a & 0xff, 0], 0],
    ['MODE SENSE(6)', (a) => [0x1a, 0, 0x3f, 0, a & 0xff, 0], 0],
    ['MODE SENSE(10)', (a) => [0x5a, 0, 0x3f, 0, 0, 0, 0, a >> 8, a & 0xff, 0], 0],
    ['REQUEST SENSE', (a) => [0x03, 0, 0, 0, a & 0xff, 0], 18],
    ['READ CAPACITY(16)', (a) => [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, a >> 8, a & 0xff, 0, 0], 32],
    ['RSOC all', (a) => [0xa3, 0x0c, 0, 0, 0, 0, 0, 0, a >> 8, a & 0xff, 0, 0], 0],
    ['RTPG', (a) => [0xa3, 0x0a, 0, 0, 0, 0, 0, 0, a >> 8, a & 0xff, 0, 0], 0],
    ['GET LBA STATUS', (a) => [0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, a >> 8, a & 0xff, 0, 0], 0],
    ['PR IN READ KEYS', (a) => [0x5e, 0, 0, 0, 0, 0, 0, a >> 8, a & 0xff, 0], 8],
  ];

  it.each(cases)('%s returns exactly min(allocation length, data length) bytes', async (_name, build, knownFull) => {
    const { fab } = rig();
    const full = await fab.submit({ cdb: build(255), expectedLength: 255 });
    expect(full.status).toBe(GOOD);
    const total = full.data.length;
    if (knownFull) expect(total).toBe(knownFull);
    for (const alloc of [0, 1, 4, 7, 8, 17, total - 1, total, total + 1, 255]) {
      if (alloc < 0 || alloc > 255) continue;
      const r = await fab.submit({ cdb: build(alloc), expectedLength: alloc });
      expect(r.status).toBe(GOOD);
      expect(r.data.length).toBe(Math.min(alloc, total));
      expect(r.data.equals(full.data.subarray(0, r.data.length))).toBe(true);
      const left = alloc - r.data.length;
      expect(r.residual).toEqual(left > 0 ? { kind: 'underflow', count: left } : { kind: 'none' });
    }
  });
});
