/**
 * The verified workload a simulated domU runs through its frontend: LUN scan (REPORT LUNS, INQUIRY,
 * READ CAPACITY), then random reads and writes that keep the ring full, every block read back
 * compared with what this domain last wrote there, with ABORT and RESET sent in the middle.
 */
import { Buffer } from 'node:buffer';
import { ScsiFront, FrontCommandResult, FrontDevice } from './frontend.js';
import { Prng, xorshift32 } from '../../sim/prng.js';
import { XEN_PAGE_SIZE, XEN_VSCSIIF_RSLT_HOST, XEN_VSCSIIF_RSLT_RESET_SUCCESS, resultHost, resultStatus } from '../ring.js';
import { SenseKey, senseKeyOf } from '../../vscsi/sense.js';

export interface WorkloadOptions {
  seconds: number;
  seed: number;
  /** Send one ABORT and one LUN RESET during the run. */
  taskManagement?: boolean;
  /** Deadline extension while the runner restarts the backend etc. is not needed: commands just wait. */
  queueDepth?: number;
  /** false: the disk holds earlier data; only blocks written by this run are verified. */
  freshDisk?: boolean;
  line?: (s: string) => void;
}

export interface WorkloadResult {
  commands: number;
  errors: number;
  bytesVerified: number;
  lines: string[];
}

const STATUS_CHECK_CONDITION = 0x02;
/** How much of each LUN the workload uses, in bytes (keeps re-reads of written blocks frequent). */
const WORK_AREA = 8 << 20;
const MAX_RETRIES = 8;

/** Deterministic content of one block: identifies domain, device, LBA and write generation. */
export function blockPattern(blockSize: number, domid: number, dev: number, lba: number, gen: number): Buffer {
  const b = Buffer.alloc(blockSize);
  if (gen === 0) return b; // never written: the backstore starts zeroed
  let x = (domid * 0x9e3779b1) ^ (dev * 0x85ebca6b) ^ (lba * 0xc2b2ae35) ^ (gen * 0x27d4eb2f) ^ 0x5bd1e995;
  x >>>= 0;
  if (x === 0) x = 1;
  for (let i = 0; i < blockSize; i += 4) {
    x = xorshift32(x);
    b.writeUInt32LE(x, i);
  }
  b.writeUInt16LE(domid, 0);
  b.writeUInt16LE(dev, 2);
  b.writeUInt32LE(lba >>> 0, 4);
  b.writeUInt32LE(gen >>> 0, 8);
  return b;
}

function rw10(op: 0x28 | 0x2a, lba: number, blocks: number): Buffer {
  const c = Buffer.alloc(10);
  c[0] = op;
  c.writeUInt32BE(lba >>> 0, 2);
  c.writeUInt16BE(blocks, 7);
  return c;
}

interface Disk {
  dev: FrontDevice;
  blockSize: number;
  blocks: number;
  gen: Map<number, number>;
  unknown: Set<number>;
  busy: Set<number>;
}

export class VerifiedWorkload {
  readonly result: WorkloadResult = { commands: 0, errors: 0, bytesVerified: 0, lines: [] };
  private readonly disks = new Map<number, Disk>();
  private readonly rng: Prng;
  private genCounter = 1;

  constructor(
    private readonly front: ScsiFront,
    private readonly o: WorkloadOptions,
  ) {
    this.rng = new Prng(o.seed);
  }

  private say(s: string): void {
    this.result.lines.push(s);
    this.o.line?.(s);
  }

  private error(s: string): void {
    this.result.errors++;
    this.say(`dom ${this.front.domid}: ERROR ${s}`);
  }

  /** Run a command, retrying unit attentions as Linux's midlayer does. */
  private async exec(d: FrontDevice, cdb: Buffer, opts: { dataOut?: Buffer; readLength?: number }): Promise<FrontCommandResult> {
    const a = { channel: d.addr.channel, id: d.addr.id, lun: d.addr.lun };
    for (let i = 0; ; i++) {
      const r = await this.front.command(a, cdb, opts);
      this.result.commands++;
      const ua = resultHost(r.rslt) === 0 && resultStatus(r.rslt) === STATUS_CHECK_CONDITION && r.sense.length > 2 && senseKeyOf(r.sense) === SenseKey.UNIT_ATTENTION;
      if (!ua || i >= MAX_RETRIES) return r;
    }
  }

