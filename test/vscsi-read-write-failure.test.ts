import { describe, expect, it } from 'vitest';
import { BackstoreError, type BackstoreCompletion } from '../src/backstores/backstore.js';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { CHECK, GOOD, cdb10, clearUa, decodeSense, promiseOnly, rig } from './vscsi-helpers.js';

/**
 * READ and WRITE hold the LU's read guard or range lock and a pooled buffer while the backstore works;
 * a failing backstore must leave neither behind — through its promise methods (a rejected promise or a
 * synchronous throw), through startRead/startWrite (a throw before anything started, or an error
 * told later to the command's completion) or through lendRead (a READ that borrows the stored bytes).
 */
type Failure = 'reject' | 'throw' | 'start throws' | 'told later' | 'lend throws';

function failingStore(how: Failure): MemoryBackstore {
  const mem = new MemoryBackstore({ name: 'failing', size: 1 << 20 });
  const error = (op: string) => {
    const e = new BackstoreError('io', `${op} failed on the test store`, 'EIO');
    e.reported = true; // keep the test's output free of the LU's first-failure log line
    return e;
  };
  if (how === 'reject' || how === 'throw') {
    const fail = (op: string) => {
      if (how === 'throw') throw error(op);
      return Promise.reject(error(op));
    };
    promiseOnly(mem);
    mem.read = () => fail('read');
    mem.write = () => fail('write');
    return mem;
  }
  const start = (op: string, done: BackstoreCompletion): boolean => {
    if (how === 'start throws' || how === 'lend throws') throw error(op);
    setImmediate(() => done.backstoreDone(error(op)));
    return false;
  };
  if (how === 'lend throws') {
    mem.lendRead = () => {
      throw error('read');
    };
  } else {
    Object.assign(mem, { lendRead: undefined });
    mem.startRead = (_o: number, _l: number, _into: Buffer, done: BackstoreCompletion) => start('read', done);
  }
  mem.startWrite = (_o: number, _d: Buffer, _f: boolean, done: BackstoreCompletion) => start('write', done);
  return mem;
}

describe.each<Failure>(['reject', 'throw', 'start throws', 'told later', 'lend throws'])('a backstore that fails (%s)', (how) => {
  it('READ answers MEDIUM ERROR / UNRECOVERED READ ERROR and leaves no read in progress', async () => {
    const { fab, lu } = rig({ backstore: failingStore(how) });
    await clearUa(fab);
    const r = await fab.submit({ cdb: cdb10(0x28, 8, 4), expectedLength: 2048 });
    expect(r.status).toBe(CHECK);
    expect(decodeSense(r.sense)).toMatchObject({ key: 0x3, asc: 0x11, ascq: 0x00 });
    expect(lu.unlockedReads).toBe(0);
  });

  it('WRITE answers MEDIUM ERROR / WRITE ERROR and releases its LBA range', async () => {
    const { fab, lu } = rig({ backstore: failingStore(how) });
    await clearUa(fab);
    const r = await fab.submit({ cdb: cdb10(0x2a, 8, 2), dataOut: Buffer.alloc(1024, 0x5a) });
    expect(r.status).toBe(CHECK);
    expect(decodeSense(r.sense)).toMatchObject({ key: 0x3, asc: 0x0c, ascq: 0x00 });
    expect(lu.rangeLock.heldCount).toBe(0);
    // An exclusive holder of the same blocks gets them at once.
    const release = lu.rangeLock.tryAcquire(8n, 2n);
    expect(release).toBeTypeOf('function');
    release!();
  });
});

