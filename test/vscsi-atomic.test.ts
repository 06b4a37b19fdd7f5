import { describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { ScsiCore } from '../src/vscsi/core.js';
import { LoopbackFabric, loopbackInitiator } from '../src/vscsi/loopback.js';
import { CHECK, GOOD, cdb10, clearUa, decodeSense, promiseOnly } from './vscsi-helpers.js';

interface Opts {
  physicalBlockSize?: number;
  maxAtomicWriteBytes?: number;
  readOnly?: boolean;
  backstore?: MemoryBackstore;
}

function rigWith(o: Opts = {}) {
  const core = new ScsiCore({ reservations: false });
  const backstore = o.backstore ?? new MemoryBackstore({ name: 'm', size: 1024 * 512, readOnly: o.readOnly ?? false });
  const lu = core.addLogicalUnit({
    id: 'd',
    backstore,
    ...(o.physicalBlockSize !== undefined ? { physicalBlockSize: o.physicalBlockSize } : {}),
    ...(o.maxAtomicWriteBytes !== undefined ? { maxAtomicWriteBytes: o.maxAtomicWriteBytes } : {}),
  });
  const target = core.createTarget({ name: 'iqn.2026-01.test:t' });
  const port = target.addPort({ name: 'iqn.2026-01.test:t,t,0x1' });
  target.luns.set(0, lu);
  const fab = new LoopbackFabric(core.openNexus({ target, targetPort: port, initiator: loopbackInitiator() }));
  return { core, lu, fab, backstore };
}

/** WRITE ATOMIC(16) CDB (SBC-4 5.48). */
function wa16(lba: bigint, blocks: number, b1 = 0, boundary = 0): number[] {
  const b = Buffer.alloc(16);
  b[0] = 0x9c;
  b[1] = b1;
  b.writeBigUInt64BE(BigInt.asUintN(64, lba), 2);
  b.writeUInt16BE(boundary, 10);
  b.writeUInt16BE(blocks, 12);
  return [...b];
}
const WA = (lba: bigint, blocks: number, fill = 0xa6, b1 = 0, boundary = 0) => ({
  cdb: wa16(lba, blocks, b1, boundary),
  ...(blocks > 0 ? { dataOut: Buffer.alloc(blocks * 512, fill) } : {}),
});
const VPD_B0 = { cdb: [0x12, 0x01, 0xb0, 0x00, 0x40, 0x00], expectedLength: 64 };
const tick = () => new Promise((r) => setImmediate(r));

function atomicLimits(page: Buffer) {
  return { max: page.readUInt32BE(44), align: page.readUInt32BE(48), gran: page.readUInt32BE(52), boundary: page.readUInt32BE(60) };
}

describe('WRITE ATOMIC(16)', () => {
  it('advertises one physical block by default, aligned to physical blocks', async () => {
    const a = rigWith();
    await clearUa(a.fab);
    expect(atomicLimits((await a.fab.submit(VPD_B0)).data)).toEqual({ max: 1, align: 0, gran: 0, boundary: 0 });
    const b = rigWith({ physicalBlockSize: 4096 });
    expect(atomicLimits((await b.fab.submit(VPD_B0)).data)).toEqual({ max: 8, align: 8, gran: 0, boundary: 0 });
    const c = rigWith({ maxAtomicWriteBytes: 128 * 1024 });
    expect(atomicLimits((await c.fab.submit(VPD_B0)).data).max).toBe(256);
  });

  it('writes the data (FUA and DPO accepted) and 0 blocks is GOOD', async () => {
    const { fab, backstore } = rigWith({ maxAtomicWriteBytes: 8192 });
    await clearUa(fab);
    expect((await fab.submit(WA(5n, 16, 0x5a, 0x18))).status).toBe(GOOD);
    expect((await backstore.read(5 * 512, 16 * 512)).equals(Buffer.alloc(16 * 512, 0x5a))).toBe(true);
    expect((await fab.submit(WA(0n, 0))).status).toBe(GOOD);
  });

  it('refuses what it cannot do atomically, pointing at the field', async () => {
    const { fab } = rigWith({ physicalBlockSize: 4096 });
    await clearUa(fab);
    const sense = async (cmd: ReturnType<typeof WA>) => {
      const r = await fab.submit(cmd);
      expect(r.status).toBe(CHECK);
      const s = decodeSense(r.sense);
      return [s.key, s.asc, s.field?.byte];
    };
    expect(await sense(WA(0n, 16))).toEqual([0x5, 0x24, 12]); // longer than MAXIMUM ATOMIC TRANSFER LENGTH
    expect(await sense(WA(1n, 1))).toEqual([0x5, 0x24, 2]); // not on a physical block boundary
    expect(await sense(WA(0n, 8, 0xa6, 0, 8))).toEqual([0x5, 0x24, 10]); // ATOMIC BOUNDARY unsupported
    expect(await sense(WA(0n, 8, 0xa6, 0x20))).toEqual([0x5, 0x24, 1]); // WRPROTECT
    // LBA range is checked before the atomic limits (libiscsi WriteAtomic16.BeyondEol).
    expect((await sense(WA(1024n - 8n, 16))).slice(0, 2)).toEqual([0x5, 0x21]);
    expect((await sense(WA(1n << 63n, 8))).slice(0, 2)).toEqual([0x5, 0x21]);
    expect((await sense(WA(1032n, 0))).slice(0, 2)).toEqual([0x5, 0x21]);
  });

  it('a data-out of the wrong size writes nothing', async () => {
    const { fab, backstore } = rigWith({ maxAtomicWriteBytes: 4096 });
    await clearUa(fab);
    const r = await fab.submit({ cdb: wa16(0n, 4), dataOut: Buffer.alloc(3 * 512, 1) });
    expect(r.status).toBe(CHECK);
    expect((await backstore.read(0, 4 * 512)).equals(Buffer.alloc(4 * 512))).toBe(true);
  });

  it('is DATA PROTECT on a read-only LU', async () => {
    const { fab } = rigWith({ readOnly: true });
    await clearUa(fab);
    const s = decodeSense((await fab.submit(WA(0n, 1))).sense);
    expect([s.key, s.asc]).toEqual([0x7, 0x27]);
  });

  it('rejects a bad maxAtomicWriteBytes', () => {
    for (const bad of [0, 100, 1000, 64 * 1024 * 1024]) expect(() => rigWith({ maxAtomicWriteBytes: bad })).toThrow(/maxAtomicWriteBytes/);
  });

  it('no READ sees part of it: waits for running reads, and reads wait for it', async () => {
    const mem = promiseOnly(new MemoryBackstore({ name: 'g', size: 1024 * 512 }));
    const readGates: Array<() => void> = [];
    const writeGates: Array<() => void> = [];
    let gateReads = true;
    let gateWrites = true;
    const origRead = mem.read.bind(mem);
    const origWrite = mem.write.bind(mem);
    mem.read = async (o: number, l: number, into?: Buffer) => {
      if (gateReads) await new Promise<void>((r) => readGates.push(r));
      return origRead(o, l, into);
    };
    mem.write = async (o: number, d: Buffer, f: boolean) => {
      if (gateWrites) await new Promise<void>((r) => writeGates.push(r));
      return origWrite(o, d, f);
    };
    const { fab } = rigWith({ backstore: mem, maxAtomicWriteBytes: 8 * 512 });
    gateReads = false;
    await clearUa(fab);
    gateReads = true;
    const before = fab.submit({ cdb: cdb10(0x28, 0, 8), expectedLength: 8 * 512 });
    for (let i = 0; i < 5 && readGates.length === 0; i++) await tick();
    expect(readGates.length).toBe(1);
    const atomic = fab.submit(WA(0n, 8, 0x77));
    for (let i = 0; i < 5; i++) await tick();
    expect(writeGates.length).toBe(0); // waits for the read already running
    gateReads = false;
    readGates.splice(0).forEach((w) => w());
    expect((await before).data.equals(Buffer.alloc(8 * 512))).toBe(true);
    for (let i = 0; i < 5 && writeGates.length === 0; i++) await tick();
    expect(writeGates.length).toBe(1); // now writing
    let afterDone = false;
    const after = fab.submit({ cdb: cdb10(0x28, 0, 8), expectedLength: 8 * 512 }).then((r) => {
      afterDone = true;
      return r;
    });
    for (let i = 0; i < 5; i++) await tick();
    expect(afterDone).toBe(false); // a read of the range waits for the atomic write
    gateWrites = false;
    writeGates.splice(0).forEach((w) => w());
    expect((await atomic).status).toBe(GOOD);
    expect((await after).data.equals(Buffer.alloc(8 * 512, 0x77))).toBe(true);
  });

  it('REPORT SUPPORTED OPERATION CODES lists it with DPO/FUA in the usage data (MODE SENSE DPOFUA=1)', async () => {
    const { fab } = rigWith();
    await clearUa(fab);
    const r = await fab.submit({ cdb: [0xa3, 0x0c, 0x01, 0x9c, 0, 0, 0, 0, 0x01, 0, 0, 0], expectedLength: 256 });
    expect(r.status).toBe(GOOD);
    expect(r.data[1]! & 0x07).toBe(3); // SUPPORT: supported per standard
    expect(r.data.readUInt16BE(2)).toBe(16);
    expect(r.data[5]! & 0x18).toBe(0x18);
  });
});
