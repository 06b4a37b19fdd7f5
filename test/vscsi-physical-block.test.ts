import { describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { ScsiCore } from '../src/vscsi/core.js';
import { LoopbackFabric, loopbackInitiator } from '../src/vscsi/loopback.js';
import { CHECK, GOOD, cdb10, clearUa } from './vscsi-helpers.js';

function rigWith(physicalBlockSize: number | undefined, blockSize: 512 | 4096 = 512) {
  const core = new ScsiCore({ reservations: false });
  const backstore = new MemoryBackstore({ name: 'm', size: 2048 * blockSize, blockSize });
  const lu = core.addLogicalUnit({ id: 'd', backstore, ...(physicalBlockSize !== undefined ? { physicalBlockSize } : {}) });
  const target = core.createTarget({ name: 'iqn.2026-01.test:t' });
  const port = target.addPort({ name: 'iqn.2026-01.test:t,t,0x1' });
  target.luns.set(0, lu);
  const fab = new LoopbackFabric(core.openNexus({ target, targetPort: port, initiator: loopbackInitiator() }));
  return { core, lu, fab };
}

const RC16 = [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0];
const VPD_B0 = [0x12, 0x01, 0xb0, 0x00, 0x40, 0x00];

describe('physicalBlockSize', () => {
  it('4096 on a 512-byte LUN: READ CAPACITY(16) LBPPBE = 3, Block Limits granularities = 8 blocks', async () => {
    const { fab, lu } = rigWith(4096);
    await clearUa(fab);
    expect(lu.logicalPerPhysical).toBe(8);
    const rc = await fab.submit({ cdb: RC16, expectedLength: 32 });
    expect(rc.status).toBe(GOOD);
    expect(rc.data.readUInt32BE(8)).toBe(512);
    expect(rc.data[13]! & 0x0f).toBe(3);
    expect(rc.data.readUInt16BE(14) & 0x3fff).toBe(0); // LOWEST ALIGNED LOGICAL BLOCK ADDRESS
    const b0 = await fab.submit({ cdb: VPD_B0, expectedLength: 64 });
    expect(b0.status).toBe(GOOD);
    expect(b0.data.readUInt16BE(6)).toBe(8); // OPTIMAL TRANSFER LENGTH GRANULARITY
    expect(b0.data.readUInt32BE(28)).toBe(8); // OPTIMAL UNMAP GRANULARITY
  });

  it('64 KiB physical blocks raise the granularities above the 4 KiB page default', async () => {
    const { fab } = rigWith(65536);
    const rc = await fab.submit({ cdb: RC16, expectedLength: 32 });
    expect(rc.data[13]! & 0x0f).toBe(7);
    const b0 = await fab.submit({ cdb: VPD_B0, expectedLength: 64 });
    expect(b0.data.readUInt16BE(6)).toBe(128);
  });

  it('defaults to the logical block size (LBPPBE 0)', async () => {
    for (const bs of [512, 4096] as const) {
      const { fab, lu } = rigWith(undefined, bs);
      const rc = await fab.submit({ cdb: RC16, expectedLength: 32 });
      expect(rc.data[13]! & 0x0f).toBe(0);
      expect(lu.physicalBlockSize).toBe(bs);
    }
  });

  it('rejects sizes that are not a power-of-two multiple of the logical block size', () => {
    for (const bad of [0, 256, 1000, 1536, 512 * 2 ** 16, 0.5, Number.NaN]) {
      expect(() => rigWith(bad)).toThrow(/physicalBlockSize/);
    }
  });

  it('unaligned I/O still works (physical size is advisory): a 1-block write at LBA 3', async () => {
    const { fab } = rigWith(4096);
    await clearUa(fab);
    const w = await fab.submit({ cdb: cdb10(0x2a, 3, 1), dataOut: Buffer.alloc(512, 9) });
    expect(w.status).toBe(GOOD);
    const r = await fab.submit({ cdb: cdb10(0x28, 3, 1), expectedLength: 512 });
    expect(r.data.equals(Buffer.alloc(512, 9))).toBe(true);
    // WRITE SAME with a data-out of two blocks (libiscsi WriteSame10.InvalidDataOutSize) is refused.
    const ws = await fab.submit({ cdb: [0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0], dataOut: Buffer.alloc(1024) });
    expect(ws.status).toBe(CHECK);
  });
});

describe('physical block size reported by the backstore', () => {
  it('is the default (a 512e device reports LBPPBE 3); the LU option wins over it', async () => {
    const core = new ScsiCore({ reservations: false });
    const mem = new MemoryBackstore({ name: 'e', size: 1024 * 512 });
    Object.defineProperty(mem, 'physicalBlockSize', { value: 4096 });
    expect(core.addLogicalUnit({ id: 'a', backstore: mem }).lbppbExponent).toBe(3);
    expect(core.addLogicalUnit({ id: 'b', backstore: mem, physicalBlockSize: 1024 }).lbppbExponent).toBe(1);
  });
});
