import { describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { BackstoreError, type BackstoreCompletion } from '../src/backstores/backstore.js';
import { GOOD, cdb10, cdb16, decodeSense, promiseOnly, rig, senseOf } from './vscsi-helpers.js';

const BS = 512;
const fill = (blocks: number, byte: number) => Buffer.alloc(blocks * BS, byte);

describe('READ CAPACITY', () => {
  it('(10) reports last LBA and block size; LBA without PMI is invalid', async () => {
    const { fab } = rig({ blocks: 1000 });
    const r = await fab.submit({ cdb: [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], expectedLength: 8 });
    expect(r.data.readUInt32BE(0)).toBe(999);
    expect(r.data.readUInt32BE(4)).toBe(512);
    expect(senseOf(await fab.submit({ cdb: [0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0], expectedLength: 8 })).field?.byte).toBe(2);
  });

  it('(16) reports LBPME/LBPRZ and honours the allocation length', async () => {
    const { fab } = rig({ blocks: 2048, blockSize: 4096 });
    const cdb = [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
    const r = await fab.submit({ cdb, expectedLength: 32 });
    expect(r.data.readBigUInt64BE(0)).toBe(2047n);
    expect(r.data.readUInt32BE(8)).toBe(4096);
    expect(r.data[14]! & 0xc0).toBe(0xc0);
    const short = await fab.submit({ cdb: [...cdb.slice(0, 13), 12, 0, 0], expectedLength: 12 });
    expect(short.data.length).toBe(12);
  });
});

describe('READ and WRITE', () => {
  it('round-trips data with WRITE(6/10/12/16) and READ(6/10/12/16)', async () => {
    const { fab } = rig();
    const w10 = await fab.submit({ cdb: cdb10(0x2a, 10, 2), dataOut: fill(2, 0xaa) });
    expect(w10.status).toBe(GOOD);
    expect(w10.residual).toEqual({ kind: 'none' });
    const r10 = await fab.submit({ cdb: cdb10(0x28, 10, 2), expectedLength: 1024 });
    expect(r10.data.equals(fill(2, 0xaa))).toBe(true);
    await fab.submit({ cdb: [0x0a, 0, 0, 20, 1, 0], dataOut: fill(1, 0x66) });
    expect((await fab.submit({ cdb: [0x08, 0, 0, 20, 1, 0], expectedLength: 512 })).data.equals(fill(1, 0x66))).toBe(true);
    await fab.submit({ cdb: cdb16(0x8a, 30n, 1), dataOut: fill(1, 0x16) });
    expect((await fab.submit({ cdb: cdb16(0x88, 30n, 1), expectedLength: 512 })).data[0]).toBe(0x16);
    const w12 = [0xaa, 0, 0, 0, 0, 40, 0, 0, 0, 1, 0, 0];
    await fab.submit({ cdb: w12, dataOut: fill(1, 0x12) });
    expect((await fab.submit({ cdb: [0xa8, ...w12.slice(1)], expectedLength: 512 })).data[511]).toBe(0x12);
  });

  it('READ(6) with transfer length 0 reads 256 blocks', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: [0x08, 0, 0, 0, 0, 0], expectedLength: 256 * BS });
    expect(r.status).toBe(GOOD);
    expect(r.data.length).toBe(256 * BS);
  });

  it('FUA reaches the backstore (write)', async () => {
    const seen: boolean[] = [];
    const mem = promiseOnly(new MemoryBackstore({ name: 'm', size: 1 << 20 }));
    const orig = mem.write.bind(mem);
    mem.write = (o: number, d: Buffer, fua: boolean) => {
      seen.push(fua);
      return orig(o, d, fua);
    };
    const { fab } = rig({ backstore: mem });
    await fab.submit({ cdb: cdb10(0x2a, 0, 1, 0x08), dataOut: fill(1, 1) });
    await fab.submit({ cdb: cdb10(0x2a, 0, 1, 0x10), dataOut: fill(1, 1) });
    expect(seen).toEqual([true, false]);
  });

  it('FUA reaches the backstore (startWrite)', async () => {
    const seen: boolean[] = [];
    const mem = new MemoryBackstore({ name: 'm', size: 1 << 20 });
    const orig = mem.startWrite.bind(mem);
    mem.startWrite = (o: number, d: Buffer, fua: boolean, done: BackstoreCompletion) => {
      seen.push(fua);
      return orig(o, d, fua, done);
    };
    const { fab } = rig({ backstore: mem });
    await fab.submit({ cdb: cdb10(0x2a, 0, 1, 0x08), dataOut: fill(1, 1) });
    await fab.submit({ cdb: cdb10(0x2a, 0, 1, 0x10), dataOut: fill(1, 1) });
    expect(seen).toEqual([true, false]);
  });

  it.each([
    ['LBA past the end', cdb10(0x28, 1024, 1)],
    ['range crossing the end', cdb10(0x28, 1020, 8)],
    ['LBA 2^63 (16)', cdb16(0x88, 1n << 63n, 1)],
    ['LBA -1 (16)', cdb16(0x88, -1n, 1)],
    ['0 blocks beyond the end', cdb10(0x28, 1025, 0)],
  ])('%s → LBA OUT OF RANGE', async (_n, cdb) => {
    const { fab } = rig();
    const s = senseOf(await fab.submit({ cdb, expectedLength: 4096 }));
    expect([s.key, s.asc]).toEqual([0x5, 0x21]);
  });

  it('0 blocks at the end and at LBA 0 is GOOD with no data', async () => {
    const { fab } = rig();
    for (const lba of [0, 1024]) {
      const r = await fab.submit({ cdb: cdb10(0x28, lba, 0) });
      expect(r.status).toBe(GOOD);
      expect(r.data.length).toBe(0);
      expect((await fab.submit({ cdb: cdb10(0x2a, lba, 0) })).status).toBe(GOOD);
    }
  });

  it('RDPROTECT/WRPROTECT are rejected (no protection information)', async () => {
    const { fab } = rig();
    expect(senseOf(await fab.submit({ cdb: cdb10(0x28, 0, 1, 0x20), expectedLength: 512 })).field).toEqual({ inCdb: true, byte: 1, bit: 7 });
    expect(senseOf(await fab.submit({ cdb: cdb16(0x8a, 0n, 1, 0x40), dataOut: fill(1, 0) })).field?.byte).toBe(1);
  });

  it('accepts DPO, FUA and FUA_NV on reads', async () => {
    const { fab } = rig();
    expect((await fab.submit({ cdb: cdb10(0x28, 0, 1, 0x1a), expectedLength: 512 })).status).toBe(GOOD);
  });

  it('transfer length over the block limit is INVALID FIELD IN CDB', async () => {
    const { fab } = rig({ blocks: 70000 });
    const s = senseOf(await fab.submit({ cdb: cdb16(0x88, 0n, 65537), expectedLength: 65537 * BS }));
    expect(s.field?.byte).toBe(10);
  });

  it('write-protected LUs answer DATA PROTECT', async () => {
    const ro = rig({ readOnly: true });
    let s = senseOf(await ro.fab.submit({ cdb: cdb10(0x2a, 0, 1), dataOut: fill(1, 0) }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x7, 0x27, 0x00]);
    expect((await ro.fab.submit({ cdb: cdb10(0x28, 0, 1), expectedLength: 512 })).status).toBe(GOOD);
    const sw = rig();
    sw.lu.mode.swp = true;
    s = senseOf(await sw.fab.submit({ cdb: cdb16(0x93, 0n, 1), dataOut: fill(1, 0) }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x7, 0x27, 0x02]);
  });
});

