import { describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { ScsiCore } from '../src/vscsi/core.js';
import { GOOD, TASK_ABORTED, cdb10, gatedStore, clearUa, decodeSense, rig, senseOf } from './vscsi-helpers.js';

const W = (lba: number, byte: number) => ({ cdb: cdb10(0x2a, lba, 1), dataOut: Buffer.alloc(512, byte) });
const TUR = { cdb: [0, 0, 0, 0, 0, 0] };
const REPORT_LUNS = { cdb: [0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0], expectedLength: 4096 };
const tick = () => new Promise((r) => setImmediate(r));

describe('removeLogicalUnit drains accepted commands', () => {
  it('a WRITE in flight during removal completes GOOD and reaches the store; new commands see no LUN', async () => {
    const g = gatedStore();
    const { core, fab, target, other } = rig({ backstore: g.mem });
    const b = other();
    // A second LU at LUN 1 stays mapped, so the REPORTED LUNS DATA HAS CHANGED UA has a LUN to land on.
    const keep = core.addLogicalUnit({ id: 'keep', backstore: new MemoryBackstore({ name: 'keep', size: 1 << 20 }) });
    target.luns.set(1, keep);
    // Consume the REPORTED LUNS DATA HAS CHANGED of adding LUN 1.
    for (const f of [fab, b]) for (const lun of [0, 1]) await clearUa(f, lun);
    const write = fab.submit(W(3, 0xab));
    for (let i = 0; i < 5 && g.inFlight() === 0; i++) await tick();
    expect(g.inFlight()).toBe(1);

    let removed = false;
    const removal = core.removeLogicalUnit('disk0').then(() => (removed = true));
    await tick();
    expect(removed).toBe(false); // still draining the write

    // Meanwhile LUN 0 is gone for everyone: new commands are refused, REPORT LUNS no longer lists it.
    expect(senseOf(await b.submit(W(4, 1))).asc).toBe(0x25);
    const ua = senseOf(await b.submit({ ...TUR, lun: 1 }));
    expect([ua.key, ua.asc, ua.ascq]).toEqual([0x6, 0x3f, 0x0e]);
    const rl = await b.submit(REPORT_LUNS);
    expect(rl.status).toBe(GOOD);
    const listed = rl.data.readUInt32BE(0) / 8;
    const luns = Array.from({ length: listed }, (_, i) => rl.data.readUInt16BE(8 + 8 * i));
    // LUN 0 stays in REPORT LUNS as SPC-4 requires, but only as the well-known "no LU here" entry.
    expect(luns).toEqual([0, 1]);
    expect(senseOf(await b.submit(TUR)).asc).toBe(0x25);

    g.releaseAll();
    const r = await write;
    await removal;
    expect(r.status).toBe(GOOD);
    expect(removed).toBe(true);
    expect((await g.mem.read(3 * 512, 512)).equals(Buffer.alloc(512, 0xab))).toBe(true);
    expect(core.stats().activeCommands).toBe(0);
  });

  it('commands still running after the drain timeout get TASK ABORTED, not silence', async () => {
    const g = gatedStore();
    const { core, fab } = rig({ backstore: g.mem });
    const write = fab.submit(W(0, 7));
    for (let i = 0; i < 5 && g.inFlight() === 0; i++) await tick();
    expect(g.inFlight()).toBe(1);
    const removal = core.removeLogicalUnit('disk0', { drainTimeoutMs: 20 });
    // The abort waits for the backstore call to return: release it after the drain gave up.
    setTimeout(() => g.releaseAll(), 60);
    await removal;
    const r = await write;
    expect(r.status).toBe(TASK_ABORTED);
    expect(core.stats().activeCommands).toBe(0);
  });

  it('removing an idle LU is immediate and its LUN reports LOGICAL UNIT NOT SUPPORTED', async () => {
    const { core, fab } = rig();
    await core.removeLogicalUnit('disk0');
    const s = decodeSense((await fab.submit(TUR)).sense);
    expect([s.key, s.asc]).toEqual([0x5, 0x25]);
    await core.removeLogicalUnit('disk0'); // idempotent
    expect(core.getLogicalUnit('disk0')).toBeUndefined();
  });

  it('refuses a drain timeout that is not a non-negative number', () => {
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => new ScsiCore({ drainTimeoutMs: bad })).toThrow(/drainTimeoutMs/);
    }
  });
});
