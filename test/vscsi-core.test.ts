import { describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { BackstoreError } from '../src/backstores/backstore.js';
import { LunMap, ScsiCore } from '../src/vscsi/core.js';
import { LoopbackFabric, loopbackInitiator } from '../src/vscsi/loopback.js';
import { GOOD, cdb10, clearUa, promiseOnly, rig, senseOf } from './vscsi-helpers.js';

const TUR = { cdb: [0, 0, 0, 0, 0, 0] };
const REPORT_LUNS = { cdb: [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], expectedLength: 256 };
const mem = (name: string) => new MemoryBackstore({ name, size: 1 << 20 });

describe('ScsiCore model', () => {
  it('rejects duplicate LU ids, target names, port names and relative ids', () => {
    const core = new ScsiCore();
    core.addLogicalUnit({ id: 'a', backstore: mem('a') });
    expect(() => core.addLogicalUnit({ id: 'a', backstore: mem('b') })).toThrow(/already exists/);
    const t = core.createTarget({ name: 'iqn.x:t' });
    expect(() => core.createTarget({ name: 'iqn.x:t' })).toThrow(/already exists/);
    t.addPort({ name: 'p1' });
    expect(() => t.addPort({ name: 'p1' })).toThrow(/already exists/);
    expect(() => t.addPort({ name: 'p2', relativeId: 1 })).toThrow(/in use/);
    expect(t.addPort({ name: 'p3' }).relativeId).toBe(2);
    expect(() => t.luns.set(16384, core.getLogicalUnit('a')!)).toThrow(RangeError);
    expect(() => core.addLogicalUnit({ id: 'c', backstore: mem('c'), serial: 'has space' })).toThrow(/printable ASCII/);
    expect(() => core.addLogicalUnit({ id: 'd', backstore: mem('d'), serial: 'x'.repeat(201) })).toThrow(/printable ASCII/);
  });

  it('per-ACL LUN maps show different LUs to different initiators', async () => {
    const core = new ScsiCore();
    const a = core.addLogicalUnit({ id: 'a', backstore: mem('a') });
    const b = core.addLogicalUnit({ id: 'b', backstore: mem('b') });
    const t = core.createTarget({ name: 'iqn.x:t' });
    const port = t.addPort({ name: 'p' });
    t.luns.set(0, a);
    const acl = new LunMap();
    acl.set(0, b);
    acl.set(5, a);
    const one = new LoopbackFabric(core.openNexus({ target: t, targetPort: port, initiator: loopbackInitiator('iqn.x:one') }));
    const two = new LoopbackFabric(core.openNexus({ target: t, targetPort: port, initiator: loopbackInitiator('iqn.x:two'), lunMap: acl }));
    expect(one.nexus.lunNumbers()).toEqual([0]);
    expect(two.nexus.lunNumbers()).toEqual([0, 5]);
    await two.submit({ cdb: cdb10(0x2a, 0, 1), dataOut: Buffer.alloc(512, 0xbb) });
    const viaOne = await one.submit({ cdb: cdb10(0x28, 0, 1), expectedLength: 512 });
    expect(viaOne.data[0]).toBe(0); // LU a is untouched
    const viaTwo = await two.submit({ lun: 5, cdb: cdb10(0x28, 0, 1), expectedLength: 512 });
    expect(viaTwo.data[0]).toBe(0);
    // Changing the ACL map only raises the UA for its nexus.
    acl.delete(5);
    expect(senseOf(await two.submit(TUR)).asc).toBe(0x3f);
    expect((await one.submit(TUR)).status).toBe(GOOD);
    expect(core.stats().nexuses).toBe(2);
    expect(t.nexuses().length).toBe(2);
  });

  it('nexus profiles override INQUIRY identity and REPORT LUNS encoding', async () => {
    const core = new ScsiCore();
    const t = core.createTarget({ name: 'iqn.x:t' });
    const port = t.addPort({ name: 'p' });
    t.luns.set(3, core.addLogicalUnit({ id: 'a', backstore: mem('a'), vendor: 'ACME', product: 'DISK' }));
    const aix = new LoopbackFabric(
      core.openNexus({
        target: t,
        targetPort: port,
        initiator: loopbackInitiator('iqn.x:aix'),
        profile: {
          inquiryIdentity: { vendor: 'IBM', product: 'VDASD blkdev', revision: '0001' },
          lunEncoder: (n) => Buffer.from([0x80 | n, 0, 0, 0, 0, 0, 0, 0]),
        },
      }),
    );
    const plain = new LoopbackFabric(core.openNexus({ target: t, targetPort: port, initiator: loopbackInitiator('iqn.x:linux') }));
    const inq = await aix.submit({ lun: 3, cdb: [0x12, 0, 0, 0, 96, 0], expectedLength: 96 });
    expect(inq.data.subarray(8, 36).toString('ascii')).toBe('IBM     VDASD blkdev    0001');
    const std = await plain.submit({ lun: 3, cdb: [0x12, 0, 0, 0, 96, 0], expectedLength: 96 });
    expect(std.data.subarray(8, 20).toString('ascii')).toBe('ACME    DISK');
    const rl = await aix.submit(REPORT_LUNS);
    expect(rl.data.subarray(8, 16).toString('hex')).toBe('8000000000000000'); // LUN 0 always listed
    expect(rl.data.subarray(16, 24).toString('hex')).toBe('8300000000000000');
  });

  it('a backstore that vanished answers NOT READY, logged once; the LU recovers', async () => {
    const store = promiseOnly(mem('m'));
    let gone = true;
    const read = store.read.bind(store);
    store.read = (o: number, l: number) => (gone ? Promise.reject(new BackstoreError('gone', 'device removed')) : read(o, l));
    const logs: string[] = [];
    const logger = {
      error: (_o: unknown, msg: string) => logs.push(`error:${msg}`),
      info: (_o: unknown, msg: string) => logs.push(`info:${msg}`),
      warn: () => {},
      debug: () => {},
      child() {
        return this;
      },
    };
    const core = new ScsiCore({ logger: logger as never, reservations: false });
    const t = core.createTarget({ name: 'iqn.x:t' });
    const port = t.addPort({ name: 'p' });
    t.luns.set(0, core.addLogicalUnit({ id: 'a', backstore: store }));
    const f = new LoopbackFabric(core.openNexus({ target: t, targetPort: port, initiator: loopbackInitiator() }));
    for (let i = 0; i < 3; i++) {
      const s = senseOf(await f.submit({ cdb: cdb10(0x28, 0, 1), expectedLength: 512 }));
      expect([s.key, s.asc, s.ascq]).toEqual([0x2, 0x04, 0x03]);
    }
    expect(logs.filter((l) => l.startsWith('error:')).length).toBe(1);
    gone = false;
    expect((await f.submit({ cdb: cdb10(0x28, 0, 1), expectedLength: 512 })).status).toBe(GOOD);
    expect(logs.filter((l) => l.startsWith('info:')).length).toBe(1);
  });

  it('an LU whose reservation state cannot be restored stays NOT READY', async () => {
    const core = new ScsiCore({ reservations: () => Promise.reject(new Error('corrupt state file')) });
    const t = core.createTarget({ name: 'iqn.x:t' });
    const port = t.addPort({ name: 'p' });
    t.luns.set(0, core.addLogicalUnit({ id: 'a', backstore: mem('a'), prStatePath: '/nonexistent/pr.json' }));
    const f = new LoopbackFabric(core.openNexus({ target: t, targetPort: port, initiator: loopbackInitiator() }));
    await f.submit(REPORT_LUNS);
    const s = senseOf(await f.submit({ cdb: cdb10(0x2a, 0, 1), dataOut: Buffer.alloc(512) }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x2, 0x04, 0x03]);
    expect((await f.submit({ cdb: [0x12, 0, 0, 0, 36, 0], expectedLength: 36 })).status).toBe(GOOD);
  });

  it('capacity changes raise CAPACITY DATA HAS CHANGED', async () => {
    const { fab, core, lu, backstore } = rig();
    core.capacityChanged(lu);
    expect((await fab.submit(TUR)).status).toBe(GOOD);
    Object.defineProperty(backstore, 'sizeBytes', { value: 2048 * 512 });
    core.capacityChanged(lu);
    const s = senseOf(await fab.submit(TUR));
    expect([s.asc, s.ascq]).toEqual([0x2a, 0x09]);
    const rc = await fab.submit({ cdb: [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], expectedLength: 8 });
    expect(rc.data.readUInt32BE(0)).toBe(2047);
  });

  it('never throws on hostile submissions: empty and short CDBs, odd tags, closed nexus', async () => {
    const { fab } = rig();
    expect(senseOf(await fab.submit({ cdb: [] })).asc).toBe(0x20);
    expect(senseOf(await fab.submit({ cdb: [0x28, 0, 0] })).asc).toBe(0x24);
    for (let i = 0; i < 300; i++) {
      const cdb = Buffer.alloc(16);
      for (let j = 0; j < 16; j++) cdb[j] = (i * 31 + j * 17) & 0xff;
      const r = await fab.submit({ cdb, expectedLength: 64, lun: i % 3 });
      expect([0x00, 0x02, 0x18]).toContain(r.status);
    }
    await fab.nexus.close();
    expect((await fab.submit(TUR)).status).toBe(0x40);
  });
});

describe('completion timing', () => {
  it('never completes inside submit(), even for commands rejected up front', async () => {
    const { fab } = rig();
    for (const cdb of [[0xc7, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]) {
      let inSubmit = true;
      let completedInside = false;
      const done = new Promise<void>((resolve) => {
        fab.nexus.submit({
          lun: 9,
          cdb: Buffer.from(cdb),
          attribute: 0,
          tag: 1000n,
          direction: 'none',
          expectedLength: 0,
          port: {
            fetchDataOut: () => Promise.reject(new Error('no data')),
            complete: () => {
              completedInside = inSubmit;
              resolve();
            },
          },
        });
      });
      inSubmit = false;
      await done;
      expect(completedInside).toBe(false);
    }
  });
});

describe('data-out the fabric already holds', () => {
  type Done = { status: number; residual: unknown };
  const write10 = (fab: ReturnType<typeof rig>['fab'], expectedLength: number, port: { now?: (o: number, l: number) => Buffer | undefined; later: (o: number, l: number) => Promise<Buffer> }) =>
    new Promise<Done>((resolve) => {
      fab.nexus.submit({
        lun: 0,
        cdb: Buffer.from([0x2a, 0, 0, 0, 0, 8, 0, 0, 2, 0]), // WRITE(10) LBA 8, 2 blocks
        attribute: 0,
        tag: 77n,
        direction: 'write',
        expectedLength,
        port: {
          fetchDataOut: port.later,
          ...(port.now ? { fetchDataOutNow: port.now } : {}),
          complete: (r) => resolve({ status: r.status, residual: r.residual }),
        },
      });
    });

  it('writes what fetchDataOutNow returns without asking fetchDataOut, with the same residuals', async () => {
    const { fab, backstore } = rig();
    await clearUa(fab);
    const calls: string[] = [];
    const data = Buffer.alloc(1024, 0x3c);
    const r = await write10(fab, 1536, {
      now: (o, l) => (calls.push(`now ${o}+${l}`), data.subarray(o, o + l)),
      later: () => (calls.push('later'), Promise.reject(new Error('not expected'))),
    });
    expect(r).toEqual({ status: GOOD, residual: { kind: 'underflow', count: 512 } });
    expect(calls).toEqual(['now 0+1024']);
    expect(await backstore.read(8 * 512, 1024)).toEqual(data);

    // Fewer bytes expected than the CDB asks for: the expected whole blocks are written (overflow).
    calls.length = 0;
    const short = await write10(fab, 512, {
      now: (o, l) => (calls.push(`now ${o}+${l}`), Buffer.alloc(l, 0x11)),
      later: () => Promise.reject(new Error('not expected')),
    });
    expect(short).toEqual({ status: GOOD, residual: { kind: 'overflow', count: 512 } });
    expect(calls).toEqual(['now 0+512']);
    expect((await backstore.read(8 * 512, 1024)).subarray(0, 512)).toEqual(Buffer.alloc(512, 0x11));
  });

  it('falls back to fetchDataOut when the bytes are not all there yet', async () => {
    const { fab, backstore } = rig();
    await clearUa(fab);
    const calls: string[] = [];
    const r = await write10(fab, 1024, {
      now: () => (calls.push('now'), undefined),
      later: (o, l) => (calls.push(`later ${o}+${l}`), Promise.resolve(Buffer.alloc(l, 0x5e))),
    });
    expect(r.status).toBe(GOOD);
    expect(calls).toEqual(['now', 'later 0+1024']);
    expect(await backstore.read(8 * 512, 1024)).toEqual(Buffer.alloc(1024, 0x5e));
  });
});

describe('command counters shared with the event-loop poller', () => {
  it('counts submitted commands and brings the in-flight count back to zero', async () => {
    const counter = new Float64Array(2);
    const core = new ScsiCore({ commandCounter: counter });
    const lu = core.addLogicalUnit({ id: 'd', backstore: new MemoryBackstore({ name: 'd', size: 64 * 512, blockSize: 512 }), serial: 'S1' });
    const target = core.createTarget({ name: 'iqn.2026-01.test:c' });
    const port = target.addPort({ name: 'iqn.2026-01.test:c,t,0x0001' });
    target.luns.set(0, lu);
    const fab = new LoopbackFabric(core.openNexus({ target, targetPort: port, initiator: loopbackInitiator('iqn.2026-01.test:i', '0x000000000001') }));
    const done: Promise<unknown>[] = [];
    for (let i = 0; i < 5; i++) done.push(fab.submit({ cdb: cdb10(0x28, i, 1), expectedLength: 512 }));
    expect(counter[0]).toBe(5);
    expect(counter[1]).toBeGreaterThan(0);
    await Promise.all(done);
    // A command rejected before it becomes active (an unknown LUN) is counted but never in flight.
    await fab.submit({ cdb: [0x00, 0, 0, 0, 0, 0], lun: 7 });
    expect(counter[0]).toBe(6);
    expect(counter[1]).toBe(0);
  });
});
