/**
 * The data buffer pool (src/vscsi/buffer-pool.ts) and its use on the iSCSI path: READ data-in buffers
 * go back to the pool once the socket has written them, data-out copies once the command completed.
 * Reuse must never hand a buffer to a second command while the first still needs its bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BufferPool, dataInPool, releaseDataOut } from '../src/vscsi/buffer-pool.js';
import { ScsiStatus } from '../src/vscsi/fabric.js';
import { IscsiTestClient, cdb } from './helpers/iscsi-client.js';
import { PipelinedSession } from './helpers/iscsi-load-client.js';
import { IQN, pattern, startTarget } from './helpers/iscsi-harness.js';
import { PduReceiver } from '../src/iscsi/receiver.js';

describe('BufferPool', () => {
  it('lends exactly the requested length and reuses a released buffer of the same class', () => {
    const pool = new BufferPool();
    const a = pool.acquire(4096);
    expect(a.data.length).toBe(4096);
    expect(pool.lent).toBe(1);
    const backing = a.data.buffer;
    a.release();
    a.release(); // a second release is ignored
    expect(pool.lent).toBe(0);
    expect(pool.idleBytes).toBe(4096);
    const b = pool.acquire(3000); // same 4 KiB class, a view of the same memory
    expect(b.data.length).toBe(3000);
    expect(b.data.buffer).toBe(backing);
    const c = pool.acquire(4096); // the class is empty now: a new buffer
    expect(c.data.buffer).not.toBe(backing);
    b.release();
    c.release();
    expect(pool.idleBytes).toBe(8192);
  });

  it('takes the data-out buffers back after a completion, not after TASK ABORTED', () => {
    const pool = new BufferPool();
    const done = [pool.acquire(4096), pool.acquire(8192)];
    releaseDataOut(done.map((l) => l.release), ScsiStatus.CHECK_CONDITION);
    expect(pool.lent).toBe(0);
    expect(pool.idleBytes).toBe(4096 + 8192);
    const aborted = pool.acquire(4096);
    releaseDataOut([aborted.release], ScsiStatus.TASK_ABORTED);
    expect(pool.lent).toBe(1); // left to the garbage collector
    releaseDataOut(undefined, ScsiStatus.GOOD);
  });

  it('rounds up to power-of-two classes and does not pool beyond 1 MiB', () => {
    const pool = new BufferPool();
    const a = pool.acquire(5000);
    expect(a.data.length).toBe(5000);
    expect(a.data.buffer.byteLength).toBeGreaterThanOrEqual(8192);
    a.release();
    const big = pool.acquire((1 << 20) + 1);
    expect(big.data.length).toBe((1 << 20) + 1);
    big.release();
    expect(pool.lent).toBe(0);
    expect(pool.idleBytes).toBe(8192); // the 1 MiB+1 buffer was not kept
  });

  it('keeps at most 8 MiB idle per class', () => {
    const pool = new BufferPool();
    const lent = Array.from({ length: 12 }, () => pool.acquire(1 << 20));
    for (const l of lent) l.release();
    expect(pool.lent).toBe(0);
    expect(pool.idleBytes).toBe(8 << 20);
  });
});

describe('pooled buffers on the iSCSI path', () => {
  let t: Awaited<ReturnType<typeof startTarget>>;
  beforeAll(async () => {
    t = await startTarget(['--lun', '0=memory:64M']);
  });
  afterAll(async () => {
    await t.close();
  });

  it('serves concurrent reads and writes byte-exact while buffers are recycled, and gets every buffer back', async () => {
    const c = await IscsiTestClient.connect(t.ports[0]!);
    const r = await c.login({
      initiator: 'iqn.2026-11.test:pool',
      target: IQN,
      keys: [
        ['ImmediateData', 'Yes'],
        ['InitialR2T', 'No'],
        ['FirstBurstLength', '262144'],
        ['MaxRecvDataSegmentLength', '262144'],
      ],
    });
    expect(r.status).toBe(0);
    const s = new PipelinedSession(c);
    // 4 KiB and 64 KiB extents (the latter arrive split over TCP reads, so they are copied into pooled
    // buffers), each with its own pattern, written concurrently.
    const extents = Array.from({ length: 48 }, (_, i) => {
      const blocks = i % 3 === 0 ? 128 : 8;
      return { lba: i * 256, blocks, data: pattern(blocks * 512, i + 1) };
    });
    const writes = await Promise.all(extents.map((e) => s.command(cdb.write10(e.lba, e.blocks), { write: e.data })));
    expect(writes.every((w) => w.status === 0)).toBe(true);
    // Many rounds of concurrent reads: a buffer recycled too early would show another extent's bytes.
    for (let round = 0; round < 6; round++) {
      const order = extents.map((_, i) => (i * 7 + round * 5) % extents.length);
      const reads = await Promise.all(order.map((i) => s.command(cdb.read10(extents[i]!.lba, extents[i]!.blocks), { read: extents[i]!.blocks * 512 })));
      reads.forEach((rd, k) => {
        expect(rd.status).toBe(0);
        expect(rd.data.equals(extents[order[k]!]!.data)).toBe(true);
      });
    }
    await s.close();
    // Write callbacks run after the last response was sent: give the loop a moment.
    for (let i = 0; i < 50 && dataInPool.lent > 0; i++) await new Promise((res) => setTimeout(res, 10));
    expect(dataInPool.lent).toBe(0);
    expect(dataInPool.idleBytes).toBeGreaterThan(0);
  });
});

describe('PduReceiver with a reused receive buffer (copyOut)', () => {
  /** A SCSI Command PDU (opcode 0x01) with `data` as immediate data. */
  function commandPdu(itt: number, data: Buffer): Buffer {
    const bhs = Buffer.alloc(48);
    bhs[0] = 0x01;
    bhs[1] = 0xa0; // F + W
    bhs.writeUIntBE(data.length, 5, 3);
    bhs.writeUInt32BE(itt, 16);
    const pad = (4 - (data.length & 3)) & 3;
    return Buffer.concat([bhs, data, Buffer.alloc(pad)]);
  }

  it('hands out PDUs that survive the transport overwriting its buffer, at every split point', () => {
    const wire = Buffer.concat([commandPdu(1, pattern(5000, 1)), commandPdu(2, pattern(700, 2)), commandPdu(3, Buffer.alloc(0))]);
    for (let cut = 1; cut < wire.length; cut += 97) {
      const rx = new PduReceiver({ headerDigest: false, dataDigest: false, maxRecvDataSegmentLength: 65536 });
      rx.copyOut = true;
      const got: Array<{ itt: number; data: Buffer; release?: () => void }> = [];
      const reused = Buffer.alloc(wire.length);
      for (const [from, to] of [[0, cut], [cut, wire.length]] as const) {
        wire.copy(reused, 0, from, to);
        rx.push(reused.subarray(0, to - from));
        for (let r = rx.next(); r.kind === 'pdu'; r = rx.next()) got.push({ itt: r.pdu.bhs.readUInt32BE(16), data: r.pdu.data, release: r.pdu.release });
        rx.detach();
        reused.fill(0xee); // the next socket read overwrites the buffer
      }
      expect(got.map((g) => g.itt)).toEqual([1, 2, 3]);
      expect(got[0]!.data.equals(pattern(5000, 1))).toBe(true);
      expect(got[1]!.data.equals(pattern(700, 2))).toBe(true);
      expect(got[2]!.data.length).toBe(0);
      for (const g of got) g.release?.();
    }
    expect(dataInPool.lent).toBe(0);
  });
});
