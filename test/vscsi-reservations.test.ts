import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { ScsiCore } from '../src/vscsi/core.js';
import { LoopbackFabric, loopbackInitiator } from '../src/vscsi/loopback.js';
import { CONFLICT, GOOD, TASK_ABORTED, cdb10, promiseOnly, rig, senseOf } from './vscsi-helpers.js';

const WE = 0x1; // WRITE EXCLUSIVE
const EA_RO = 0x6; // EXCLUSIVE ACCESS - REGISTRANTS ONLY

function proutCdb(sa: number, type = 0): number[] {
  return [0x5f, sa, type, 0, 0, 0, 0, 0, 24, 0];
}
function proutParams(key: bigint, sark = 0n, flags = 0): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64BE(key, 0);
  b.writeBigUInt64BE(sark, 8);
  b[20] = flags;
  return b;
}
const register = (f: LoopbackFabric, key: bigint) => f.submit({ cdb: proutCdb(0x00), dataOut: proutParams(0n, key) });
const reserve = (f: LoopbackFabric, key: bigint, type: number) => f.submit({ cdb: proutCdb(0x01, type), dataOut: proutParams(key) });
const readKeys = (f: LoopbackFabric, alloc = 64) => f.submit({ cdb: [0x5e, 0x00, 0, 0, 0, 0, 0, 0, alloc, 0], expectedLength: alloc });
const W = { cdb: cdb10(0x2a, 0, 1), dataOut: Buffer.alloc(512, 1) };
const R = { cdb: cdb10(0x28, 0, 1), expectedLength: 512 };

let dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  dirs = [];
});

describe('persistent reservations through the core', () => {
  it('REGISTER, READ KEYS (allocation length honoured), RESERVE and conflicts for non-holders', async () => {
    const { fab, other } = rig();
    const b = other();
    expect((await register(fab, 0xaan)).status).toBe(GOOD);
    expect((await register(b, 0xbbn)).status).toBe(GOOD);
    const keys = await readKeys(fab);
    expect(keys.data.readUInt32BE(4)).toBe(16);
    expect(keys.data.readBigUInt64BE(8)).toBe(0xaan);
    expect((await readKeys(fab, 8)).data.length).toBe(8);
    expect((await reserve(fab, 0xaan, WE)).status).toBe(GOOD);
    expect((await fab.submit(W)).status).toBe(GOOD);
    expect((await b.submit(W)).status).toBe(CONFLICT);
    expect((await b.submit(R)).status).toBe(GOOD);
    const c = other();
    expect((await c.submit(W)).status).toBe(CONFLICT);
    expect((await c.submit({ cdb: [0x12, 0, 0, 0, 36, 0], expectedLength: 36 })).status).toBe(GOOD);
  });

  it('PREEMPT raises REGISTRATIONS PREEMPTED on the preempted nexus', async () => {
    const { fab, other } = rig();
    const b = other();
    await register(fab, 1n);
    await register(b, 2n);
    await reserve(b, 2n, EA_RO);
    const r = await fab.submit({ cdb: proutCdb(0x04, EA_RO), dataOut: proutParams(1n, 2n) });
    expect(r.status).toBe(GOOD);
    const s = senseOf(await b.submit({ cdb: [0, 0, 0, 0, 0, 0] }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x6, 0x2a, 0x05]);
  });

  it('PREEMPT AND ABORT aborts the preempted nexus tasks (TASK ABORTED with TAS=1)', async () => {
    const mem = promiseOnly(new MemoryBackstore({ name: 'g', size: 1 << 20 }));
    const gate: Array<() => void> = [];
    const orig = mem.write.bind(mem);
    let gated = false;
    mem.write = async (o: number, d: Buffer, f: boolean) => {
      if (gated) await new Promise<void>((res) => gate.push(res));
      return orig(o, d, f);
    };
    const { fab, other } = rig({ backstore: mem });
    const b = other();
    await register(fab, 1n);
    await register(b, 2n);
    gated = true;
    const pending = b.submit(W);
    await new Promise((res) => setImmediate(res));
    const pa = fab.submit({ cdb: proutCdb(0x05, WE), dataOut: proutParams(1n, 2n) });
    await new Promise((res) => setImmediate(res));
    gated = false;
    for (const g of gate.splice(0)) g();
    expect((await pa).status).toBe(GOOD);
    expect((await pending).status).toBe(TASK_ABORTED);
  });

  it('RESERVE(6)/RELEASE(6) and nexus loss', async () => {
    const { fab, other } = rig();
    const b = other();
    expect((await fab.submit({ cdb: [0x16, 0, 0, 0, 0, 0] })).status).toBe(GOOD);
    expect((await b.submit(R)).status).toBe(CONFLICT);
    expect((await b.submit({ cdb: [0x16, 0, 0, 0, 0, 0] })).status).toBe(CONFLICT);
    await fab.nexus.close();
    expect((await b.submit(R)).status).toBe(GOOD);
    expect((await b.submit({ cdb: [0x16, 0, 0, 0, 0, 0] })).status).toBe(GOOD);
    expect((await b.submit({ cdb: [0x17, 0, 0, 0, 0, 0] })).status).toBe(GOOD);
  });

  it('APTPL state survives a new core', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vtgt-pr-'));
    dirs.push(dir);
    const path = join(dir, 'disk0.pr');
    const build = () => {
      const core = new ScsiCore();
      const lu = core.addLogicalUnit({ id: 'disk0', backstore: new MemoryBackstore({ name: 'm', size: 1 << 20 }), prStatePath: path });
      const t = core.createTarget({ name: 'iqn.2026-01.test:t' });
      const p = t.addPort({ name: 'iqn.2026-01.test:t,t,0x1' });
      t.luns.set(0, lu);
      return new LoopbackFabric(core.openNexus({ target: t, targetPort: p, initiator: loopbackInitiator() }));
    };
    const f1 = build();
    expect((await f1.submit({ cdb: proutCdb(0x00), dataOut: proutParams(0n, 0x77n, 0x01) })).status).toBe(GOOD);
    const f2 = build();
    const keys = await readKeys(f2);
    expect(keys.status).toBe(GOOD);
    expect(keys.data.readBigUInt64BE(8)).toBe(0x77n);
  });

  it('ScsiCore.clearReservations drops stale reservations and tells the registrants', async () => {
    const { fab, other, core } = rig();
    const b = other();
    await register(fab, 1n);
    await register(b, 2n);
    await reserve(b, 2n, WE);
    expect((await fab.submit(W)).status).toBe(CONFLICT);
    await core.clearReservations('disk0');
    const s = senseOf(await fab.submit(W));
    expect([s.key, s.asc]).toEqual([0x6, 0x2a]);
    expect((await fab.submit(W)).status).toBe(GOOD);
    expect((await readKeys(fab)).data.readUInt32BE(4)).toBe(0);
    await expect(core.clearReservations('nope')).rejects.toThrow(/does not exist/);
  });

  it('without a reservation manager the commands are unsupported', async () => {
    const { fab } = rig({ reservations: false });
    expect(senseOf(await readKeys(fab)).asc).toBe(0x20);
    expect(senseOf(await fab.submit({ cdb: [0x16, 0, 0, 0, 0, 0] })).asc).toBe(0x20);
  });
});