describe('residuals', () => {
  it('READ with expected length 0: nothing sent, overflow of one block', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: cdb10(0x28, 0, 1), expectedLength: 0, direction: 'read' });
    expect(r.status).toBe(GOOD);
    expect(r.data.length).toBe(0);
    expect(r.residual).toEqual({ kind: 'overflow', count: 512 });
  });

  it('READ with a larger expected length: underflow', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: cdb10(0x28, 0, 1), expectedLength: 10000 });
    expect(r.residual).toEqual({ kind: 'underflow', count: 10000 - 512 });
    expect(r.data.length).toBe(512);
  });

  it('READ of two blocks with one expected: one block sent, overflow', async () => {
    const { fab } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 0, 2), dataOut: Buffer.concat([fill(1, 1), fill(1, 2)]) });
    const r = await fab.submit({ cdb: cdb10(0x28, 0, 2), expectedLength: 512 });
    expect(r.data.equals(fill(1, 1))).toBe(true);
    expect(r.residual).toEqual({ kind: 'overflow', count: 512 });
  });

  it.each([
    // blocks in CDB, expected length, residual kind, residual count, blocks written
    [1, 0, 'overflow', 512, 0],
    [1, 10000, 'underflow', 10000 - 512, 1],
    [2, 512, 'overflow', 512, 1],
    [1, 1024, 'underflow', 512, 1],
  ])('WRITE of %i blocks with expected length %i: GOOD, %s %i, %i block(s) written', async (blocks, edtl, kind, count, written) => {
    const { fab } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 0, 2), dataOut: fill(2, 0x61) });
    const r = await fab.submit({ cdb: cdb10(0x2a, 0, blocks), dataOut: Buffer.alloc(edtl, 0x62), direction: 'write' });
    expect(r.status).toBe(GOOD);
    expect(r.residual).toEqual({ kind, count });
    const back = await fab.submit({ cdb: cdb10(0x28, 0, 2), expectedLength: 1024 });
    expect(back.data.equals(Buffer.concat([fill(written, 0x62), fill(2 - written, 0x61)]))).toBe(true);
  });

  it('WRITE with a partial block expected: INVALID FIELD IN CIU, overflow, nothing written', async () => {
    const { fab } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 0, 1), dataOut: fill(1, 0x61) });
    const r = await fab.submit({ cdb: cdb10(0x2a, 0, 1), dataOut: Buffer.alloc(200, 0x62) });
    const s = senseOf(r);
    expect([s.key, s.asc, s.ascq]).toEqual([0x5, 0x0e, 0x03]);
    expect(r.residual).toEqual({ kind: 'overflow', count: 312 });
    expect((await fab.submit({ cdb: cdb10(0x28, 0, 1), expectedLength: 512 })).data.equals(fill(1, 0x61))).toBe(true);
  });

  it('WRITE SAME with the wrong data-out size fails and writes nothing', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: cdb10(0x41, 0, 4), dataOut: fill(2, 0x33) });
    expect(senseOf(r).asc).toBe(0x0e);
    expect((await fab.submit({ cdb: cdb10(0x28, 0, 1), expectedLength: 512 })).data.equals(fill(1, 0))).toBe(true);
  });
});

