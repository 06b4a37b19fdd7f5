/**
 * What the emulated LPAR does with its disks: the Linux SCSI scan (REPORT LUNS, INQUIRY, READ
 * CAPACITY), then random reads and writes at the credit limit with every block verified against a
 * model of what was written, with ABORT TASK and LUN RESET thrown in. Commands failed by a host
 * reset or unit attention are retried as the SCSI midlayer would.
 */
import { Buffer } from 'node:buffer';
import type { DirectDescriptor } from '../../srp/descriptors.js';
import { decodeSamLun } from '../../vscsi/lun-address.js';
import { encodeVioLun, type VioLunProfile } from '../lun.js';
import { type CommandOutcome, Layout, type VioClient } from './client.js';
import { SenseKey, senseKeyOf } from '../../vscsi/sense.js';

export interface ScannedLun {
  number: number;
  field: Buffer;
  vendor: string;
  product: string;
  revision: string;
  blocks: number;
  blockSize: number;
}

export interface WorkloadResult {
  commands: number;
  errors: number;
  bytesVerified: number;
  aborts: number;
  lunResets: number;
  retries: number;
  messages: string[];
}

const CHECK_CONDITION = 0x02;

const senseKey = (s: Buffer | undefined): number => (s ? (senseKeyOf(s) ?? -1) : -1);

export class Workload {
  readonly result: WorkloadResult = { commands: 0, errors: 0, bytesVerified: 0, aborts: 0, lunResets: 0, retries: 0, messages: [] };
  private readonly model = new Map<number, Map<number, Set<number>>>();
  private readonly busy = new Map<number, Uint8Array>();
  private version = 1;
  private inflight = new Map<string, { lun: ScannedLun; token: Buffer; write: boolean; lba: number; blocks: number; v: number }>();

  constructor(
    private readonly client: VioClient,
    private readonly profile: VioLunProfile,
    private readonly rnd: () => number = Math.random,
  ) {}

  private error(msg: string): void {
    this.result.errors++;
    if (this.result.messages.length < 20) this.result.messages.push(msg);
  }

  private area(worker: number): number {
    return Layout.DATA_BASE + worker * Layout.MAX_XFER;
  }

  /** Scatter a transfer of `len` bytes over 1..24 pieces laid out back to front in the worker's area. */
  private segments(worker: number, len: number): DirectDescriptor[] {
    const base = this.area(worker);
    const maxPieces = Math.max(1, Math.min(24, Math.floor(len / 512)));
    const pieces = this.rnd() < 0.4 ? 1 : 1 + Math.floor(this.rnd() * maxPieces);
    const sizes: number[] = [];
    let left = len;
    for (let i = pieces; i > 1; i--) {
      const blocks = Math.max(1, Math.floor((left / 512 / i) * (0.5 + this.rnd())));
      const n = Math.min(left - 512 * (i - 1), blocks * 512);
      sizes.push(n);
      left -= n;
    }
    sizes.push(left);
    const out: DirectDescriptor[] = [];
    let end = base + len;
    for (const n of sizes) {
      end -= n;
      out.push({ va: BigInt(end), key: 0, len: n });
    }
    return out;
  }

