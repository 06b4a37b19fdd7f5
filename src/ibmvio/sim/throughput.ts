/**
 * Throughput mode of the emulated LPAR: fixed-size READs or WRITEs, random or sequential, on as many
 * concurrent streams as the login granted credits (the credit limit). Data stays verified: each
 * stream owns every W-th transfer unit of an 8 MiB work area, so the last acknowledged write of a
 * unit is well defined; every 4 KiB of a transfer carries a header (magic, LBA, generation, stream)
 * and a per-stream body. Every READ is compared in full with what that stream last wrote (a memcmp
 * in the guest process); a WRITE run ends with a timed-out-of-band read-back of every unit.
 */
import { Buffer } from 'node:buffer';
import type { ScannedLun } from './workload.js';
import { Layout, type VioClient } from './client.js';
import { StreamImage, WORK_AREA, unitImage, type ThroughputSpec } from '../../sim/throughput-data.js';
export { unitImage, type ThroughputSpec };

export interface ThroughputResult {
  commands: number;
  errors: number;
  /** Data bytes moved by the timed commands. */
  bytes: number;
  elapsedMs: number;
  bytesVerified: number;
  queueDepth: number;
  messages: string[];
}

export class VioThroughput {
  readonly result: ThroughputResult = { commands: 0, errors: 0, bytes: 0, elapsedMs: 0, bytesVerified: 0, queueDepth: 0, messages: [] };

  constructor(
    private readonly client: VioClient,
    private readonly spec: ThroughputSpec,
    private readonly rnd: () => number,
  ) {}

  private error(msg: string): void {
    this.result.errors++;
    if (this.result.messages.length < 20) this.result.messages.push(msg);
  }

  private area(w: number): number {
    return Layout.DATA_BASE + w * Layout.MAX_XFER;
  }

  private async one(lun: ScannedLun, w: number, unit: number, write: boolean, gens: Uint32Array, img: StreamImage): Promise<boolean> {
    const len = this.spec.blockSize;
    const blocks = len / lun.blockSize;
    const lba = unit * blocks;
    const cdb = Buffer.alloc(16);
    cdb[0] = write ? 0x2a : 0x28;
    cdb.writeUInt32BE(lba, 2);
    cdb.writeUInt16BE(blocks, 7);
    const mem = this.client.part.mem;
    const gen = write ? gens[unit]! + 1 : gens[unit]!;
    if (write) mem.write(this.area(w), img.at(lba, lun.blockSize, gen), 0, len);
    const o = await this.client.command(lun.field, cdb, write ? 'write' : 'read', [{ va: BigInt(this.area(w)), key: 0, len }], 15_000);
    if (o.kind !== 'done' || o.status !== 0 || o.residual !== 0) {
      this.error(`${write ? 'WRITE' : 'READ'} LUN ${lun.number} LBA ${lba}+${blocks}: ${JSON.stringify(o.kind === 'done' ? { ...o, sense: o.sense?.toString('hex') } : o)}`);
      return false;
    }
    if (write) {
      gens[unit] = gen;
      return true;
    }
    // Checked where it landed: copying it out first cost the guest as much again as the check.
    if (!mem.equals([{ offset: this.area(w), length: len }], img.at(lba, lun.blockSize, gen))) {
      const got = Buffer.alloc(16);
      mem.read(this.area(w), got);
      this.error(`data mismatch LUN ${lun.number} LBA ${lba}+${blocks}: expected generation ${gen} of stream ${w}, header reads ${got.toString('hex')}`);
      return false;
    }
    this.result.bytesVerified += len;
    return true;
  }

  /** Prefill (reads), then the timed phase for `seconds`, then a read-back (writes). */
  async run(luns: ScannedLun[], maxWorkers: number, seconds: number): Promise<ThroughputResult> {
    const lun = luns[0];
    const bs = this.spec.blockSize;
    if (!lun) {
      this.error('no LUNs found by the scan');
      return this.result;
    }
    if (bs <= 0 || bs > Layout.MAX_XFER || bs % lun.blockSize !== 0) {
      this.error(`blockSize ${bs} must be a multiple of ${lun.blockSize} up to ${Layout.MAX_XFER}`);
      return this.result;
    }
    const units = Math.min(Math.floor(WORK_AREA / bs), Math.floor(lun.blocks / (bs / lun.blockSize)));
    const qd = this.spec.queueDepth;
    const workers = Math.max(1, Math.min(units, maxWorkers, typeof qd === 'number' ? qd : Infinity));
    this.result.queueDepth = workers;
    const gens = new Uint32Array(units);
    const imgs = Array.from({ length: workers }, (_, w) => new StreamImage(bs, w));
    const own = (w: number) => Array.from({ length: Math.ceil((units - w) / workers) }, (_, i) => w + i * workers);
    const write = this.spec.op === 'write';
    if (!write) {
      await Promise.all(Array.from({ length: workers }, async (_, w) => {
        for (const u of own(w)) if (!(await this.one(lun, w, u, true, gens, imgs[w]!))) return;
      }));
    }
    const start = process.hrtime.bigint();
    const deadline = Date.now() + seconds * 1000;
    await Promise.all(Array.from({ length: workers }, async (_, w) => {
      const mine = own(w);
      let next = 0;
      while (Date.now() < deadline && this.result.errors === 0) {
        const u = this.spec.pattern === 'random' ? mine[Math.floor(this.rnd() * mine.length)]! : mine[next++ % mine.length]!;
        if (!(await this.one(lun, w, u, write, gens, imgs[w]!))) return;
        this.result.commands++;
        this.result.bytes += bs;
      }
    }));
    this.result.elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
    if (write && this.result.errors === 0) {
      await Promise.all(Array.from({ length: workers }, async (_, w) => {
        for (const u of own(w)) if (!(await this.one(lun, w, u, false, gens, imgs[w]!))) return;
      }));
    }
    return this.result;
  }
}