describe('protocol mismatches and defect data', () => {
  it('a READ flagged as a write transfers no data-in and succeeds (libiscsi Read10Invalid)', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: cdb10(0x28, 0, 1), dataOut: Buffer.alloc(512) });
    expect(r.status).toBe(GOOD);
    expect(r.data.length).toBe(0);
  });

  it('READ DEFECT DATA(10/12) report empty valid lists in the requested format', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: [0x37, 0, 0x1d, 0, 0, 0, 0, 0, 32, 0], expectedLength: 32 });
    expect(r.status).toBe(GOOD);
    expect([...r.data]).toEqual([0, 0x1d, 0, 0]);
    const t = await fab.submit({ cdb: [0xb7, 0x08, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], expectedLength: 32 });
    expect([...t.data]).toEqual([0, 0x08, 0, 0, 0, 0, 0, 0]);
  });
});

describe('WRITE AND VERIFY, VERIFY', () => {
  it('WRITE AND VERIFY writes, and BYTCHK=1 verifies', async () => {
    const { fab } = rig();
    expect((await fab.submit({ cdb: cdb10(0x2e, 5, 1, 0x02), dataOut: fill(1, 9) })).status).toBe(GOOD);
    expect((await fab.submit({ cdb: cdb10(0x28, 5, 1), expectedLength: 512 })).data[100]).toBe(9);
    expect(senseOf(await fab.submit({ cdb: cdb10(0x2e, 1023, 2), dataOut: fill(2, 9) })).asc).toBe(0x21);
  });

  it('VERIFY BYTCHK=1 compares block data and reports the miscompare offset', async () => {
    const { fab } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 0, 2), dataOut: fill(2, 7) });
    expect((await fab.submit({ cdb: cdb10(0x2f, 0, 2, 0x02), dataOut: fill(2, 7) })).status).toBe(GOOD);
    const bad = fill(2, 7);
    bad[700] = 8;
    const s = senseOf(await fab.submit({ cdb: cdb10(0x2f, 0, 2, 0x02), dataOut: bad }));
    expect([s.key, s.asc]).toEqual([0xe, 0x1d]);
    expect(s.information).toBe(700n);
  });

  it('VERIFY BYTCHK=3 compares one block against each; BYTCHK=0 checks the range only; BYTCHK=2 invalid', async () => {
    const { fab } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 0, 3), dataOut: fill(3, 4) });
    expect((await fab.submit({ cdb: cdb10(0x2f, 0, 3, 0x06), dataOut: fill(1, 4) })).status).toBe(GOOD);
    expect(senseOf(await fab.submit({ cdb: cdb10(0x2f, 0, 4, 0x06), dataOut: fill(1, 4) })).key).toBe(0xe);
    expect((await fab.submit({ cdb: cdb16(0x8f, 0n, 8) })).status).toBe(GOOD);
    expect(senseOf(await fab.submit({ cdb: cdb16(0x8f, 1020n, 8) })).asc).toBe(0x21);
    expect(senseOf(await fab.submit({ cdb: cdb10(0x2f, 0, 1, 0x04) })).field).toEqual({ inCdb: true, byte: 1, bit: 2 });
  });
});

