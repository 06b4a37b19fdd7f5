import { describe, expect, it } from 'vitest';
import type { LogicalUnit } from '../src/vscsi/core.js';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { GOOD, cdb10, clearUa, rig, senseOf } from './vscsi-helpers.js';

function targetDescriptor(lu: LogicalUnit): Buffer {
  const d = Buffer.alloc(32);
  d[0] = 0xe4;
  d[4] = 0x01; // binary
  d[5] = 0x03; // NAA, LU association
  d[7] = 16;
  d.writeBigUInt64BE(lu.naaId >> 64n, 8);
  d.writeBigUInt64BE(lu.naaId & 0xffffffffffffffffn, 16);
  d.writeUIntBE(lu.blockSize, 29, 3);
  return d;
}

function b2b(src: number, dst: number, blocks: number, srcLba: bigint, dstLba: bigint): Buffer {
  const s = Buffer.alloc(28);
  s[0] = 0x02;
  s.writeUInt16BE(0x18, 2);
  s.writeUInt16BE(src, 4);
  s.writeUInt16BE(dst, 6);
  s.writeUInt16BE(blocks, 10);
  s.writeBigUInt64BE(srcLba, 12);
  s.writeBigUInt64BE(dstLba, 20);
  return s;
}

function paramList(listId: number, usage: number, targets: Buffer[], segments: Buffer[]): Buffer {
  const h = Buffer.alloc(16);
  h[0] = listId;
  h[1] = usage << 3;
  const t = Buffer.concat(targets);
  const s = Buffer.concat(segments);
  h.writeUInt16BE(t.length, 2);
  h.writeUInt32BE(s.length, 8);
  return Buffer.concat([h, t, s]);
}

const xcopyCdb = (len: number) => {
  const c = Buffer.alloc(16);
  c[0] = 0x83;
  c.writeUInt32BE(len, 10);
  return [...c];
};
const rcr = (sa: number, listId: number) => [0x84, sa, listId, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0];

