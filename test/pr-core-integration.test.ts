/**
 * The reservation manager behind the real SCSI core and the loopback fabric: status bytes, sense and
 * unit attentions as an initiator sees them (the checks libiscsi's iscsi-test-cu makes over iSCSI).
 */
import { describe, expect, it } from 'vitest';
import { LoopbackFabric, loopbackInitiator, type LoopbackResult } from '../src/vscsi/loopback.js';
import { decodeSense, rig } from './vscsi-helpers.js';
import { basicParams, prinCdb, proutCdb, SA } from './pr-helpers.js';

const GOOD = 0x00;
const CHECK = 0x02;
const CONFLICT = 0x18;

const prout = (f: LoopbackFabric, sa: number, p: Parameters<typeof basicParams>[0], type = 0): Promise<LoopbackResult> => {
  const params = basicParams(p);
  return f.submit({ cdb: proutCdb(sa, type, params.length), dataOut: params });
};
const prin = (f: LoopbackFabric, sa: number, alloc = 8192): Promise<LoopbackResult> =>
  f.submit({ cdb: prinCdb(sa, alloc), expectedLength: alloc });
const read10 = (f: LoopbackFabric): Promise<LoopbackResult> =>
  f.submit({ cdb: [0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0], expectedLength: 512 });
const write10 = (f: LoopbackFabric): Promise<LoopbackResult> =>
  f.submit({ cdb: [0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0], dataOut: Buffer.alloc(512, 0x5a) });
const tur = (f: LoopbackFabric): Promise<LoopbackResult> => f.submit({ cdb: [0, 0, 0, 0, 0, 0] });

/** TEST UNIT READY until GOOD, returning the unit attentions seen (as testunitready_clear_ua does). */
async function drainUas(f: LoopbackFabric): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await tur(f);
    if (r.status === GOOD) return seen;
    const s = decodeSense(r.sense);
    seen.push(`${s.key.toString(16)}/${s.asc.toString(16)}/${s.ascq.toString(16)}`);
  }
  throw new Error(`unit attentions never cleared: ${seen.join(' ')}`);
}