describe('SYNCHRONIZE CACHE and PRE-FETCH', () => {
  it('flush reaches the backstore; ranges are checked', async () => {
    const mem = new MemoryBackstore({ name: 'm', size: 1 << 20 });
    let flushes = 0;
    mem.flush = () => {
      flushes++;
      return Promise.resolve();
    };
    const { fab } = rig({ backstore: mem });
    expect((await fab.submit({ cdb: cdb10(0x35, 0, 0) })).status).toBe(GOOD);
    expect((await fab.submit({ cdb: cdb16(0x91, 0n, 0) })).status).toBe(GOOD);
    expect(flushes).toBe(2);
    expect(senseOf(await fab.submit({ cdb: cdb10(0x35, 2048, 1) })).asc).toBe(0x21);
    expect((await fab.submit({ cdb: cdb10(0x34, 0, 8) })).status).toBe(GOOD);
    expect(senseOf(await fab.submit({ cdb: cdb16(0x90, 2047n, 2) })).asc).toBe(0x21);
  });
});

describe('WRITE SAME and UNMAP', () => {
  it('WRITE SAME(10) replicates the block; 0 blocks writes through the last LBA (WSNZ=0)', async () => {
    const { fab } = rig();
    expect((await fab.submit({ cdb: cdb10(0x41, 100, 4), dataOut: fill(1, 0x5a) })).status).toBe(GOOD);
    const r = await fab.submit({ cdb: cdb10(0x28, 100, 4), expectedLength: 2048 });
    expect(r.data.equals(fill(4, 0x5a))).toBe(true);
    expect((await fab.submit({ cdb: cdb10(0x41, 1020, 0), dataOut: fill(1, 0x77) })).status).toBe(GOOD);
    const tail = await fab.submit({ cdb: cdb10(0x28, 1019, 5), expectedLength: 5 * BS });
    expect(tail.data.equals(Buffer.concat([fill(1, 0), fill(4, 0x77)]))).toBe(true);
    expect(senseOf(await fab.submit({ cdb: cdb10(0x41, 1024, 0), dataOut: fill(1, 0) })).asc).toBe(0x21);
    expect(senseOf(await fab.submit({ cdb: cdb10(0x41, 1025, 0), dataOut: fill(1, 0) })).asc).toBe(0x21);
    expect(senseOf(await fab.submit({ cdb: cdb10(0x41, 1023, 2), dataOut: fill(1, 0) })).asc).toBe(0x21);
  });

  it('WRITE SAME with 0 blocks beyond MAXIMUM WRITE SAME LENGTH is invalid', async () => {
    const { fab } = rig({ blocks: 0x400001 });
    expect(senseOf(await fab.submit({ cdb: cdb16(0x93, 0n, 0, 0x01) })).field).toEqual({ inCdb: true, byte: 10 });
    expect((await fab.submit({ cdb: cdb16(0x93, 1n, 0, 0x09) })).status).toBe(GOOD);
  });

  it('WRITE SAME(16) with UNMAP deallocates and reads back zeroes; NDOB needs no data', async () => {
    const { fab, backstore } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 0, 256), dataOut: fill(256, 3) });
    expect((await fab.submit({ cdb: cdb16(0x93, 0n, 128, 0x08), dataOut: fill(1, 0) })).status).toBe(GOOD);
    expect((await fab.submit({ cdb: cdb16(0x93, 128n, 128, 0x09) })).status).toBe(GOOD);
    const r = await fab.submit({ cdb: cdb10(0x28, 0, 256), expectedLength: 256 * BS });
    expect(r.data.equals(fill(256, 0))).toBe(true);
    const ext = await backstore.mapStatus(0, 256 * BS);
    expect(ext.every((e) => !e.mapped)).toBe(true);
  });

  it('WRITE SAME(10) with UNMAP deallocates even when the pattern is not zero', async () => {
    const { fab } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 1000, 24), dataOut: fill(24, 0xff) });
    expect((await fab.submit({ cdb: cdb10(0x41, 1000, 0, 0x08), dataOut: fill(1, 0xff) })).status).toBe(GOOD);
    const r = await fab.submit({ cdb: cdb10(0x28, 1000, 24), expectedLength: 24 * BS });
    expect(r.data.equals(fill(24, 0))).toBe(true);
  });

  it('ANCHOR is rejected', async () => {
    const { fab } = rig();
    expect(senseOf(await fab.submit({ cdb: cdb16(0x93, 0n, 1, 0x10), dataOut: fill(1, 0) })).field).toEqual({ inCdb: true, byte: 1, bit: 4 });
    expect(senseOf(await fab.submit({ cdb: [0x42, 1, 0, 0, 0, 0, 0, 0, 24, 0], dataOut: Buffer.alloc(24) })).field?.bit).toBe(0);
  });

  const unmapList = (ranges: Array<[bigint, number]>) => {
    const b = Buffer.alloc(8 + 16 * ranges.length);
    b.writeUInt16BE(b.length - 2, 0);
    b.writeUInt16BE(16 * ranges.length, 2);
    ranges.forEach(([lba, n], i) => {
      b.writeBigUInt64BE(lba, 8 + 16 * i);
      b.writeUInt32BE(n, 16 + 16 * i);
    });
    return b;
  };
  const unmapCdb = (len: number) => [0x42, 0, 0, 0, 0, 0, 0, len >> 8, len & 0xff, 0];

  it('UNMAP deallocates each range; PLL 0 is a no-op; short lists and bad ranges fail', async () => {
    const { fab, backstore } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 0, 256), dataOut: fill(256, 3) });
    const list = unmapList([
      [0n, 128],
      [128n, 128],
    ]);
    expect((await fab.submit({ cdb: unmapCdb(list.length), dataOut: list })).status).toBe(GOOD);
    expect((await backstore.mapStatus(0, 256 * BS)).every((e) => !e.mapped)).toBe(true);
    expect((await fab.submit({ cdb: unmapCdb(0) })).status).toBe(GOOD);
    expect(senseOf(await fab.submit({ cdb: unmapCdb(4), dataOut: Buffer.alloc(4) })).asc).toBe(0x1a);
    const oob = unmapList([[1020n, 8]]);
    expect(senseOf(await fab.submit({ cdb: unmapCdb(oob.length), dataOut: oob })).asc).toBe(0x21);
  });

  it('UNMAP with a parameter list longer than the expected length fails; shorter expected is underflow', async () => {
    const { fab } = rig();
    const list = unmapList([[0n, 1]]);
    const r = await fab.submit({ cdb: unmapCdb(list.length), dataOut: list.subarray(0, 8), direction: 'write' });
    expect(senseOf(r).field?.byte).toBe(7);
    const u = await fab.submit({ cdb: unmapCdb(list.length), dataOut: Buffer.concat([list, Buffer.alloc(8)]) });
    expect(u.status).toBe(GOOD);
    expect(u.residual).toEqual({ kind: 'underflow', count: 8 });
  });
});

