import { describe, expect, it } from 'vitest';
import { GOOD, cdb10, rig, senseOf } from './vscsi-helpers.js';

const sense6 = (page: number, pc = 0, sub = 0, alloc = 255, dbd = false) => [0x1a, dbd ? 0x08 : 0, (pc << 6) | page, sub, alloc, 0];
const sense10 = (page: number, pc = 0, alloc = 1024, llbaa = false) => [0x5a, llbaa ? 0x10 : 0, (pc << 6) | page, 0, 0, 0, 0, alloc >> 8, alloc & 0xff, 0];
const select6 = (len: number, b1 = 0x10) => [0x15, b1, 0, 0, len, 0];
const select10 = (len: number) => [0x55, 0x10, 0, 0, 0, 0, 0, len >> 8, len & 0xff, 0];

/** Split MODE SENSE(6) data into pages by code. */
function pages6(d: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  let o = 4 + d[3]!;
  while (o < d.length) {
    const len = d[o + 1]! + 2;
    out.set(d[o]! & 0x3f, d.subarray(o, o + len));
    o += len;
  }
  return out;
}

async function controlPage(fab: ReturnType<typeof rig>['fab']): Promise<Buffer> {
  const r = await fab.submit({ cdb: sense6(0x0a), expectedLength: 255 });
  return Buffer.from(pages6(r.data).get(0x0a)!);
}

describe('MODE SENSE', () => {
  it('returns all pages with a block descriptor and DPOFUA', async () => {
    const { fab } = rig({ blocks: 1000 });
    const r = await fab.submit({ cdb: sense6(0x3f), expectedLength: 255 });
    expect(r.status).toBe(GOOD);
    expect(r.data[0]).toBe(r.data.length - 1);
    expect(r.data[2]! & 0x10).toBe(0x10);
    expect(r.data[3]).toBe(8);
    expect(r.data.readUInt32BE(4)).toBe(1000);
    expect(r.data.readUIntBE(9, 3)).toBe(512);
    expect([...pages6(r.data).keys()]).toEqual([0x01, 0x08, 0x0a, 0x1c]);
  });

  it('sets WP for read-only LUs and honours DBD, LLBAA and the allocation length', async () => {
    const { fab } = rig({ readOnly: true });
    const r = await fab.submit({ cdb: sense6(0x08, 0, 0, 255, true), expectedLength: 255 });
    expect(r.data[2]! & 0x80).toBe(0x80);
    expect(r.data[3]).toBe(0);
    const t = await fab.submit({ cdb: sense10(0x08, 0, 1024, true), expectedLength: 1024 });
    expect(t.data.readUInt16BE(6)).toBe(16);
    expect(t.data[4]! & 1).toBe(1);
    expect(t.data.readUInt16BE(0)).toBe(t.data.length - 2);
    const four = await fab.submit({ cdb: sense6(0x3f, 0, 0, 4), expectedLength: 4 });
    expect(four.data.length).toBe(4);
    expect(four.residual).toEqual({ kind: 'none' });
  });

  it('caching page WCE tells the truth about the backstore cache', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: sense6(0x08), expectedLength: 255 });
    expect(pages6(r.data).get(0x08)![2]! & 0x04).toBe(0); // memory store: write-through
    const { fab: fab2, backstore } = rig();
    Object.defineProperty(backstore, 'cacheMode', { value: 'writeback' });
    const r2 = await fab2.submit({ cdb: sense6(0x08), expectedLength: 255 });
    expect(pages6(r2.data).get(0x08)![2]! & 0x04).toBe(0x04);
  });

  it('changeable values mark D_SENSE, SWP and TAS; saved values are not supported; unknown pages are invalid', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: sense6(0x0a, 1), expectedLength: 255 });
    const ch = pages6(r.data).get(0x0a)!;
    expect([ch[2], ch[4], ch[5]]).toEqual([0x04, 0x08, 0x40]);
    const s = senseOf(await fab.submit({ cdb: sense6(0x0a, 3), expectedLength: 255 }));
    expect([s.key, s.asc]).toEqual([0x5, 0x39]);
    expect(senseOf(await fab.submit({ cdb: sense6(0x2b), expectedLength: 255 })).field).toEqual({ inCdb: true, byte: 2, bit: 5 });
    expect(senseOf(await fab.submit({ cdb: sense6(0x0a, 0, 0x05), expectedLength: 255 })).field?.byte).toBe(3);
  });
});

