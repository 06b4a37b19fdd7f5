import { describe, expect, it } from 'vitest';
import { runIbmvioSim } from '../src/ibmvio/sim/run.js';
import { runXenSim } from '../src/xen/sim/run.js';
import { unitImage } from '../src/ibmvio/sim/throughput.js';
import { dataInPool } from '../src/vscsi/buffer-pool.js';
import { StreamImage } from '../src/sim/throughput-data.js';
import { MemoryBackstore } from '../src/backstores/memory.js';

/**
 * Run `body` while the VIOS/dom0 side (this process) answers READs from its memory LUs with the last
 * byte of each transfer flipped: the guests compare what they read in place, and must still see it.
 */
async function withCorruptReads<T>(body: () => Promise<T>): Promise<T> {
  const lend = MemoryBackstore.prototype.lendRead;
  MemoryBackstore.prototype.lendRead = function (this: MemoryBackstore, offset: number, length: number) {
    const loan = lend.call(this, offset, length);
    if (!loan) return loan;
    const bad = Buffer.from(loan.data);
    bad[bad.length - 1]! ^= 0x01;
    return { data: bad, release: loan.release };
  };
  try {
    return await body();
  } finally {
    MemoryBackstore.prototype.lendRead = lend;
  }
}

/** Every pooled data buffer the VIOS/dom0 side (this process) lent is back once the run is over. */
async function expectPoolReturned(): Promise<void> {
  for (let i = 0; i < 50 && dataInPool.lent > 0; i++) await new Promise((r) => setTimeout(r, 10));
  expect(dataInPool.lent).toBe(0);
}

describe('simulator throughput mode', () => {
  it('stamps every 4 KiB with LBA and generation, so a misplaced or stale block differs', () => {
    const a = unitImage(Buffer.alloc(8192), 16, 512, 3, 1);
    expect(a.readUInt32LE(4)).toBe(16);
    expect(a.readUInt32LE(4096 + 4)).toBe(24);
    expect(a.readUInt32LE(8)).toBe(3);
    expect(a.equals(unitImage(Buffer.alloc(8192), 16, 512, 2, 1))).toBe(false);
    expect(a.equals(unitImage(Buffer.alloc(8192), 32, 512, 3, 1))).toBe(false);
    expect(unitImage(Buffer.alloc(16, 9), 0, 512, 0, 0).equals(Buffer.alloc(16))).toBe(true);
  });

  it('a stream image rebuilt in place matches a fresh build at every step, zeros included', () => {
    const img = new StreamImage(3 * 4096 + 512, 5);
    const steps: Array<[number, number]> = [[8, 1], [40, 2], [8, 0], [16, 7], [16, 8], [0, 0], [24, 1]];
    for (const [lba, gen] of steps) {
      expect(img.at(lba, 512, gen).equals(unitImage(Buffer.alloc(3 * 4096 + 512), lba, 512, gen, 5))).toBe(true);
    }
    expect(img.at(24, 512, 1).equals(unitImage(Buffer.alloc(3 * 4096 + 512), 24, 512, 1, 4))).toBe(false); // another stream's body
  });

  it('VIO: 4k random reads at the credit limit move and verify data', async () => {
    const r = await runIbmvioSim({ clients: 1, seconds: 0.5, aix: false, hostile: false, lunsPerClient: 1, workload: { blockSize: 4096, pattern: 'random', op: 'read' } });
    expect(r.ok, r.lines.join('\n')).toBe(true);
    expect(r.bytes).toBeGreaterThan(0);
    expect(r.bytesVerified).toBeGreaterThanOrEqual(r.bytes!);
    expect(r.elapsedMs).toBeGreaterThan(0);
    expect(r.queueDepth).toBeGreaterThan(1);
  }, 20_000);

  it('Xen: 128k sequential writes with the ring full are read back verified', async () => {
    const r = await runXenSim({ domains: 1, seconds: 1, hostile: false, workload: { blockSize: 131072, pattern: 'sequential', op: 'write' } });
    expect(r.ok, r.lines.join('\n')).toBe(true);
    expect(r.bytes).toBeGreaterThan(0);
    expect(r.bytesVerified).toBe(8 << 20); // the whole work area read back after the timed phase
    expect(r.queueDepth).toBe(16);
    await expectPoolReturned(); // data-out buffers included
  }, 20_000);

  it('a READ whose last byte differs fails the run, on either path', async () => {
    const vio = await withCorruptReads(() =>
      runIbmvioSim({ clients: 1, seconds: 0.5, aix: false, hostile: false, lunsPerClient: 1, workload: { blockSize: 131072, pattern: 'sequential', op: 'read' } }),
    );
    expect(vio.ok).toBe(false);
    expect(vio.lines.join('\n')).toMatch(/data mismatch LUN 0 LBA \d+\+256: expected generation 1/);
    const xen = await withCorruptReads(() => runXenSim({ domains: 1, seconds: 0.5, hostile: false, workload: { blockSize: 4096, pattern: 'random', op: 'read' } }));
    expect(xen.ok).toBe(false);
    expect(xen.lines.join('\n')).toMatch(/READ\(10\) LBA \d+\+8: data differs from generation 1/);
  }, 30_000);

  it('VIO: 4k random writes are read back verified and give their data-out buffers back', async () => {
    const r = await runIbmvioSim({ clients: 1, seconds: 0.5, aix: false, hostile: false, lunsPerClient: 1, workload: { blockSize: 4096, pattern: 'random', op: 'write' } });
    expect(r.ok, r.lines.join('\n')).toBe(true);
    expect(r.bytesVerified).toBe(8 << 20);
    await expectPoolReturned();
  }, 20_000);
});