describe('COMPARE AND WRITE and ORWRITE', () => {
  const caw = (lba: bigint, n: number) => {
    const b = Buffer.alloc(16);
    b[0] = 0x89;
    b.writeBigUInt64BE(lba, 2);
    b[13] = n;
    return [...b];
  };

  it('writes when the compare matches, reports MISCOMPARE with the offset otherwise', async () => {
    const { fab } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 8, 2), dataOut: fill(2, 1) });
    expect((await fab.submit({ cdb: caw(8n, 2), dataOut: Buffer.concat([fill(2, 1), fill(2, 2)]) })).status).toBe(GOOD);
    const bad = fill(2, 2);
    bad[513] = 9;
    const s = senseOf(await fab.submit({ cdb: caw(8n, 2), dataOut: Buffer.concat([bad, fill(2, 3)]) }));
    expect([s.key, s.asc, s.information]).toEqual([0xe, 0x1d, 513n]);
    expect((await fab.submit({ cdb: cdb10(0x28, 8, 2), expectedLength: 1024 })).data.equals(fill(2, 2))).toBe(true);
    expect((await fab.submit({ cdb: caw(8n, 0) })).status).toBe(GOOD);
    // 256 blocks wrap to 0 in the one-byte field: the data-out size gives it away.
    expect(senseOf(await fab.submit({ cdb: caw(8n, 0), dataOut: fill(4, 1) })).field).toEqual({ inCdb: true, byte: 13 });
    expect(senseOf(await fab.submit({ cdb: caw(1023n, 2), dataOut: fill(4, 0) })).asc).toBe(0x21);
  });

  it('concurrent COMPARE AND WRITEs on one range: exactly one wins', async () => {
    const { fab, other } = rig();
    const b = other();
    await fab.submit({ cdb: cdb10(0x2a, 0, 1), dataOut: fill(1, 0) });
    const results = await Promise.all([
      fab.submit({ cdb: caw(0n, 1), dataOut: Buffer.concat([fill(1, 0), fill(1, 1)]) }),
      b.submit({ cdb: caw(0n, 1), dataOut: Buffer.concat([fill(1, 0), fill(1, 2)]) }),
    ]);
    expect(results.filter((r) => r.status === GOOD).length).toBe(1);
    expect(results.filter((r) => r.status === 2 && decodeSense(r.sense).key === 0xe).length).toBe(1);
  });

  it('ORWRITE ORs the data into the medium', async () => {
    const { fab } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 3, 1), dataOut: fill(1, 0x0f) });
    expect((await fab.submit({ cdb: cdb16(0x8b, 3n, 1), dataOut: fill(1, 0xf0) })).status).toBe(GOOD);
    expect((await fab.submit({ cdb: cdb10(0x28, 3, 1), expectedLength: 512 })).data.equals(fill(1, 0xff))).toBe(true);
  });
});

