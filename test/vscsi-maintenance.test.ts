import { describe, expect, it } from 'vitest';
import { AluaState } from '../src/vscsi/core.js';
import { GOOD, cdb10, rig, senseOf } from './vscsi-helpers.js';

const rsoc = (opts: number, op = 0, sa = 0, alloc = 8192, rctd = false) => [
  0xa3, 0x0c, (rctd ? 0x80 : 0) | opts, op, sa >> 8, sa & 0xff, alloc >>> 24, (alloc >> 16) & 0xff, (alloc >> 8) & 0xff, alloc & 0xff, 0, 0,
];

describe('REPORT SUPPORTED OPERATION CODES', () => {
  it('lists every command, with timeouts descriptors when RCTD', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: rsoc(0), expectedLength: 8192 });
    expect(r.status).toBe(GOOD);
    const len = r.data.readUInt32BE(0);
    expect(len % 8).toBe(0);
    const ops = new Set<number>();
    for (let o = 4; o < 4 + len; o += 8) ops.add(r.data[o]!);
    for (const op of [0x00, 0x12, 0x28, 0x2a, 0x35, 0x41, 0x42, 0x89, 0x93, 0x9e, 0xa0, 0xa3, 0x5e, 0x5f]) expect(ops.has(op)).toBe(true);
    const t = await fab.submit({ cdb: rsoc(0, 0, 0, 8192, true), expectedLength: 8192 });
    expect(t.data.readUInt32BE(0)).toBe((len / 8) * 20);
    expect(t.data[4 + 5]! & 0x02).toBe(0x02); // CTDP
    expect(t.data.readUInt16BE(4 + 8)).toBe(0x0a);
  });

  it('reports one command with its CDB usage data, which matches what validation enforces', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: rsoc(1, 0x28), expectedLength: 64 });
    expect(r.data[1]! & 0x07).toBe(3);
    expect(r.data.readUInt16BE(2)).toBe(10);
    const usage = r.data.subarray(4, 14);
    expect(usage[0]).toBe(0x28);
    // A bit outside the usage data is rejected.
    const cdb = cdb10(0x28, 0, 1);
    cdb[6] = 0x80;
    expect(usage[6]! & 0x80).toBe(0);
    expect(senseOf(await fab.submit({ cdb, expectedLength: 512 })).field).toEqual({ inCdb: true, byte: 6, bit: 7 });
  });

  it('service action commands need reporting option 2; unknown ones are reported unsupported', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: rsoc(2, 0x9e, 0x10, 64, true), expectedLength: 64 });
    expect(r.data[1]).toBe(0x83);
    expect(r.data.readUInt16BE(2)).toBe(16);
    expect(r.data[5]! & 0x1f).toBe(0x10);
    expect(r.data.length).toBe(4 + 16 + 12);
    expect(senseOf(await fab.submit({ cdb: rsoc(1, 0x9e), expectedLength: 64 })).field?.byte).toBe(2);
    expect(senseOf(await fab.submit({ cdb: rsoc(2, 0x28), expectedLength: 64 })).field?.byte).toBe(2);
    expect((await fab.submit({ cdb: rsoc(1, 0xc7), expectedLength: 64 })).data[1]! & 7).toBe(1);
    expect(senseOf(await fab.submit({ cdb: rsoc(5), expectedLength: 64 })).asc).toBe(0x24);
  });
});

describe('REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS', () => {
  it('reports abort, clear, reset and query functions; REPD extends the data', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: [0xa3, 0x0d, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0], expectedLength: 16 });
    expect(r.data.length).toBe(4);
    expect(r.data[0]).toBe(0xde);
    expect(r.data[1]).toBe(0x07);
    const e = await fab.submit({ cdb: [0xa3, 0x0d, 0x80, 0, 0, 0, 0, 0, 0, 16, 0, 0], expectedLength: 16 });
    expect(e.data.length).toBe(16);
    expect(e.data[3]).toBe(0x0c);
  });
});

describe('REPORT TARGET PORT GROUPS and ALUA states', () => {
  it('describes groups and ports in both header formats', async () => {
    const { fab, target } = rig();
    target.addPort({ name: 'p2', groupId: 2 });
    const r = await fab.submit({ cdb: [0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], expectedLength: 256 });
    expect(r.data.readUInt32BE(0)).toBe(r.data.length - 4);
    expect(r.data[4]! & 0x0f).toBe(AluaState.ACTIVE_OPTIMIZED);
    expect(r.data.readUInt16BE(6)).toBe(1);
    expect(r.data[11]).toBe(1);
    expect(r.data.readUInt16BE(14)).toBe(1);
    expect(r.data.readUInt16BE(18)).toBe(2);
    const x = await fab.submit({ cdb: [0xa3, 0x2a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], expectedLength: 256 });
    expect(x.data[4]).toBe(0x10);
    expect(x.data.length).toBe(r.data.length + 4);
  });

  it('a standby port group answers media access with NOT READY 04/0B but INQUIRY works', async () => {
    const { fab, port } = rig();
    port.group.state = AluaState.STANDBY;
    const s = senseOf(await fab.submit({ cdb: cdb10(0x28, 0, 1), expectedLength: 512 }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x2, 0x04, 0x0b]);
    expect((await fab.submit({ cdb: [0x12, 0, 0, 0, 36, 0], expectedLength: 36 })).status).toBe(GOOD);
  });
});

describe('stats', () => {
  it('counts reads, writes, bytes and errors per LU', async () => {
    const { fab, core } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 0, 2), dataOut: Buffer.alloc(1024) });
    await fab.submit({ cdb: cdb10(0x28, 0, 1), expectedLength: 512 });
    await fab.submit({ cdb: cdb10(0x28, 5000, 1), expectedLength: 512 });
    const s = core.stats().logicalUnits['disk0']!;
    expect(s.writeCommands).toBe(1);
    expect(s.writeBytes).toBe(1024);
    expect(s.readCommands).toBe(2);
    expect(s.readBytes).toBe(512);
    expect(s.errors).toBe(1);
    expect(s.latency.count).toBe(3);
    expect(s.latency.counts.reduce((a, b) => a + b, 0)).toBe(3);
  });
});

describe('ALUA state changes', () => {
  it('setPortGroupState raises ASYMMETRIC ACCESS STATE CHANGED and RTPG reports the new state', async () => {
    const { fab, core, target } = rig();
    core.setPortGroupState(target, 1, AluaState.ACTIVE_NON_OPTIMIZED, true);
    const s = senseOf(await fab.submit({ cdb: [0, 0, 0, 0, 0, 0] }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x6, 0x2a, 0x06]);
    const r = await fab.submit({ cdb: [0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], expectedLength: 256 });
    expect(r.data[4]).toBe(0x80 | AluaState.ACTIVE_NON_OPTIMIZED);
    expect(() => core.setPortGroupState(target, 9, AluaState.STANDBY)).toThrow(/no target port group 9/);
  });
});