  /** LUN scan of one device: REPORT LUNS, INQUIRY, READ CAPACITY(10). */
  async scan(d: FrontDevice): Promise<boolean> {
    const tag = `dom ${this.front.domid} ${d.addr.host}:${d.addr.channel}:${d.addr.id}:${d.addr.lun}`;
    const rl = Buffer.alloc(12);
    rl[0] = 0xa0;
    rl.writeUInt32BE(4096, 6);
    const r1 = await this.exec(d, rl, { readLength: 4096 });
    if (r1.rslt !== 0) {
      this.error(`${tag}: REPORT LUNS rslt 0x${r1.rslt.toString(16)}`);
      return false;
    }
    const n = r1.data.readUInt32BE(0) / 8;
    const luns: number[] = [];
    for (let i = 0; i < n && 8 + i * 8 + 8 <= r1.data.length; i++) luns.push(r1.data.readUInt16BE(8 + i * 8) & 0x3fff);
    if (!luns.includes(d.addr.lun)) this.error(`${tag}: REPORT LUNS lists ${luns.join(',')} without LUN ${d.addr.lun}`);
    const inq = Buffer.from([0x12, 0, 0, 0, 96, 0]);
    const r2 = await this.exec(d, inq, { readLength: 96 });
    if (r2.rslt !== 0 || (r2.data[0]! & 0x1f) !== 0) {
      this.error(`${tag}: INQUIRY rslt 0x${r2.rslt.toString(16)} type ${r2.data[0]}`);
      return false;
    }
    const r3 = await this.exec(d, Buffer.from([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]), { readLength: 8 });
    if (r3.rslt !== 0) {
      this.error(`${tag}: READ CAPACITY rslt 0x${r3.rslt.toString(16)}`);
      return false;
    }
    const blockSize = r3.data.readUInt32BE(4);
    const blocks = Math.min(r3.data.readUInt32BE(0) + 1, Math.floor(WORK_AREA / blockSize));
    const vendor = r2.data.subarray(8, 16).toString('latin1').trim();
    this.say(`${tag}: ${vendor} disk, ${blocks} blocks of ${blockSize} in use, LUNs [${luns.join(',')}]`);
    this.disks.set(d.dev, { dev: d, blockSize, blocks, gen: new Map(), unknown: new Set(), busy: new Set() });
    return true;
  }

  /** Devices the frontend has that were not scanned yet (hot-plug). */
  async scanNew(): Promise<void> {
    for (const d of this.front.deviceList()) if (!this.disks.has(d.dev)) await this.scan(d);
  }

  private pickRange(disk: Disk): { lba: number; count: number } | undefined {
    const big = this.rng.next() < 0.08;
    const maxBlocks = Math.floor((this.front.maxSegments * XEN_PAGE_SIZE) / disk.blockSize);
    const want = big ? Math.min(maxBlocks, Math.floor((40 * XEN_PAGE_SIZE) / disk.blockSize) + this.rng.int(16)) : 1 + this.rng.int(16);
    for (let tries = 0; tries < 8; tries++) {
      const lba = this.rng.int(Math.max(1, disk.blocks - want));
      let clash = false;
      for (let i = 0; i < want && !clash; i++) clash = disk.busy.has(lba + i);
      if (!clash) return { lba, count: Math.min(want, disk.blocks - lba) };
    }
    return undefined;
  }