  /** Run a command, retrying after resets and unit attentions (bounded). */
  private async run(lun: Buffer, cdb: Buffer, dir: 'read' | 'write' | 'none', segs: DirectDescriptor[], onToken?: (t: Buffer) => void): Promise<CommandOutcome> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const o = await this.client.command(lun, cdb, dir, segs, 15_000, onToken);
      if (o.kind === 'reset') {
        this.result.retries++;
        await this.client.waitUp(30_000).catch(() => undefined);
        continue;
      }
      if (o.kind === 'done' && o.status === CHECK_CONDITION && senseKey(o.sense) === SenseKey.UNIT_ATTENTION) {
        this.result.retries++;
        continue;
      }
      return o;
    }
    return { kind: 'error', message: 'gave up after 20 retries' };
  }

  private readInto(worker: number, len: number): Buffer {
    const b = Buffer.alloc(len);
    this.client.part.mem.read(this.area(worker), b);
    return b;
  }

  /** Linux SCSI scan of target 0 / bus 0: REPORT LUNS, then INQUIRY and READ CAPACITY for each. */
  async scan(): Promise<ScannedLun[]> {
    const lun0 = encodeVioLun(0, this.profile);
    const rl = Buffer.alloc(16);
    rl[0] = 0xa0;
    rl.writeUInt32BE(4096, 6);
    const seg = [{ va: BigInt(this.area(0)), key: 0, len: 4096 }];
    const o = await this.run(lun0, rl, 'read', seg);
    if (o.kind !== 'done' || o.status !== 0) throw new Error(`REPORT LUNS failed: ${JSON.stringify(o)}`);
    this.result.commands++;
    const data = this.readInto(0, 4096);
    const n = Math.min(data.readUInt32BE(0) / 8, 510);
    const luns: ScannedLun[] = [];
    for (let i = 0; i < n; i++) {
      const entry = data.subarray(8 + i * 8, 16 + i * 8);
      // AIX numbers disks by the target field; Linux by scsilun_to_int of the entry.
      const num = entry[0]! >> 6 === 0b10 ? (this.profile === 'aix' ? entry[0]! & 0x3f : (entry[0]! & 0x3f) * 256 + entry[1]!) : decodeSamLun(Buffer.from(entry));
      if (num < 0 || num > 31) continue;
      const field = encodeVioLun(num, this.profile);
      const inq = Buffer.alloc(16);
      inq[0] = 0x12;
      inq.writeUInt16BE(96, 3);
      const io = await this.run(field, inq, 'read', [{ va: BigInt(this.area(0)), key: 0, len: 96 }]);
      if (io.kind !== 'done' || io.status !== 0) {
        this.error(`INQUIRY LUN ${num} failed: ${JSON.stringify(io)}`);
        continue;
      }
      this.result.commands++;
      const id = this.readInto(0, 96);
      if ((id[0]! & 0xe0) !== 0) continue; // peripheral qualifier: not connected
      const rc = Buffer.alloc(16);
      rc[0] = 0x25;
      const co = await this.run(field, rc, 'read', [{ va: BigInt(this.area(0)), key: 0, len: 8 }]);
      if (co.kind !== 'done' || co.status !== 0) {
        this.error(`READ CAPACITY LUN ${num} failed: ${JSON.stringify(co)}`);
        continue;
      }
      this.result.commands++;
      const cap = this.readInto(0, 8);
      luns.push({
        number: num,
        field,
        vendor: id.subarray(8, 16).toString('latin1').trim(),
        product: id.subarray(16, 32).toString('latin1').trim(),
        revision: id.subarray(32, 36).toString('latin1').trim(),
        blocks: cap.readUInt32BE(0) + 1,
        blockSize: cap.readUInt32BE(4),
      });
    }
    for (const l of luns) {
      this.model.set(l.number, new Map());
      this.busy.set(l.number, new Uint8Array(l.blocks));
    }
    return luns;
  }

  private pattern(lunNo: number, lba: number, v: number, bs: number): Buffer {
    const b = Buffer.alloc(bs);
    if (v === 0) return b;
    b.writeUInt32BE(lunNo, 0);
    b.writeUInt32BE(lba, 4);
    b.writeUInt32BE(v, 8);
    let x = (lba * 2654435761 + v * 40503 + lunNo) >>> 0;
    for (let i = 12; i < bs; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      b[i] = x >>> 24;
    }
    return b;
  }

  private allowed(lunNo: number, lba: number): Set<number> {
    return this.model.get(lunNo)!.get(lba) ?? new Set([0]);
  }

  /** Random I/O until `deadline` on `workers` concurrent streams. */
  async randomIo(luns: ScannedLun[], workers: number, deadline: number, maxBlocks: number): Promise<void> {
    if (luns.length === 0) {
      this.error('no LUNs found by the scan');
      return;
    }
    const one = async (w: number) => {
      while (Date.now() < deadline) {
        const lun = luns[Math.floor(this.rnd() * luns.length)]!;
        const bs = lun.blockSize;
        const maxB = Math.max(1, Math.min(maxBlocks, Math.floor(Layout.MAX_XFER / bs), lun.blocks));
        const blocks = 1 + Math.floor(this.rnd() * this.rnd() * maxB);
        const lba = Math.floor(this.rnd() * (lun.blocks - blocks + 1));
        const busy = this.busy.get(lun.number)!;
        let free = true;
        for (let i = lba; i < lba + blocks; i++) if (busy[i]) free = false;
        if (!free) {
          await new Promise((r) => setImmediate(r));
          continue;
        }
        busy.fill(1, lba, lba + blocks);
        try {
          await this.io(w, lun, lba, blocks, this.rnd() < 0.5);
        } finally {
          busy.fill(0, lba, lba + blocks);
        }
      }
    };
    await Promise.all(Array.from({ length: workers }, (_, w) => one(w)));
  }

  private async io(w: number, lun: ScannedLun, lba: number, blocks: number, write: boolean): Promise<void> {
    const bs = lun.blockSize;
    const len = blocks * bs;
    const cdb = Buffer.alloc(16);
    cdb[0] = write ? 0x2a : 0x28;
    cdb.writeUInt32BE(lba, 2);
    cdb.writeUInt16BE(blocks, 7);
    const segs = this.segments(w, len);
    const model = this.model.get(lun.number)!;
    const v = this.version++;
    if (write) {
      const data = Buffer.alloc(len);
      for (let i = 0; i < blocks; i++) this.pattern(lun.number, lba + i, v, bs).copy(data, i * bs);
      // Segments are laid out back to front: write each piece where its descriptor points.
      let off = 0;
      for (const s of segs) {
        this.client.part.mem.write(Number(s.va), data, off, s.len);
        off += s.len;
      }
      // Until the write is acknowledged the blocks may hold either version.
      for (let i = 0; i < blocks; i++) model.set(lba + i, new Set([...this.allowed(lun.number, lba + i), v]));
    } else {
      this.client.part.mem.write(this.area(w), Buffer.alloc(len, 0xee));
    }
    const key = `${w}`;
    const o = await this.run(lun.field, cdb, write ? 'write' : 'read', segs, (token) =>
      this.inflight.set(key, { lun, token, write, lba, blocks, v }));
    this.inflight.delete(key);
    if (o.kind === 'aborted') return; // a write stays "either version" until overwritten
    if (o.kind === 'error') return this.error(`${write ? 'WRITE' : 'READ'} LUN ${lun.number} LBA ${lba}+${blocks}: ${o.message}`);
    if (o.kind !== 'done' || o.status !== 0 || o.residual !== 0) {
      return this.error(`${write ? 'WRITE' : 'READ'} LUN ${lun.number} LBA ${lba}+${blocks}: ${JSON.stringify({ ...o, sense: o.kind === 'done' ? o.sense?.toString('hex') : undefined })}`);
    }
    this.result.commands++;
    if (write) {
      for (let i = 0; i < blocks; i++) model.set(lba + i, new Set([v]));
      return;
    }
    const data = Buffer.alloc(len);
    let off = 0;
    for (const s of segs) {
      this.client.part.mem.read(Number(s.va), data, off, s.len);
      off += s.len;
    }
    for (let i = 0; i < blocks; i++) {
      const got = data.subarray(i * bs, (i + 1) * bs);
      const ok = [...this.allowed(lun.number, lba + i)].some((ver) => this.pattern(lun.number, lba + i, ver, bs).equals(got));
      if (!ok) {
        this.error(`data mismatch LUN ${lun.number} LBA ${lba + i} (read ${lba}+${blocks}, block version ${got.readUInt32BE(8)})`);
        return;
      }
    }
    this.result.bytesVerified += len;
  }

  /** ABORT TASK on whatever command is in flight right now (if any). */
  async abortOne(): Promise<void> {
    const c = [...this.inflight.values()][0];
    if (!c) return;
    const r = await this.client.abortTask(c.lun.field, c.token);
    if (r === 'done') this.result.aborts++;
    else if (r === 'failed') this.error(`ABORT TASK on LUN ${c.lun.number} failed`);
  }

  async lunReset(luns: ScannedLun[]): Promise<void> {
    const lun = luns[Math.floor(this.rnd() * luns.length)];
    if (!lun) return;
    const r = await this.client.lunReset(lun.field);
    if (r === 'done') this.result.lunResets++;
    else if (r === 'failed') this.error(`LUN RESET on LUN ${lun.number} failed`);
  }
}
