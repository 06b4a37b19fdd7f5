import { describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { GOOD, cdb10, clearUa, promiseOnly, rig } from './vscsi-helpers.js';

const fill = (blocks: number, byte: number) => Buffer.alloc(blocks * 512, byte);
const caw = (lba: bigint, n: number) => {
  const b = Buffer.alloc(16);
  b[0] = 0x89;
  b.writeBigUInt64BE(lba, 2);
  b[13] = n;
  return [...b];
};
const tick = () => new Promise((r) => setImmediate(r));

/** A memory backstore whose reads and/or writes can be held at the door, counting what got through. */
function gated() {
  const mem = promiseOnly(new MemoryBackstore({ name: 'g', size: 1024 * 512 }));
  const held = { read: [] as Array<() => void>, write: [] as Array<() => void> };
  const gate = { read: false, write: false };
  const writes: Array<{ offset: number; byte: number }> = [];
  const origRead = mem.read.bind(mem);
  const origWrite = mem.write.bind(mem);
  mem.read = async (o: number, l: number, into?: Buffer) => {
    if (gate.read) await new Promise<void>((r) => held.read.push(r));
    return origRead(o, l, into);
  };
  mem.write = async (o: number, d: Buffer, f: boolean) => {
    if (gate.write) await new Promise<void>((r) => held.write.push(r));
    writes.push({ offset: o, byte: d[0]! });
    return origWrite(o, d, f);
  };
  const open = (k: 'read' | 'write') => {
    gate[k] = false;
    for (const w of held[k].splice(0)) w();
  };
  return { mem, held, gate, writes, open };
}

/** Two sessions (nexuses) on one gated LU, unit attentions cleared. */
async function twoSessions() {
  const g = gated();
  const { fab, other } = rig({ backstore: g.mem });
  const b = other();
  await clearUa(fab);
  await clearUa(b);
  return { g, fab, b };
}

describe('COMPARE AND WRITE is atomic against a plain WRITE of the same range', () => {
  it('a WRITE arriving between CAW compare and write waits: the CAW writes what it compared against, then the WRITE lands', async () => {
    const { g, fab, b } = await twoSessions();
    await fab.submit({ cdb: cdb10(0x2a, 4, 2), dataOut: fill(2, 0x11) });
    g.writes.length = 0;

    g.gate.read = true; // hold CAW after it took the range lock, at its compare read
    const c = fab.submit({ cdb: caw(4n, 2), dataOut: Buffer.concat([fill(2, 0x11), fill(2, 0x22)]) });
    for (let i = 0; i < 10 && g.held.read.length === 0; i++) await tick();
    expect(g.held.read.length).toBe(1);
    const w = b.submit({ cdb: cdb10(0x2a, 5, 1), dataOut: fill(1, 0x33) }); // overlaps the CAW's second block
    for (let i = 0; i < 10; i++) await tick();
    expect(g.writes).toEqual([]); // the WRITE did not slip in between compare and write
    g.open('read');
    const [cr, wr] = await Promise.all([c, w]);
    expect([cr.status, wr.status]).toEqual([GOOD, GOOD]);
    expect(g.writes.map((x) => x.byte)).toEqual([0x22, 0x33]);
    expect((await g.mem.read(4 * 512, 2 * 512)).equals(Buffer.concat([fill(1, 0x22), fill(1, 0x33)]))).toBe(true);
  });

  it('a CAW arriving during a WRITE compares against the written data, not the old data', async () => {
    const { g, fab, b } = await twoSessions();
    g.gate.write = true;
    const w = b.submit({ cdb: cdb10(0x2a, 8, 1), dataOut: fill(1, 0x44) }); // medium still holds zeroes
    for (let i = 0; i < 10 && g.held.write.length === 0; i++) await tick();
    expect(g.held.write.length).toBe(1);
    const c = fab.submit({ cdb: caw(8n, 1), dataOut: Buffer.concat([fill(1, 0x44), fill(1, 0x55)]) });
    for (let i = 0; i < 10; i++) await tick();
    g.open('write');
    const [wr, cr] = await Promise.all([w, c]);
    expect(wr.status).toBe(GOOD);
    expect(cr.status).toBe(GOOD); // had it compared against the old zeroes it would be MISCOMPARE
    expect((await g.mem.read(8 * 512, 512)).equals(fill(1, 0x55))).toBe(true);
  });

  it('plain WRITEs of the same blocks from two sessions reach the medium together, without waiting for each other', async () => {
    const { g, fab, b } = await twoSessions();
    g.gate.write = true;
    const w1 = fab.submit({ cdb: cdb10(0x2a, 16, 2), dataOut: fill(2, 0x66) });
    const w2 = b.submit({ cdb: cdb10(0x2a, 17, 2), dataOut: fill(2, 0x77) });
    for (let i = 0; i < 10 && g.held.write.length < 2; i++) await tick();
    expect(g.held.write.length).toBe(2); // both at the backstore at once
    // A CAW of a block both write waits for both of them.
    const c = fab.submit({ cdb: caw(17n, 1), dataOut: Buffer.concat([fill(1, 0x77), fill(1, 0x88)]) });
    g.gate.read = true;
    for (let i = 0; i < 10; i++) await tick();
    expect(g.held.read.length).toBe(0); // the CAW has not started its compare read
    g.gate.read = false;
    g.open('write');
    const [r1, r2] = await Promise.all([w1, w2]);
    expect([r1.status, r2.status]).toEqual([GOOD, GOOD]);
    // w2 wrote block 17 last (released last from the gate, in submission order)
    expect((await c).status).toBe(GOOD);
    expect((await g.mem.read(17 * 512, 512)).equals(fill(1, 0x88))).toBe(true);
  });
});