describe('through the core', () => {
  it('PrinServiceactionRange: 0-3 GOOD, 4-0x1f ILLEGAL REQUEST / INVALID FIELD IN CDB (not an unknown opcode)', async () => {
    const { fab } = rig();
    await drainUas(fab);
    for (let sa = 0; sa < 4; sa++) expect((await prin(fab, sa)).status).toBe(GOOD);
    for (let sa = 4; sa < 0x20; sa++) {
      const r = await prin(fab, sa);
      expect(r.status).toBe(CHECK);
      expect(decodeSense(r.sense)).toMatchObject({ key: 5, asc: 0x24, ascq: 0, field: { inCdb: true, byte: 1 } });
    }
  });

  it('PrinReadKeys.Truncate: allocation length 8 keeps the full ADDITIONAL LENGTH', async () => {
    const { fab } = rig();
    await drainUas(fab);
    expect((await prout(fab, SA.REGISTER_AND_IGNORE, { sark: 0x1234n })).status).toBe(GOOD);
    const r = await prin(fab, 0, 8);
    expect(r.status).toBe(GOOD);
    expect(r.data.length).toBe(8);
    expect(r.data.readUInt32BE(4)).toBe(8);
  });

  it('ProutReserve.AccessEA: the other initiator cannot read or write, registered or not', async () => {
    const r = rig();
    const a = r.fab;
    const b = r.other();
    await drainUas(a);
    await drainUas(b);
    expect((await prout(a, SA.REGISTER_AND_IGNORE, { sark: 1n })).status).toBe(GOOD);
    expect((await prout(b, SA.REGISTER_AND_IGNORE, { sark: 2n })).status).toBe(GOOD);
    expect((await prout(a, SA.RESERVE, { key: 1n }, 3)).status).toBe(GOOD);
    expect((await read10(a)).status).toBe(GOOD);
    expect((await write10(a)).status).toBe(GOOD);
    expect((await read10(b)).status).toBe(CONFLICT);
    expect((await write10(b)).status).toBe(CONFLICT);
    expect((await tur(b)).status).toBe(GOOD);
    expect((await prout(b, SA.REGISTER, { key: 2n })).status).toBe(GOOD);
    expect((await read10(b)).status).toBe(CONFLICT);
    expect((await prout(a, SA.RELEASE, { key: 1n }, 3)).status).toBe(GOOD);
    expect((await read10(b)).status).toBe(GOOD);
  });

  it('ProutReserve.OwnershipEARO: the remaining registrant gets RESERVATIONS RELEASED', async () => {
    const r = rig();
    const a = r.fab;
    const b = r.other();
    await drainUas(a);
    await drainUas(b);
    expect((await prout(a, SA.REGISTER_AND_IGNORE, { sark: 1n })).status).toBe(GOOD);
    expect((await prout(b, SA.REGISTER_AND_IGNORE, { sark: 2n })).status).toBe(GOOD);
    expect((await prout(a, SA.RESERVE, { key: 1n }, 6)).status).toBe(GOOD);
    expect((await prout(a, SA.REGISTER, { key: 1n })).status).toBe(GOOD);
    const rr = await prin(a, 1);
    expect(rr.data.readUInt32BE(4)).toBe(0); // not reserved
    expect(await drainUas(b)).toEqual(['6/2a/4']);
    expect(await drainUas(a)).toEqual([]);
  });

  it('ProutPreempt: the preempted initiator gets REGISTRATIONS PREEMPTED', async () => {
    const r = rig();
    const a = r.fab;
    const b = r.other();
    await drainUas(a);
    await drainUas(b);
    expect((await prout(a, SA.REGISTER_AND_IGNORE, { sark: 1n })).status).toBe(GOOD);
    expect((await prout(b, SA.REGISTER_AND_IGNORE, { sark: 2n })).status).toBe(GOOD);
    expect((await prout(a, SA.RESERVE, { key: 1n }, 1)).status).toBe(GOOD);
    expect((await prout(b, SA.PREEMPT_AND_ABORT, { key: 2n, sark: 1n }, 1)).status).toBe(GOOD);
    expect(await drainUas(a)).toContain('6/2a/5');
    expect((await write10(a)).status).toBe(CONFLICT);
    expect((await write10(b)).status).toBe(GOOD);
  });

  it('REGISTER AND MOVE to another initiator at a second target port that has not sent anything yet', async () => {
    const r = rig();
    const a = r.fab;
    const port2 = r.target.addPort({ name: 'iqn.2026-01.test:target,t,0x0002' });
    const bInit = loopbackInitiator('iqn.2026-01.test:mover-dest', '0x000000000042');
    const b2 = new LoopbackFabric(r.core.openNexus({ target: r.target, targetPort: port2, initiator: bInit }));
    const b1 = new LoopbackFabric(r.core.openNexus({ target: r.target, targetPort: r.port, initiator: bInit }));
    await drainUas(a);
    expect((await prout(a, SA.REGISTER_AND_IGNORE, { sark: 1n })).status).toBe(GOOD);
    expect((await prout(a, SA.RESERVE, { key: 1n }, 3)).status).toBe(GOOD);
    const tid = bInit.transportId;
    const p = Buffer.alloc(24 + tid.length);
    p.writeBigUInt64BE(1n, 0);
    p.writeBigUInt64BE(0x2an, 8);
    p.writeUInt16BE(port2.relativeId, 18);
    p.writeUInt32BE(tid.length, 20);
    tid.copy(p, 24);
    expect((await a.submit({ cdb: proutCdb(SA.REGISTER_AND_MOVE, 3, p.length), dataOut: p })).status).toBe(GOOD);
    await drainUas(b2);
    await drainUas(b1);
    expect((await write10(b2)).status).toBe(GOOD);
    expect((await write10(b1)).status).toBe(CONFLICT); // same initiator port, other target port
    expect((await write10(a)).status).toBe(CONFLICT);
    const full = await prin(b2, 3);
    expect(full.status).toBe(GOOD);
    const second = 8 + 24 + full.data.readUInt32BE(8 + 20); // skip the mover's descriptor
    expect(full.data[8 + 12]).toBe(0x00); // the mover: still registered, no longer the holder
    expect(full.data.readUInt16BE(second + 18)).toBe(port2.relativeId);
    expect(full.data[second + 12]).toBe(0x01); // R_HOLDER
    expect(full.data[second + 13]).toBe(0x03); // LU_SCOPE, Exclusive Access
  });

  it('Reserve6.2Initiators', async () => {
    const r = rig();
    const a = r.fab;
    const b = r.other();
    await drainUas(a);
    await drainUas(b);
    const RESERVE6 = [0x16, 0, 0, 0, 0, 0];
    const RELEASE6 = [0x17, 0, 0, 0, 0, 0];
    const MODE_SENSE6 = { cdb: [0x1a, 0, 0x3f, 0, 0xff, 0], expectedLength: 255 };
    expect((await a.submit({ cdb: RESERVE6 })).status).toBe(GOOD);
    expect((await a.submit({ cdb: RESERVE6 })).status).toBe(GOOD);
    expect((await b.submit({ cdb: RESERVE6 })).status).toBe(CONFLICT);
    expect((await b.submit({ cdb: RELEASE6 })).status).toBe(GOOD);
    expect((await a.submit(MODE_SENSE6)).status).toBe(GOOD);
    expect((await b.submit(MODE_SENSE6)).status).toBe(CONFLICT);
    expect((await b.submit({ cdb: RESERVE6 })).status).toBe(CONFLICT);
    expect((await a.submit({ cdb: RELEASE6 })).status).toBe(GOOD);
    expect((await b.submit({ cdb: RESERVE6 })).status).toBe(GOOD);
    expect((await b.submit({ cdb: RELEASE6 })).status).toBe(GOOD);
  });

  it('Reserve6.ItNexusLoss: closing the holder nexus frees the LU', async () => {
    const r = rig();
    const a = r.fab;
    const b = r.other();
    await drainUas(a);
    await drainUas(b);
    expect((await a.submit({ cdb: [0x16, 0, 0, 0, 0, 0] })).status).toBe(GOOD);
    expect((await b.submit({ cdb: [0x16, 0, 0, 0, 0, 0] })).status).toBe(CONFLICT);
    await a.nexus.close();
    expect((await b.submit({ cdb: [0x16, 0, 0, 0, 0, 0] })).status).toBe(GOOD);
  });

  it('Reserve6.LunReset: LOGICAL UNIT RESET frees the LU', async () => {
    const r = rig();
    const a = r.fab;
    const b = r.other();
    await drainUas(a);
    await drainUas(b);
    expect((await a.submit({ cdb: [0x16, 0, 0, 0, 0, 0] })).status).toBe(GOOD);
    const tmf = await a.nexus.taskManagement({ fn: 'LOGICAL_UNIT_RESET', lun: 0 });
    expect(tmf.response).toBe('FUNCTION_COMPLETE');
    await drainUas(b);
    expect((await b.submit({ cdb: [0x16, 0, 0, 0, 0, 0] })).status).toBe(GOOD);
  });
});
