/**
 * O_DIRECT without bounce copies: an O_DIRECT file backstore asks the core's buffer pool for aligned
 * buffers (Backstore.alignedBuffers -> BufferPool.alignTo), and the iSCSI receiver puts SCSI data in a
 * pooled buffer of its own (not behind the 48-byte header), so READ data-in and WRITE data-out reach
 * the kernel as they are. Before, every direct transfer was copied through a freshly allocated
 * aligned buffer (BENCHMARKS.md section 18).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileBackstore } from '../src/backstores/file.js';
import { IscsiServer } from '../src/iscsi/server.js';
import { alignedBuffer, isAligned } from '../src/native/io.js';
import { guardBackstore } from '../src/service/backstore-guard.js';
import { BufferPool, dataInPool } from '../src/vscsi/buffer-pool.js';
import { ScsiCore } from '../src/vscsi/core.js';
import { IscsiTestClient, cdb } from './helpers/iscsi-client.js';
import { pattern } from './helpers/iscsi-harness.js';

describe('BufferPool.alignTo', () => {
  it('makes aligned buffers from then on and does not take back older ones', () => {
    const pool = new BufferPool();
    const old = pool.acquire(8192);
    const oldIdle = pool.acquire(4096);
    oldIdle.release();
    expect(pool.idleBytes).toBe(4096);
    pool.alignTo(4096, (n) => alignedBuffer(n, 4096));
    expect(pool.alignment).toBe(4096);
    expect(pool.idleBytes).toBe(0); // the idle unaligned buffer was dropped
    old.release(); // made before: not taken back
    expect(pool.idleBytes).toBe(0);
    expect(pool.lent).toBe(0);
    for (const size of [512, 4096, 5000, 65536, 131072]) {
      const a = pool.acquire(size);
      expect(isAligned(a.data, 4096)).toBe(true);
      a.release();
    }
    expect(pool.idleBytes).toBeGreaterThan(0);
    // A weaker request changes nothing.
    let asked = 0;
    pool.alignTo(512, (n) => {
      asked++;
      return Buffer.allocUnsafeSlow(n);
    });
    expect(pool.alignment).toBe(4096);
    const b = pool.acquire(1 << 20);
    expect(isAligned(b.data, 4096)).toBe(true);
    expect(asked).toBe(0);
  });
});

describe('O_DIRECT file LU over iSCSI', () => {
  let dir: string;
  let store: FileBackstore | undefined;
  let core: ScsiCore;
  let server: IscsiServer;
  let port = 0;
  const IQN = 'iqn.2026-11.org.vtgt:direct';

  beforeAll(async () => {
    // /var/tmp is on a disk file system on most hosts; tmpfs may refuse O_DIRECT.
    dir = mkdtempSync(join('/var/tmp', 'vtgt-direct-'));
    try {
      store = FileBackstore.open({ name: 'dio', path: join(dir, 'dio.img'), size: 16 << 20, direct: true });
    } catch (e) {
      expect((e as Error).message).toMatch(/O_DIRECT/);
      return;
    }
    core = new ScsiCore();
    const target = core.createTarget({ name: IQN });
    // Through the service's error-reporting wrapper, which must pass the alignment request on.
    const guarded = guardBackstore(store, pino({ level: 'silent' }));
    expect(guarded.alignedBuffers?.alignment).toBe(4096);
    target.luns.set(0, core.addLogicalUnit({ id: 'dio', backstore: guarded, serial: 'DIO' }));
    expect(dataInPool.alignment).toBe(4096);
    server = new IscsiServer({ core, nopInterval: 0, nopTimeout: 0 });
    server.addTarget({ target, tpgt: 1, params: {} });
    port = (await server.addPortal({ host: '127.0.0.1', port: 0, tpgt: 1 })).port;
  });
  afterAll(async () => {
    await server?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function roundTrip(keys: Array<[string, string]>, seed: number): Promise<void> {
    const c = await IscsiTestClient.connect(port);
    expect((await c.login({ initiator: 'iqn.2026-11.test:direct', target: IQN, keys })).status).toBe(0);
    // 4 KiB as immediate data, 64 KiB split over TCP reads, 256 KiB partly solicited with R2T.
    const extents = [8, 128, 512, 8, 256].map((blocks, i) => ({ lba: i * 1024, blocks, data: pattern(blocks * 512, seed + i) }));
    for (const e of extents) expect((await c.scsi(cdb.write10(e.lba, e.blocks), { write: e.data })).status).toBe(0);
    for (const e of extents) {
      const r = await c.scsi(cdb.read10(e.lba, e.blocks), { read: e.blocks * 512 });
      expect(r.status).toBe(0);
      expect(r.data.equals(e.data)).toBe(true);
    }
    expect(await c.logout()).toBe(0);
  }

  it('reads and writes byte-exact without a single bounce copy', async (ctx) => {
    if (!store) return ctx.skip();
    await roundTrip(
      [
        ['ImmediateData', 'Yes'],
        ['InitialR2T', 'No'],
        ['FirstBurstLength', '65536'],
        ['MaxRecvDataSegmentLength', '262144'],
      ],
      1,
    );
    expect(store.bounced).toBe(0);
  });

  it('also with header and data digests (the data segment is followed by its CRC)', async (ctx) => {
    if (!store) return ctx.skip();
    await roundTrip(
      [
        ['HeaderDigest', 'CRC32C'],
        ['DataDigest', 'CRC32C'],
        ['ImmediateData', 'Yes'],
        ['InitialR2T', 'Yes'],
        ['MaxRecvDataSegmentLength', '65536'],
      ],
      20,
    );
    expect(store.bounced).toBe(0);
  });

  it('still bounces a caller buffer that is not aligned (and counts it)', async (ctx) => {
    if (!store) return ctx.skip();
    const before = store.bounced;
    const odd = Buffer.alloc(4096 + 8).subarray(8);
    pattern(4096, 7).copy(odd);
    await store.write(0, odd, false);
    expect((await store.read(0, 4096)).equals(pattern(4096, 7))).toBe(true);
    expect(store.bounced).toBeGreaterThan(before);
  });
});
