/**
 * Throughput mode of the simulated domU: fixed-size READ(10)s or WRITE(10)s, random or sequential,
 * with the ring full (one command per ring slot). Data stays verified: each stream owns every W-th
 * transfer unit of an 8 MiB work area, so the last acknowledged write of a unit is well defined;
 * every 4 KiB carries a header (magic, LBA, generation, stream) and a per-stream body. Every READ is
 * compared in full with what that stream last wrote; a WRITE run ends with a read-back of every
 * unit, outside the timed phase.
 */
import { Buffer } from 'node:buffer';
import type { ScsiFront } from './frontend.js';
import { VSCSIIF_RING_SIZE, XEN_PAGE_SIZE } from '../ring.js';
import { SenseKey, senseKeyOf } from '../../vscsi/sense.js';
import { StreamImage, WORK_AREA, unitImage, type ThroughputSpec } from '../../sim/throughput-data.js';
export { unitImage, type ThroughputSpec };

const STATUS_CHECK_CONDITION = 0x02;
export interface ThroughputResult {
  commands: number;
  errors: number;
  bytes: number;
  elapsedMs: number;
  bytesVerified: number;
  queueDepth: number;
  lines: string[];
}

function rw10(op: 0x28 | 0x2a, lba: number, blocks: number): Buffer {
  const c = Buffer.alloc(10);
  c[0] = op;
  c.writeUInt32BE(lba >>> 0, 2);
  c.writeUInt16BE(blocks, 7);
  return c;
}

export class XenThroughput {
  readonly result: ThroughputResult = { commands: 0, errors: 0, bytes: 0, elapsedMs: 0, bytesVerified: 0, queueDepth: 0, lines: [] };

  constructor(
    private readonly front: ScsiFront,
    private readonly spec: ThroughputSpec,
    private readonly rnd: () => number,
  ) {}

  private error(s: string): void {
    this.result.errors++;
    if (this.result.lines.length < 20) this.result.lines.push(`dom ${this.front.domid}: ERROR ${s}`);
  }

  async run(seconds: number): Promise<ThroughputResult> {
    const dev = this.front.deviceList()[0];
    if (!dev) {
      this.error('no device on the first virtual host');
      return this.result;
    }
    const addr = { channel: dev.addr.channel, id: dev.addr.id, lun: dev.addr.lun };
    // The first commands after attach see the power-on unit attention; retry as the midlayer does.
    let cap = await this.front.command(addr, Buffer.from([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), { readLength: 8 });
    for (let i = 0; i < 8 && cap.rslt === STATUS_CHECK_CONDITION && cap.sense.length > 2 && senseKeyOf(cap.sense) === SenseKey.UNIT_ATTENTION; i++) {
      cap = await this.front.command(addr, Buffer.from([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), { readLength: 8 });
    }
    if (cap.rslt !== 0 || cap.data.length < 8) {
      this.error(`READ CAPACITY(10) rslt 0x${cap.rslt.toString(16)}`);
      return this.result;
    }
    const lbs = cap.data.readUInt32BE(4);
    const lunBlocks = cap.data.readUInt32BE(0) + 1;
    const bs = this.spec.blockSize;
    if (bs <= 0 || bs % lbs !== 0 || bs > this.front.maxSegments * XEN_PAGE_SIZE) {
      this.error(`blockSize ${bs} must be a multiple of ${lbs} up to ${this.front.maxSegments * XEN_PAGE_SIZE} bytes`);
      return this.result;
    }
    const blocks = bs / lbs;
    const units = Math.min(Math.floor(WORK_AREA / bs), Math.floor(lunBlocks / blocks));
    const qd = this.spec.queueDepth;
    const workers = Math.max(1, Math.min(units, VSCSIIF_RING_SIZE, typeof qd === 'number' ? qd : Infinity));
    this.result.queueDepth = workers;
    const gens = new Uint32Array(units);
    const own = (w: number) => Array.from({ length: Math.ceil((units - w) / workers) }, (_, i) => w + i * workers);
    const one = async (w: number, unit: number, write: boolean, img: StreamImage): Promise<boolean> => {
      const lba = unit * blocks;
      const gen = write ? gens[unit]! + 1 : gens[unit]!;
      // Reads are checked where they landed in guest memory: copying each out first cost the guest
      // as much again as the check.
      const r = write
        ? await this.front.command(addr, rw10(0x2a, lba, blocks), { dataOut: img.at(lba, lbs, gen) })
        : await this.front.command(addr, rw10(0x28, lba, blocks), { readLength: bs, expect: img.at(lba, lbs, gen) });
      if (r.rslt !== 0) {
        this.error(`${write ? 'WRITE' : 'READ'}(10) LBA ${lba}+${blocks}: rslt 0x${r.rslt.toString(16)} sense ${r.sense.toString('hex')}`);
        return false;
      }
      if (write) {
        gens[unit] = gen;
        return true;
      }
      if (!r.matched) {
        this.error(`READ(10) LBA ${lba}+${blocks}: data differs from generation ${gen} of stream ${w} (header ${r.data.toString('hex', 0, 16)})`);
        return false;
      }
      this.result.bytesVerified += bs;
      return true;
    };
    const imgs = Array.from({ length: workers }, (_, w) => new StreamImage(bs, w));
    const write = this.spec.op === 'write';
    if (!write) {
      await Promise.all(Array.from({ length: workers }, async (_, w) => {
        for (const u of own(w)) if (!(await one(w, u, true, imgs[w]!))) return;
      }));
    }
    const start = process.hrtime.bigint();
    const deadline = Date.now() + seconds * 1000;
    await Promise.all(Array.from({ length: workers }, async (_, w) => {
      const mine = own(w);
      let next = 0;
      while (Date.now() < deadline && this.result.errors === 0 && !this.front.failed) {
        const u = this.spec.pattern === 'random' ? mine[Math.floor(this.rnd() * mine.length)]! : mine[next++ % mine.length]!;
        if (!(await one(w, u, write, imgs[w]!))) return;
        this.result.commands++;
        this.result.bytes += bs;
      }
    }));
    this.result.elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
    if (this.front.failed) this.error(`frontend failed: ${this.front.failed}`);
    if (write && this.result.errors === 0) {
      await Promise.all(Array.from({ length: workers }, async (_, w) => {
        for (const u of own(w)) if (!(await one(w, u, false, imgs[w]!))) return;
      }));
    }
    this.result.lines.push(
      `dom ${this.front.domid}: throughput ${this.spec.op} ${this.spec.pattern} ${bs} B x QD ${workers}: ${this.result.commands} commands, ` +
        `${this.result.errors} errors, ${this.result.bytesVerified} bytes verified`,
    );
    return this.result;
  }
}