describe('EXTENDED COPY (LID1)', () => {
  it('copies blocks within an LU and reports the copy status for LIST ID USAGE 00b', async () => {
    const { fab, lu } = rig();
    await fab.submit({ cdb: cdb10(0x2a, 0, 8), dataOut: Buffer.alloc(8 * 512, 0x41) });
    const p = paramList(7, 0, [targetDescriptor(lu)], [b2b(0, 0, 8, 0n, 1000n)]);
    expect((await fab.submit({ cdb: xcopyCdb(p.length), dataOut: p })).status).toBe(GOOD);
    const back = await fab.submit({ cdb: cdb10(0x28, 1000, 8), expectedLength: 8 * 512 });
    expect(back.data.equals(Buffer.alloc(8 * 512, 0x41))).toBe(true);
    const st = await fab.submit({ cdb: rcr(0, 7), expectedLength: 1024 });
    expect(st.data[4]).toBe(1);
    expect(st.data.readUInt32BE(8)).toBe(8 * 512);
    expect(senseOf(await fab.submit({ cdb: rcr(0, 8), expectedLength: 1024 })).field?.byte).toBe(2);
  });

  it('copies overlapping ranges of one LU as if the whole source were read first, in either direction', async () => {
    // 3 MiB (three 1 MiB chunks) moved by 100 blocks, forwards and then backwards.
    const blocks = 6144;
    const { fab, lu } = rig({ blocks: 8192 });
    const image = Buffer.alloc((blocks + 100) * 512);
    for (let i = 0; i < image.length; i += 512) image.writeUInt32BE(i / 512, i);
    for (let lba = 0; lba < blocks + 100; lba += 128) {
      const n = Math.min(128, blocks + 100 - lba);
      expect((await fab.submit({ cdb: cdb10(0x2a, lba, n), dataOut: image.subarray(lba * 512, (lba + n) * 512) })).status).toBe(GOOD);
    }
    const blockAt = async (lba: number) => (await fab.submit({ cdb: cdb10(0x28, lba, 1), expectedLength: 512 })).data.readUInt32BE(0);

    const forward = paramList(1, 0, [targetDescriptor(lu)], [b2b(0, 0, blocks, 0n, 100n)]);
    expect((await fab.submit({ cdb: xcopyCdb(forward.length), dataOut: forward })).status).toBe(GOOD);
    for (const lba of [100, 101, 2147, 2148, 4196, blocks + 99]) expect(await blockAt(lba)).toBe(lba - 100);

    const backward = paramList(2, 0, [targetDescriptor(lu)], [b2b(0, 0, blocks, 100n, 0n)]);
    expect((await fab.submit({ cdb: xcopyCdb(backward.length), dataOut: backward })).status).toBe(GOOD);
    for (const lba of [0, 1, 2047, 2048, 4096, blocks - 1]) expect(await blockAt(lba)).toBe(lba);
  });

  it('rejects truncated lists, unknown descriptor types, too many descriptors; aborts unreachable copies', async () => {
    const { fab, lu } = rig();
    const good = paramList(1, 2, [targetDescriptor(lu)], [b2b(0, 0, 1, 0n, 1n)]);
    expect(senseOf(await fab.submit({ cdb: xcopyCdb(40), dataOut: good.subarray(0, 40) })).asc).toBe(0x1a);
    const badT = Buffer.from(good);
    badT[16] = 0xe0;
    expect(senseOf(await fab.submit({ cdb: xcopyCdb(badT.length), dataOut: badT })).ascq).toBe(0x07);
    const many = paramList(1, 2, [0, 1, 2].map(() => targetDescriptor(lu)), [b2b(0, 0, 1, 0n, 1n)]);
    expect(senseOf(await fab.submit({ cdb: xcopyCdb(many.length), dataOut: many })).ascq).toBe(0x06);
    const badIndex = paramList(1, 2, [targetDescriptor(lu)], [b2b(0, 1, 1, 0n, 1n)]);
    let s = senseOf(await fab.submit({ cdb: xcopyCdb(badIndex.length), dataOut: badIndex }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x0a, 0x0d, 0x02]);
    const eol = paramList(1, 2, [targetDescriptor(lu)], [b2b(0, 0, 8, 0n, 1020n)]);
    s = senseOf(await fab.submit({ cdb: xcopyCdb(eol.length), dataOut: eol }));
    expect(s.key).toBe(0x0a);
    expect((await fab.submit({ cdb: xcopyCdb(0) })).status).toBe(GOOD);
  });

  it('reports operating parameters', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: rcr(3, 0), expectedLength: 1024 });
    expect(r.status).toBe(GOOD);
    expect(r.data.readUInt16BE(8)).toBe(2);
    expect(r.data.readUInt32BE(0)).toBe(r.data.length - 4);
    expect([...r.data.subarray(44)]).toEqual([0x02, 0xe4]);
  });
});

describe('EXTENDED COPY and WRITE ATOMIC(16)', () => {
  it('does not copy a source range while an atomic write to it is in progress', async () => {
    const mem = new MemoryBackstore({ name: 'g', size: 1024 * 512 });
    // Hold the atomic write (the only write at offset 0) inside the backstore.
    const gates: Array<() => void> = [];
    const write = mem.write.bind(mem);
    mem.write = async (o: number, d: Buffer, f: boolean) => {
      if (o === 0) await new Promise<void>((r) => gates.push(r));
      return write(o, d, f);
    };
    const { fab, lu } = rig({ backstore: mem });
    await clearUa(fab);
    const wa = Buffer.alloc(16);
    wa[0] = 0x9c;
    wa.writeUInt16BE(1, 12); // one block at LBA 0
    const atomic = fab.submit({ cdb: [...wa], dataOut: Buffer.alloc(512, 0x77) });
    for (let i = 0; i < 10 && gates.length === 0; i++) await new Promise((r) => setImmediate(r));
    expect(gates).toHaveLength(1);
    const p = paramList(0, 0, [targetDescriptor(lu)], [b2b(0, 0, 1, 0n, 100n)]);
    let copied = false;
    const copy = fab.submit({ cdb: xcopyCdb(p.length), dataOut: p }).then((r) => ((copied = true), r));
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect(copied).toBe(false); // waits for the atomic write, as a READ of the range would
    gates.splice(0).forEach((g) => g());
    expect((await atomic).status).toBe(GOOD);
    expect((await copy).status).toBe(GOOD);
    const back = await fab.submit({ cdb: cdb10(0x28, 100, 1), expectedLength: 512 });
    expect(back.data.equals(Buffer.alloc(512, 0x77))).toBe(true);
  });
});