  private async oneIo(disk: Disk): Promise<void> {
    const range = this.pickRange(disk);
    if (!range) return new Promise((r) => setTimeout(r, 1));
    const { lba, count } = range;
    for (let i = 0; i < count; i++) disk.busy.add(lba + i);
    const dom = this.front.domid;
    try {
      if (this.rng.next() < 0.5) {
        const gen = this.genCounter++;
        const data = Buffer.concat(Array.from({ length: count }, (_, i) => blockPattern(disk.blockSize, dom, disk.dev.dev, lba + i, gen)));
        const r = await this.exec(disk.dev, rw10(0x2a, lba, count), { dataOut: data });
        const host = resultHost(r.rslt);
        if (r.rslt === 0) {
          for (let i = 0; i < count; i++) {
            disk.gen.set(lba + i, gen);
            disk.unknown.delete(lba + i);
          }
        } else if (host === XEN_VSCSIIF_RSLT_HOST.ABORT || host === XEN_VSCSIIF_RSLT_HOST.RESET) {
          for (let i = 0; i < count; i++) disk.unknown.add(lba + i);
        } else {
          for (let i = 0; i < count; i++) disk.unknown.add(lba + i);
          this.error(`WRITE(10) lba ${lba} x${count}: rslt 0x${r.rslt.toString(16)} sense ${r.sense.toString('hex')}`);
        }
      } else {
        const r = await this.exec(disk.dev, rw10(0x28, lba, count), { readLength: count * disk.blockSize });
        const host = resultHost(r.rslt);
        if (host === XEN_VSCSIIF_RSLT_HOST.ABORT || host === XEN_VSCSIIF_RSLT_HOST.RESET) return;
        if (r.rslt !== 0) return this.error(`READ(10) lba ${lba} x${count}: rslt 0x${r.rslt.toString(16)} sense ${r.sense.toString('hex')}`);
        for (let i = 0; i < count; i++) {
          if (disk.unknown.has(lba + i)) continue;
          if (this.o.freshDisk === false && !disk.gen.has(lba + i)) continue;
          const want = blockPattern(disk.blockSize, dom, disk.dev.dev, lba + i, disk.gen.get(lba + i) ?? 0);
          const got = r.data.subarray(i * disk.blockSize, (i + 1) * disk.blockSize);
          if (!got.equals(want)) return this.error(`READ(10) lba ${lba + i}: data differs from generation ${disk.gen.get(lba + i) ?? 0}`);
          this.result.bytesVerified += disk.blockSize;
        }
      }
    } finally {
      for (let i = 0; i < count; i++) disk.busy.delete(lba + i);
    }
  }

  private async taskManagementProbe(kind: 'abort' | 'reset'): Promise<void> {
    const disk = [...this.disks.values()][0];
    if (!disk) return;
    const a = { channel: disk.dev.addr.channel, id: disk.dev.addr.id, lun: disk.dev.addr.lun };
    const victim = this.front.inflight()[0] ?? 0;
    const rslt = await this.front.taskManagement(kind, a, victim);
    this.result.commands++;
    if (rslt !== XEN_VSCSIIF_RSLT_RESET_SUCCESS) this.error(`${kind.toUpperCase()} answered 0x${rslt.toString(16)}, expected 0x2002`);
    else this.say(`dom ${this.front.domid}: ${kind === 'abort' ? `ABORT of rqid ${victim}` : 'LUN RESET'} mid-run -> 0x2002`);
  }

  async run(): Promise<WorkloadResult> {
    for (const d of this.front.deviceList()) await this.scan(d);
    const end = Date.now() + this.o.seconds * 1000;
    const depth = this.o.queueDepth ?? 12;
    let abortAt = this.o.taskManagement ? Date.now() + this.o.seconds * 333 : Infinity;
    let resetAt = this.o.taskManagement ? Date.now() + this.o.seconds * 666 : Infinity;
    let scanning: Promise<void> | undefined;
    const worker = async (): Promise<void> => {
      while (Date.now() < end && !this.front.failed) {
        if (Date.now() > abortAt) {
          abortAt = Infinity;
          await this.taskManagementProbe('abort');
        } else if (Date.now() > resetAt) {
          resetAt = Infinity;
          await this.taskManagementProbe('reset');
        }
        if (this.front.deviceList().some((d) => !this.disks.has(d.dev)) && !scanning) {
          scanning = this.scanNew().finally(() => (scanning = undefined));
        }
        const disks = [...this.disks.values()];
        if (disks.length === 0) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        await this.oneIo(disks[this.rng.int(disks.length)]!);
      }
    };
    await Promise.all(Array.from({ length: depth }, worker));
    await scanning;
    if (this.front.failed) this.error(`frontend failed: ${this.front.failed}`);
    this.say(`dom ${this.front.domid}: ${this.result.commands} commands, ${this.result.errors} errors, ${this.result.bytesVerified} bytes verified over ${this.disks.size} LUN(s)`);
    return this.result;
  }
}