describe('MODE SELECT', () => {
  it('D_SENSE switches sense to descriptor format and raises MODE PARAMETERS CHANGED elsewhere', async () => {
    const { fab, other } = rig();
    const b = other();
    const page = await controlPage(fab);
    page[2]! |= 0x04;
    const params = Buffer.concat([Buffer.alloc(4), page]);
    const r = await fab.submit({ cdb: select6(params.length), dataOut: params });
    expect(r.status).toBe(GOOD);
    const s = senseOf(await fab.submit({ cdb: cdb10(0x28, 5000, 1), expectedLength: 512 }));
    expect(s.format).toBe('descriptor');
    expect(s.asc).toBe(0x21);
    const ua = senseOf(await b.submit({ cdb: [0, 0, 0, 0, 0, 0] }));
    expect([ua.key, ua.asc, ua.ascq]).toEqual([0x6, 0x2a, 0x01]);
    expect((await fab.submit({ cdb: [0, 0, 0, 0, 0, 0] })).status).toBe(GOOD);
  });

  it('SWP write-protects through MODE SELECT(10)', async () => {
    const { fab } = rig();
    const page = await controlPage(fab);
    page[4]! |= 0x08;
    const params = Buffer.concat([Buffer.alloc(8), page]);
    expect((await fab.submit({ cdb: select10(params.length), dataOut: params })).status).toBe(GOOD);
    const s = senseOf(await fab.submit({ cdb: cdb10(0x2a, 0, 1), dataOut: Buffer.alloc(512) }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x7, 0x27, 0x02]);
    const ms = await fab.submit({ cdb: sense6(0x0a), expectedLength: 255 });
    expect(ms.data[2]! & 0x80).toBe(0x80);
  });

  it('rejects changes to non-changeable bits with a parameter field pointer, and nothing is applied', async () => {
    const { fab, lu } = rig();
    const page = await controlPage(fab);
    page[2]! |= 0x04;
    page[3] = 0x00; // QUEUE ALGORITHM MODIFIER is not changeable
    const params = Buffer.concat([Buffer.alloc(4), page]);
    const s = senseOf(await fab.submit({ cdb: select6(params.length), dataOut: params }));
    expect([s.key, s.asc]).toEqual([0x5, 0x26]);
    expect(s.field).toEqual({ inCdb: false, byte: 4 + 3, bit: 4 });
    expect(lu.mode.dSense).toBe(false);
  });

  it('rejects PF=0, SP=1, bad page length, truncated lists and a wrong block length', async () => {
    const { fab } = rig();
    const page = await controlPage(fab);
    const params = Buffer.concat([Buffer.alloc(4), page]);
    expect(senseOf(await fab.submit({ cdb: select6(params.length, 0x00), dataOut: params })).field).toEqual({ inCdb: true, byte: 1, bit: 4 });
    expect(senseOf(await fab.submit({ cdb: select6(params.length, 0x11), dataOut: params })).field?.bit).toBe(0);
    const badLen = Buffer.from(params);
    badLen[5] = 9;
    expect(senseOf(await fab.submit({ cdb: select6(badLen.length), dataOut: badLen })).field).toEqual({ inCdb: false, byte: 5 });
    const cut = params.subarray(0, 10);
    expect(senseOf(await fab.submit({ cdb: select6(cut.length), dataOut: cut })).asc).toBe(0x1a);
    const bd = Buffer.alloc(8);
    bd.writeUIntBE(4096, 5, 3);
    const withBd = Buffer.concat([Buffer.from([0, 0, 0, 8]), bd, page]);
    expect(senseOf(await fab.submit({ cdb: select6(withBd.length), dataOut: withBd })).field?.byte).toBe(9);
    expect((await fab.submit({ cdb: select6(0) })).status).toBe(GOOD);
  });

  it('TAS=0 is settable and reported back', async () => {
    const { fab, lu } = rig();
    const page = await controlPage(fab);
    page[5]! &= ~0x40;
    const params = Buffer.concat([Buffer.alloc(4), page]);
    expect((await fab.submit({ cdb: select6(params.length), dataOut: params })).status).toBe(GOOD);
    expect(lu.mode.tas).toBe(false);
    expect((await controlPage(fab))[5]! & 0x40).toBe(0);
  });
});