describe('READ and WRITE against a working store', () => {
  it('round-trip data and release the range lock and read guard', async () => {
    const { fab, lu } = rig();
    await clearUa(fab);
    const data = Buffer.alloc(1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
    expect((await fab.submit({ cdb: cdb10(0x2a, 3, 2), dataOut: data })).status).toBe(GOOD);
    const r = await fab.submit({ cdb: cdb10(0x28, 3, 2), expectedLength: 1024 });
    expect(r.status).toBe(GOOD);
    expect(Buffer.compare(r.data!, data)).toBe(0);
    expect(lu.rangeLock.heldCount).toBe(0);
    expect(lu.unlockedReads).toBe(0);
  });
});

describe('READ from a store that lends its bytes', () => {
  it('sends the data as it was when the READ ran, whatever is written before the fabric is done', async () => {
    const { fab, lu } = rig();
    await clearUa(fab);
    expect((await fab.submit({ cdb: cdb10(0x2a, 16, 8), dataOut: Buffer.alloc(4096, 0x11) })).status).toBe(GOOD);
    // The loopback fabric keeps the READ's data and never gives it back: as if still being sent.
    const r = await fab.submit({ cdb: cdb10(0x28, 16, 8), expectedLength: 4096 });
    expect(r.status).toBe(GOOD);
    expect(r.data.every((v) => v === 0x11)).toBe(true);
    expect((await fab.submit({ cdb: cdb10(0x2a, 18, 2), dataOut: Buffer.alloc(1024, 0x22) })).status).toBe(GOOD);
    expect(r.data.every((v) => v === 0x11)).toBe(true);
    const again = await fab.submit({ cdb: cdb10(0x28, 16, 8), expectedLength: 4096 });
    expect(again.data.subarray(1024, 2048).every((v) => v === 0x22)).toBe(true);
    expect(again.data.subarray(0, 1024).every((v) => v === 0x11)).toBe(true);
    expect(lu.unlockedReads).toBe(0);
  });
});

describe('WRITE from a fabric that copies synchronously, to a store that lends its bytes', () => {
  /** A synchronous copy of `data` as a hypervisor fabric makes it, counting its calls. */
  const syncCopy = (data: Buffer, calls: { into: number }) => (offset: number, dst: Buffer) => {
    calls.into++;
    data.copy(dst, 0, offset, offset + dst.length);
    return true;
  };

  it('lands the data in the store without fetchDataOut, and a READ still sending the old data keeps it', async () => {
    const { fab, lu } = rig();
    await clearUa(fab);
    const calls = { into: 0 };
    const first = Buffer.alloc(4096, 0x31);
    expect((await fab.submit({ cdb: cdb10(0x2a, 40, 8), dataOut: first, fetchDataOutInto: syncCopy(first, calls) })).status).toBe(GOOD);
    expect(calls.into).toBe(1);
    const held = await fab.submit({ cdb: cdb10(0x28, 40, 8), expectedLength: 4096 }); // never released
    const second = Buffer.alloc(4096, 0x32);
    const w = await fab.submit({ cdb: cdb10(0x2a, 40, 8), dataOut: second, fetchDataOutInto: syncCopy(second, calls) });
    expect(w.status).toBe(GOOD);
    expect(calls.into).toBe(2);
    expect(held.data.equals(first)).toBe(true);
    expect((await fab.submit({ cdb: cdb10(0x28, 40, 8), expectedLength: 4096 })).data.equals(second)).toBe(true);
    expect(lu.rangeLock.heldCount).toBe(0);
  });

  it('a copy that fails part-way fails the WRITE with DATA PHASE ERROR and the LU goes on', async () => {
    const { fab, lu } = rig();
    await clearUa(fab);
    const data = Buffer.alloc(2048, 0x44);
    const r = await fab.submit({
      cdb: cdb10(0x2a, 8, 4),
      dataOut: data,
      fetchDataOutInto: (_offset, dst) => {
        dst.fill(0x44, 0, 1024);
        throw new Error('H_COPY_RDMA refused the second page');
      },
    });
    expect(r.status).toBe(CHECK);
    expect(decodeSense(r.sense)).toMatchObject({ key: 0xb, asc: 0x4b, ascq: 0x00 });
    expect(lu.rangeLock.heldCount).toBe(0);
    expect((await fab.submit({ cdb: cdb10(0x2a, 8, 4), dataOut: data })).status).toBe(GOOD);
    expect((await fab.submit({ cdb: cdb10(0x28, 8, 4), expectedLength: 2048 })).data.equals(data)).toBe(true);
  });

  it('falls back to fetchDataOut when the copy cannot be made at once or the range crosses chunks', async () => {
    const { fab } = rig(); // 64 KiB chunks
    await clearUa(fab);
    const calls = { into: 0 };
    const a = Buffer.alloc(1024, 0x51);
    const later = await fab.submit({ cdb: cdb10(0x2a, 0, 2), dataOut: a, fetchDataOutInto: () => (calls.into++, false) });
    expect(later.status).toBe(GOOD);
    expect(calls.into).toBe(1);
    expect((await fab.submit({ cdb: cdb10(0x28, 0, 2), expectedLength: 1024 })).data.equals(a)).toBe(true);
    const across = Buffer.alloc(2048, 0x52);
    const lbaBeforeChunkEnd = 65536 / 512 - 2;
    expect((await fab.submit({ cdb: cdb10(0x2a, lbaBeforeChunkEnd, 4), dataOut: across, fetchDataOutInto: syncCopy(across, calls) })).status).toBe(GOOD);
    expect(calls.into).toBe(1); // not asked: the store could not lend a range across two chunks
    expect((await fab.submit({ cdb: cdb10(0x28, lbaBeforeChunkEnd, 4), expectedLength: 2048 })).data.equals(across)).toBe(true);
  });

  it('a store out of memory fails the WRITE with SPACE ALLOCATION FAILED and releases the range', async () => {
    const mem = new MemoryBackstore({ name: 'small', size: 1 << 20, chunkSize: 65536, maxAllocatedBytes: 65536 });
    const { fab, lu } = rig({ backstore: mem });
    await clearUa(fab);
    const calls = { into: 0 };
    const data = Buffer.alloc(1024, 0x71);
    expect((await fab.submit({ cdb: cdb10(0x2a, 0, 2), dataOut: data, fetchDataOutInto: syncCopy(data, calls) })).status).toBe(GOOD);
    const r = await fab.submit({ cdb: cdb10(0x2a, 65536 / 512, 2), dataOut: data, fetchDataOutInto: syncCopy(data, calls) });
    expect(r.status).toBe(CHECK);
    expect(decodeSense(r.sense)).toMatchObject({ key: 0x7, asc: 0x27, ascq: 0x07 });
    expect(calls.into).toBe(1); // the second was refused before any copy
    expect(lu.rangeLock.heldCount).toBe(0);
    expect((await fab.submit({ cdb: cdb10(0x28, 0, 2), expectedLength: 1024 })).data.equals(data)).toBe(true);
  });

  it('writes only the whole blocks the initiator sends when it expects less than the CDB (overflow)', async () => {
    const { fab } = rig();
    await clearUa(fab);
    const calls = { into: 0 };
    const data = Buffer.alloc(1024, 0x61);
    const r = await fab.submit({ cdb: cdb10(0x2a, 100, 4), dataOut: data, expectedLength: 1024, fetchDataOutInto: syncCopy(data, calls) });
    expect(r.status).toBe(GOOD);
    expect(r.residual).toEqual({ kind: 'overflow', count: 1024 });
    expect(calls.into).toBe(1);
    const back = await fab.submit({ cdb: cdb10(0x28, 100, 4), expectedLength: 2048 });
    expect(back.data.subarray(0, 1024).equals(data)).toBe(true);
    expect(back.data.subarray(1024).every((v) => v === 0)).toBe(true);
  });
});

describe('commands finished together', () => {
  it('a failure finishing one command of a batch leaves the others to complete', async () => {
    const { fab } = rig();
    await clearUa(fab);
    // The memory store answers at once, so the three READs are finished in one batch.
    const nexus = (fab as unknown as { nexus: { buildCompletion: (...a: unknown[]) => unknown } }).nexus;
    const real = nexus.buildCompletion.bind(nexus);
    let calls = 0;
    nexus.buildCompletion = (...a: unknown[]) => {
      if (calls++ === 0) throw new Error('injected bug while finishing');
      return real(...a);
    };
    const results: number[] = [];
    const reads = [0, 1, 2].map((lba) => fab.submit({ cdb: cdb10(0x28, lba, 1), expectedLength: 512 }).then((r) => results.push(r.status)));
    await Promise.race([Promise.all(reads.slice(1)), new Promise((r) => setTimeout(r, 1000))]);
    expect(calls).toBe(3);
    expect(results).toEqual([GOOD, GOOD]);
    void reads[0];
  });
});
