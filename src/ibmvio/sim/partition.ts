/**
 * The client partition's side of the simulated PowerVM: its memory (a shared-memory file the
 * hypervisor maps), hcalls over the Unix socket, and interrupts. Used by the client emulator and the
 * hostile client, both running in their own process.
 */
import { connect, type Socket } from 'node:net';
import { SharedRegion } from '../../native/shm.js';
import { CRQ_ENTRY_LEN, H, type HReturn } from '../constants.js';
import { type ClientToHv, type HvToClient, LineReader, partitionCredentialName } from './wire.js';
import { credentialFile, readCredential } from '../../sim/credentials.js';
import { InFlightTable } from '../../vscsi/in-flight-table.js';

type HcallArgs =
  | { call: 'H_PUT_TCE'; ioba: number; pages: number; realOffset: number; perm: number }
  | { call: 'H_REG_CRQ'; ioba: number; len: number }
  | { call: 'H_FREE_CRQ' }
  | { call: 'H_ENABLE_CRQ' }
  | { call: 'H_SEND_CRQ'; entry: string };

export class Partition {
  private nextId = 1;
  /** Hypercalls awaiting their return code (a table, not a Map: see InFlightTable). */
  private readonly waiting = new InFlightTable<number, (rc: number) => void>();
  private irqHandler: () => void = () => {};
  private closed = false;

  private constructor(
    private readonly sock: Socket,
    readonly mem: SharedRegion,
    readonly partitionNumber: number,
  ) {}

  /**
   * Attach to client adapter `unit`, proving the right to it with its credential: `token`, or the
   * token file `tokenFile` (default: where the simulated PowerVM at `socketPath` keeps it).
   */
  static async boot(opts: { socketPath: string; unit: number; memBytes: number; token?: string; tokenFile?: string }): Promise<Partition> {
    const who = `client adapter 0x${(opts.unit >>> 0).toString(16)}`;
    const token = opts.token ?? readCredential(opts.tokenFile ?? credentialFile(opts.socketPath, partitionCredentialName(opts.unit)), who);
    const sock = connect(opts.socketPath);
    sock.setEncoding('utf8');
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    let part: Partition | undefined;
    const attached = new Promise<{ rc: number; partition: number; memPath?: string; message?: string }>((resolve, reject) => {
      const reader = new LineReader((line) => {
        const m = JSON.parse(line) as HvToClient;
        if (m.op === 'attached') resolve(m);
        else if (m.op === 'ret') part?.onRet(m.id, m.rc);
        else if (m.op === 'irq') part?.irqHandler();
      }, 1 << 20);
      sock.on('data', (c: string) => reader.push(c));
      sock.once('close', () => {
        reject(new Error('simulated PowerVM closed the connection'));
        part?.onClose();
      });
    });
    sock.write(JSON.stringify({ op: 'attach', unit: opts.unit, windowBytes: opts.memBytes, token } satisfies ClientToHv) + '\n');
    const a = await attached;
    if (a.rc !== H.SUCCESS || !a.memPath) {
      sock.destroy();
      throw new Error(`attach to client adapter 0x${opts.unit.toString(16)} refused: ${a.message ?? a.rc}`);
    }
    // Our memory is the hypervisor's to allocate; we map what it created for us.
    const mem = SharedRegion.open(a.memPath);
    part = new Partition(sock, mem, a.partition);
    return part;
  }

  onIrq(fn: () => void): void {
    this.irqHandler = fn;
  }

  hcall(args: HcallArgs): Promise<HReturn> {
    if (this.closed) return Promise.resolve(H.CLOSED);
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.sock.write(JSON.stringify({ op: 'hcall', id, ...args }) + '\n');
    });
  }

  sendCrq(entry: Buffer): Promise<HReturn> {
    return this.hcall({ call: 'H_SEND_CRQ', entry: entry.subarray(0, CRQ_ENTRY_LEN).toString('hex') });
  }

  /** Raw line to the hypervisor (hostile tests). */
  rawWrite(line: string): void {
    if (!this.closed) this.sock.write(line);
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private onRet(id: number, rc: number): void {
    const w = this.waiting.get(id);
    this.waiting.delete(id);
    w?.(rc);
  }

  private onClose(): void {
    this.closed = true;
    for (const w of this.waiting.values()) w(H.CLOSED);
    this.waiting.clear();
  }

  close(): void {
    this.sock.end();
    this.sock.destroy();
    this.onClose();
    this.mem.close();
  }
}
