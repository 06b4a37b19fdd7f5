/**
 * A simulated PowerVM for tests and `vtgt sim ibmvio` (ibmvio.md §9): adapter pairs with unit
 * addresses, a TCE table per client window backed by the client's shared-memory file, CRQ pages
 * with H_SEND_CRQ slot semantics (H_DROPPED when full, H_CLOSED without a partner queue),
 * transport events on H_FREE_CRQ / partner death / migration, H_COPY_RDMA with page-by-page TCE
 * translation and permission checks, and fault injection. Client partitions run in other processes
 * and reach it over a Unix socket; the server side is the in-process `VioHypervisor`.
 */
import { Buffer } from 'node:buffer';
import { rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { SharedRegion } from '../../native/shm.js';
import {
  CRQ_ENTRY_LEN,
  CRQ_QUEUE_BYTES,
  H,
  type HReturn,
  MAX_H_COPY_RDMA,
  TCE_PAGE_SHIFT,
  TCE_PAGE_SIZE,
  TcePerm,
  TransportEvent,
} from '../constants.js';
import { transportEventEntry } from '../crq-entry.js';
import type { VioHypervisor } from '../hypervisor.js';
import { type ClientToHv, type HvToClient, LineReader, partitionCredentialName } from './wire.js';
import { credentialDir, credentialFile, SimCredentials } from '../../sim/credentials.js';

export interface SimAdapterPair {
  serverUnit: number;
  clientUnit: number;
  /** Partition number the hypervisor reports for the client (H_GET_PARTNER_INFO). */
  clientPartition: number;
}

interface ClientSide {
  socket: Socket;
  region: SharedRegion;
  memPath: string;
  windowPages: number;
  /** Real page + 1 per IOBA page (0 = no translation). */
  tceReal: Int32Array;
  tcePerm: Uint8Array;
  queue: { ioba: number; len: number; next: number } | undefined;
  irqPending: boolean;
}

interface PairState extends SimAdapterPair {
  server: { interrupt: () => void; slots: Buffer; writeAt: number; readAt: number } | undefined;
  client: ClientSide | undefined;
  faults: { queueFullSends: number; closed: boolean };
}

export interface SimHypervisorStats {
  copies: number;
  bytesCopied: number;
  /** H_COPY_RDMA requests refused because a page was outside the window or lacked permission. */
  refusedCopies: number;
  sendsDropped: number;
}

export interface SimHypervisorOptions {
  socketPath: string;
  maxCopyLength?: number;
  /** Largest client window accepted (bytes). */
  maxWindowBytes?: number;
  /**
   * Where partition memory files are created (default: the socket's directory). The hypervisor, not
   * the partition, chooses the file: a partition must never make it map a path of its choosing.
   */
  memoryDir?: string;
  logger?: Logger;
}

export class SimPowerVM implements VioHypervisor {
  readonly describe = 'simulated PowerVM';
  readonly maxCopyLength: number;
  readonly stats: SimHypervisorStats = { copies: 0, bytesCopied: 0, refusedCopies: 0, sendsDropped: 0 };
  private readonly pairsByServer = new Map<number, PairState>();
  private readonly pairsByClient = new Map<number, PairState>();
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private credentials: SimCredentials | undefined;
  /** Attach requests refused for a missing or wrong credential. */
  refusedAttaches = 0;

  constructor(private readonly opts: SimHypervisorOptions) {
    this.maxCopyLength = opts.maxCopyLength ?? MAX_H_COPY_RDMA;
  }

  addAdapterPair(p: SimAdapterPair): void {
    if (this.pairsByServer.has(p.serverUnit) || this.pairsByClient.has(p.clientUnit)) {
      throw new Error(`simulated PowerVM: unit 0x${p.serverUnit.toString(16)} or 0x${p.clientUnit.toString(16)} already in use`);
    }
    const s: PairState = { ...p, server: undefined, client: undefined, faults: { queueFullSends: 0, closed: false } };
    this.pairsByServer.set(p.serverUnit, s);
    this.pairsByClient.set(p.clientUnit, s);
    this.credentials?.issue(partitionCredentialName(p.clientUnit));
  }

  /**
   * The credential file a client partition process needs to attach to `clientUnit` (issued at
   * `listen`): hand it to that partition only. `Partition.boot` finds it by default.
   */
  clientCredentialFile(clientUnit: number): string {
    return credentialFile(this.opts.socketPath, partitionCredentialName(clientUnit));
  }

  /**
   * Listen for client partitions. Each paired client adapter gets its own credential (a 0600 token
   * file beside the socket, `clientCredentialFile`): a partition process can attach only to the
   * adapter whose token it was given, as on PowerVM an LPAR owns its own virtual adapters.
   */
  async listen(): Promise<void> {
    const creds = new SimCredentials(credentialDir(this.opts.socketPath));
    creds.init();
    for (const unit of this.pairsByClient.keys()) creds.issue(partitionCredentialName(unit));
    this.credentials = creds;
    const srv = createServer((sock) => this.onConnection(sock));
    this.server = srv;
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(this.opts.socketPath, () => resolve());
    });
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    for (const p of this.pairsByServer.values()) this.detachClient(p, false);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.credentials?.dispose();
    this.credentials = undefined;
  }

  // ---- fault injection ------------------------------------------------------------------------

  /** The next `count` sends to this client's queue fail with H_DROPPED. */
  injectQueueFull(clientUnit: number, count: number): void {
    const p = this.pairsByClient.get(clientUnit);
    if (p) p.faults.queueFullSends = count;
  }

  /** Remove the TCE of one client page (a "bad TCE"). */
  injectBadTce(clientUnit: number, ioba: number): void {
    const c = this.pairsByClient.get(clientUnit)?.client;
    const page = Math.floor(ioba / TCE_PAGE_SIZE);
    if (c && page < c.windowPages) {
      c.tceReal[page] = 0;
      c.tcePerm[page] = 0;
    }
  }

  /** Post a transport event to one side (partner reset mid-command, migration). */
  injectTransportEvent(side: 'server' | 'client', unit: number, format: number): void {
    const p = side === 'server' ? this.pairsByServer.get(unit) : this.pairsByClient.get(unit);
    if (!p) return;
    if (side === 'server') this.postToServer(p, transportEventEntry(format));
    else this.postToClient(p, transportEventEntry(format));
  }

  // ---- VioHypervisor (server side) ------------------------------------------------------------

  registerCrq(unit: number, interrupt: () => void): HReturn {
    const p = this.pairsByServer.get(unit);
    if (!p) return H.NOT_FOUND;
    if (p.server) return H.RESOURCE;
    p.server = { interrupt, slots: Buffer.alloc(CRQ_QUEUE_BYTES), writeAt: 0, readAt: 0 };
    return p.client?.queue ? H.SUCCESS : H.CLOSED;
  }

  freeCrq(unit: number): HReturn {
    const p = this.pairsByServer.get(unit);
    if (!p) return H.NOT_FOUND;
    if (!p.server) return H.SUCCESS;
    p.server = undefined;
    this.postToClient(p, transportEventEntry(TransportEvent.PARTNER_DEREGISTER));
    return H.SUCCESS;
  }

  receiveCrq(unit: number): Buffer | undefined {
    const s = this.pairsByServer.get(unit)?.server;
    if (!s || s.slots[s.readAt] === 0) return undefined;
    const e = Buffer.from(s.slots.subarray(s.readAt, s.readAt + CRQ_ENTRY_LEN));
    s.slots.fill(0, s.readAt, s.readAt + CRQ_ENTRY_LEN);
    s.readAt = (s.readAt + CRQ_ENTRY_LEN) % CRQ_QUEUE_BYTES;
    return e;
  }

  sendCrq(unit: number, entry: Buffer): HReturn {
    const p = this.pairsByServer.get(unit);
    if (!p || !p.server) return H.PARAMETER;
    if (entry.length !== CRQ_ENTRY_LEN) return H.PARAMETER;
    return this.postToClient(p, entry);
  }

  copyFromPartner(unit: number, ioba: bigint, dst: Buffer): HReturn {
    return this.copy(unit, ioba, dst, 'from');
  }

  copyToPartner(unit: number, ioba: bigint, src: Buffer): HReturn {
    return this.copy(unit, ioba, src, 'to');
  }

  getPartnerInfo(unit: number): { rc: HReturn; partitionNumber: number } {
    const p = this.pairsByServer.get(unit);
    if (!p) return { rc: H.NOT_FOUND, partitionNumber: 0 };
    return { rc: H.SUCCESS, partitionNumber: p.clientPartition };
  }

  // ---- internals -----------------------------------------------------------------------------

  /**
   * H_COPY_RDMA with the client window on one side: every page of the range must be inside the
   * window and carry the permission; nothing is copied unless all of it is allowed.
   */
  private copy(unit: number, ioba: bigint, buf: Buffer, dir: 'from' | 'to'): HReturn {
    const p = this.pairsByServer.get(unit);
    const c = p?.client;
    if (!p || !p.server || !c) return H.PERMISSION;
    if (buf.length > this.maxCopyLength) return H.PARAMETER;
    if (buf.length === 0) return H.SUCCESS;
    const need = dir === 'from' ? TcePerm.READ : TcePerm.WRITE;
    const windowBytes = BigInt(c.windowPages) * BigInt(TCE_PAGE_SIZE);
    if (ioba < 0n || ioba + BigInt(buf.length) > windowBytes) {
      this.stats.refusedCopies++;
      return dir === 'from' ? H.SOURCE_PARM : H.DEST_PARM;
    }
    const start = Number(ioba);
    const runs: Array<{ real: number; off: number; len: number }> = [];
    for (let off = 0; off < buf.length; ) {
      const a = start + off;
      const page = a >>> TCE_PAGE_SHIFT;
      const inPage = a & (TCE_PAGE_SIZE - 1);
      const n = Math.min(TCE_PAGE_SIZE - inPage, buf.length - off);
      const real = c.tceReal[page]!;
      if (real === 0 || (c.tcePerm[page]! & need) === 0) {
        this.stats.refusedCopies++;
        return H.PERMISSION;
      }
      const realOff = (real - 1) * TCE_PAGE_SIZE + inPage;
      const last = runs[runs.length - 1];
      if (last && last.real + last.len === realOff) last.len += n;
      else runs.push({ real: realOff, off, len: n });
      off += n;
    }
    try {
      for (const r of runs) {
        if (dir === 'from') c.region.read(r.real, buf, r.off, r.len);
        else c.region.write(r.real, buf, r.off, r.len);
      }
    } catch {
      this.stats.refusedCopies++;
      return H.PERMISSION;
    }
    this.stats.copies++;
    this.stats.bytesCopied += buf.length;
    return H.SUCCESS;
  }

  private postToServer(p: PairState, entry: Buffer): HReturn {
    const s = p.server;
    if (!s) return H.CLOSED;
    if (s.slots[s.writeAt] !== 0) return H.DROPPED;
    entry.copy(s.slots, s.writeAt + 8, 8, 16);
    entry.copy(s.slots, s.writeAt, 0, 8);
    s.writeAt = (s.writeAt + CRQ_ENTRY_LEN) % CRQ_QUEUE_BYTES;
    const irq = s.interrupt;
    setImmediate(irq);
    return H.SUCCESS;
  }

  private postToClient(p: PairState, entry: Buffer): HReturn {
    const c = p.client;
    if (!c || !c.queue || p.faults.closed) return H.CLOSED;
    if (p.faults.queueFullSends > 0) {
      p.faults.queueFullSends--;
      this.stats.sendsDropped++;
      return H.DROPPED;
    }
    const q = c.queue;
    const realPage = c.tceReal[(q.ioba + q.next) >>> TCE_PAGE_SHIFT]!;
    if (realPage === 0) return H.CLOSED;
    const slot = (realPage - 1) * TCE_PAGE_SIZE + ((q.ioba + q.next) & (TCE_PAGE_SIZE - 1));
    const head = Buffer.alloc(1);
    try {
      c.region.read(slot, head, 0, 1);
      if (head[0] !== 0) {
        this.stats.sendsDropped++;
        return H.DROPPED;
      }
      // Bytes 8..15 first, the valid byte last (spapr_vio_send_crq order).
      c.region.write(slot + 8, entry, 8, 8);
      c.region.write(slot, entry, 0, 8);
    } catch {
      return H.CLOSED;
    }
    q.next = (q.next + CRQ_ENTRY_LEN) % q.len;
    this.raiseClientIrq(c);
    return H.SUCCESS;
  }

  private raiseClientIrq(c: ClientSide): void {
    if (c.irqPending) return;
    c.irqPending = true;
    setImmediate(() => {
      c.irqPending = false;
      this.write(c.socket, { op: 'irq' });
    });
  }

  private write(sock: Socket, m: HvToClient): void {
    if (sock.destroyed) return;
    // A partition that sends hcalls but never reads the answers is dropped, not buffered forever.
    if (sock.writableLength > 4 * 1024 * 1024) {
      sock.destroy();
      return;
    }
    sock.write(JSON.stringify(m) + '\n');
  }

  private onConnection(sock: Socket): void {
    this.sockets.add(sock);
    sock.setEncoding('utf8');
    let pair: PairState | undefined;
    const reader = new LineReader((line) => {
      let m: ClientToHv;
      try {
        m = JSON.parse(line) as ClientToHv;
      } catch {
        sock.destroy();
        return;
      }
      if (typeof m !== 'object' || m === null) {
        sock.destroy();
        return;
      }
      if (m.op === 'attach') {
        // One partition per connection: a second attach would orphan the first adapter's state.
        if (pair) {
          sock.destroy();
          return;
        }
        pair = this.attach(sock, m);
        if (!pair) setImmediate(() => sock.end());
        return;
      }
      if (m.op !== 'hcall' || !pair || pair.client?.socket !== sock || !Number.isSafeInteger(m.id)) {
        sock.destroy();
        return;
      }
      this.write(sock, { op: 'ret', id: m.id, rc: this.clientHcall(pair, m) });
    });
    sock.on('data', (chunk: string) => {
      // The answers to one chunk's hcalls leave in one write.
      sock.cork();
      try {
        if (!reader.push(chunk)) sock.destroy();
      } finally {
        sock.uncork();
      }
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      this.sockets.delete(sock);
      // The partition died: its queue is gone, the server gets "partner failed".
      if (pair && pair.client?.socket === sock) this.detachClient(pair, true);
    });
  }

  private attach(sock: Socket, m: Extract<ClientToHv, { op: 'attach' }>): PairState | undefined {
    const p = typeof m.unit === 'number' ? this.pairsByClient.get(m.unit) : undefined;
    const fail = (message: string) => {
      this.write(sock, { op: 'attached', rc: H.NOT_FOUND, partition: 0, message });
      return undefined;
    };
    if (!p) return fail(`no client adapter with unit address ${String(m.unit)}`);
    if (!this.credentials?.verify(partitionCredentialName(p.clientUnit), m.token)) {
      this.refusedAttaches++;
      this.opts.logger?.warn({ clientUnit: p.clientUnit }, 'simulated PowerVM: attach without the adapter\'s credential refused');
      this.write(sock, { op: 'attached', rc: H.PERMISSION, partition: 0, message: `no valid credential for client adapter 0x${p.clientUnit.toString(16)}` });
      return undefined;
    }
    if (p.client) return fail(`client adapter 0x${p.clientUnit.toString(16)} is already attached`);
    const maxWindow = this.opts.maxWindowBytes ?? 256 * 1024 * 1024;
    if (!Number.isSafeInteger(m.windowBytes) || m.windowBytes < TCE_PAGE_SIZE || m.windowBytes > maxWindow) {
      return fail(`window size must be ${TCE_PAGE_SIZE}..${maxWindow} bytes`);
    }
    const windowPages = Math.floor(m.windowBytes / TCE_PAGE_SIZE);
    const memPath = join(this.opts.memoryDir ?? dirname(this.opts.socketPath), `partition-${p.clientUnit.toString(16)}.mem`);
    let region: SharedRegion;
    try {
      region = SharedRegion.create(memPath, windowPages * TCE_PAGE_SIZE);
    } catch (err) {
      return fail(`cannot create partition memory: ${(err as Error).message}`);
    }
    p.client = {
      socket: sock,
      region,
      memPath,
      windowPages,
      tceReal: new Int32Array(windowPages),
      tcePerm: new Uint8Array(windowPages),
      queue: undefined,
      irqPending: false,
    };
    this.write(sock, { op: 'attached', rc: H.SUCCESS, partition: p.clientPartition, memPath });
    return p;
  }

  private detachClient(p: PairState, notify: boolean): void {
    const c = p.client;
    if (!c) return;
    p.client = undefined;
    c.region.close();
    rmSync(c.memPath, { force: true });
    if (notify && c.queue) this.postToServer(p, transportEventEntry(TransportEvent.PARTNER_FAILED));
  }

  private clientHcall(p: PairState, m: Extract<ClientToHv, { op: 'hcall' }>): HReturn {
    const c = p.client!;
    const int = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    switch (m.call) {
      case 'H_PUT_TCE': {
        if (!int(m.ioba) || !int(m.pages) || !int(m.realOffset) || !int(m.perm) || m.perm > TcePerm.RW) return H.PARAMETER;
        if (m.ioba % TCE_PAGE_SIZE || m.realOffset % TCE_PAGE_SIZE) return H.PARAMETER;
        const first = m.ioba / TCE_PAGE_SIZE;
        const realFirst = m.realOffset / TCE_PAGE_SIZE;
        if (first + m.pages > c.windowPages || (realFirst + m.pages) * TCE_PAGE_SIZE > c.region.size) return H.PARAMETER;
        for (let i = 0; i < m.pages; i++) {
          c.tceReal[first + i] = m.perm ? realFirst + i + 1 : 0;
          c.tcePerm[first + i] = m.perm;
        }
        return H.SUCCESS;
      }
      case 'H_REG_CRQ': {
        if (c.queue) return H.RESOURCE;
        if (!int(m.ioba) || !int(m.len) || m.len < CRQ_QUEUE_BYTES || m.len % TCE_PAGE_SIZE || m.ioba % TCE_PAGE_SIZE) return H.PARAMETER;
        for (let a = m.ioba; a < m.ioba + m.len; a += TCE_PAGE_SIZE) {
          const page = a / TCE_PAGE_SIZE;
          if (page >= c.windowPages || c.tceReal[page] === 0 || (c.tcePerm[page]! & TcePerm.WRITE) === 0) return H.PARAMETER;
        }
        c.queue = { ioba: m.ioba, len: m.len, next: 0 };
        return p.server ? H.SUCCESS : H.CLOSED;
      }
      case 'H_FREE_CRQ':
        if (c.queue) {
          c.queue = undefined;
          this.postToServer(p, transportEventEntry(TransportEvent.PARTNER_DEREGISTER));
        }
        return H.SUCCESS;
      case 'H_ENABLE_CRQ':
        return H.SUCCESS;
      case 'H_SEND_CRQ': {
        if (!c.queue) return H.CLOSED;
        if (typeof m.entry !== 'string' || !/^[0-9a-f]{32}$/i.test(m.entry)) return H.PARAMETER;
        return this.postToServer(p, Buffer.from(m.entry, 'hex'));
      }
      default:
        return H.FUNCTION;
    }
  }
}