describe('GET LBA STATUS', () => {
  const gls = (lba: bigint, alloc: number) => {
    const b = Buffer.alloc(16);
    b[0] = 0x9e;
    b[1] = 0x12;
    b.writeBigUInt64BE(lba, 2);
    b.writeUInt32BE(alloc, 10);
    return [...b];
  };

  it('reports mapped and deallocated extents from the requested LBA', async () => {
    const { fab } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 0, 128), dataOut: fill(128, 1) });
    const r = await fab.submit({ cdb: gls(0n, 1024), expectedLength: 1024 });
    expect(r.status).toBe(GOOD);
    const n = (r.data.readUInt32BE(0) - 4) / 16;
    expect(n).toBeGreaterThanOrEqual(2);
    expect(r.data.readBigUInt64BE(8)).toBe(0n);
    expect(r.data.readUInt32BE(16)).toBe(128);
    expect(r.data[20]).toBe(0);
    expect(r.data.readBigUInt64BE(24)).toBe(128n);
    expect(r.data[36]).toBe(1);
    expect(senseOf(await fab.submit({ cdb: gls(1024n, 64), expectedLength: 64 })).asc).toBe(0x21);
  });
});

describe('backstore errors', () => {
  it('map to MEDIUM ERROR / SPACE ALLOCATION FAILED and the LU keeps serving', async () => {
    const mem = promiseOnly(new MemoryBackstore({ name: 'm', size: 1 << 20 }));
    let mode: 'io' | 'nospace' | undefined = 'io';
    const orig = mem.write.bind(mem);
    mem.write = (o: number, d: Buffer, f: boolean) => (mode ? Promise.reject(new BackstoreError(mode, 'injected')) : orig(o, d, f));
    const origRead = mem.read.bind(mem);
    mem.read = (o: number, l: number) => (mode === 'io' ? Promise.reject(new BackstoreError('io', 'injected')) : origRead(o, l));
    const { fab } = rig({ backstore: mem });
    let s = senseOf(await fab.submit({ cdb: cdb10(0x2a, 0, 1), dataOut: fill(1, 1) }));
    expect([s.key, s.asc]).toEqual([0x3, 0x0c]);
    s = senseOf(await fab.submit({ cdb: cdb10(0x28, 0, 1), expectedLength: 512 }));
    expect([s.key, s.asc]).toEqual([0x3, 0x11]);
    mode = 'nospace';
    s = senseOf(await fab.submit({ cdb: cdb10(0x2a, 0, 1), dataOut: fill(1, 1) }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x7, 0x27, 0x07]);
    mode = undefined;
    expect((await fab.submit({ cdb: cdb10(0x2a, 0, 1), dataOut: fill(1, 1) })).status).toBe(GOOD);
  });
});
