/**
 * Frontend emulator: behaves as Linux xen-scsifront does on the wire (xen-vscsiif.md §5.3–§5.5, §8):
 * xenbus handshake, ring page and event channel setup, one shadow slot per rqid (16), one grant per
 * data page (read-only for writes), indirect segments when a transfer needs more than 26 pages,
 * synchronous ABORT/RESET, LUN hot-plug through Reconfiguring/Reconfigured, and the hardened
 * response checks (unknown rqid, response-producer overflow) that fail the host.
 */
import { Buffer } from 'node:buffer';
import {
  DMA_FROM_DEVICE,
  DMA_NONE,
  DMA_TO_DEVICE,
  SRING_REQ_EVENT,
  SRING_REQ_PROD,
  SRING_RSP_EVENT,
  SRING_RSP_PROD,
  Segment,
  VSCSIIF_ACT_SCSI_ABORT,
  VSCSIIF_ACT_SCSI_CDB,
  VSCSIIF_ACT_SCSI_RESET,
  VSCSIIF_ENTRY_SIZE,
  VSCSIIF_RING_SIZE,
  VSCSIIF_SEGMENT_SIZE,
  VSCSIIF_SG_GRANT,
  VSCSIIF_SG_TABLESIZE,
  XEN_PAGE_SIZE,
  decodeResponse,
  encodeRequest,
  encodeSegment,
  ringDiff,
  slotOffset,
} from '../ring.js';
import type { XenStoreWatch } from '../hypervisor.js';
import { XenbusState, parseDevName, parseState, parseUnsigned, parseVirtualAddress, VirtualAddress } from '../xenbus-nodes.js';
import { SimXenClient } from './client.js';
import { GTF_permit_access, GTF_readonly, GuestMemoryFile, SIM_GRANT_ENTRIES, type FrameSpan } from './guest-memory.js';

/** Linux reserves the first grant entries for the console and xenstore (GNTTAB_NR_RESERVED_ENTRIES). */
const FIRST_FREE_GREF = 8;

export interface FrontCommandResult {
  rqid: number;
  rslt: number;
  sense: Buffer;
  residual: number;
  /** What was read; empty when the command's `expect` matched (compared in place, not copied out). */
  data: Buffer;
  /** With `expect`: whether the bytes read are exactly those. */
  matched?: boolean;
}

export interface FrontDevice {
  dev: number;
  addr: VirtualAddress;
}

interface Shadow {
  resolve(r: FrontCommandResult): void;
  grants: number[];
  frames: number[];
  readLen: number;
  dataFrames: FrameSpan[];
  expect?: Buffer;
}

export interface ScsiFrontOptions {
  client: SimXenClient;
  memory: GuestMemoryFile;
  vhost: number;
  /** Called for protocol violations by the backend (the Linux frontend would fail the host). */
  onFatal?: (why: string) => void;
  /** Devices came or went (hot-plug). */
  onDevicesChanged?: (devices: FrontDevice[]) => void;
  /**
   * Share of the domain's pages and grant entries this vhost uses (several vhosts of one domU each
   * get their own); default all of them. The first page holds the ring.
   */
  pages?: { first: number; count: number };
  grefs?: { first: number; count: number };
}

export class ScsiFront {
  readonly domid: number;
  readonly fePath: string;
  bePath = '';
  backendDomid = 0;
  maxSegments = VSCSIIF_SG_TABLESIZE;
  private port = 0;
  private ringRef = 0;
  private reqProdPvt = 0;
  private rspCons = 0;
  private readonly shadows: Array<Shadow | undefined> = new Array(VSCSIIF_RING_SIZE).fill(undefined);
  private readonly slotWaiters: Array<() => void> = [];
  private freeGrefs: number[] = [];
  private freeFrames: number[] = [];
  private readonly ringFrame: number;
  private watch: XenStoreWatch | undefined;
  private devices = new Map<number, FrontDevice>();
  private reconciling: Promise<void> | undefined;
  private dirty = false;
  private connected = false;
  private closed = false;
  failed: string | undefined;
  /** Hostile emulator: stop reacting to backend state changes while it writes nodes by hand. */
  paused = false;
  /** Hostile emulator: leave responses unread (and the port masked). */
  ignoreEvents = false;

  constructor(private readonly o: ScsiFrontOptions) {
    this.domid = o.client.domid;
    this.fePath = `/local/domain/${this.domid}/device/vscsi/${o.vhost}`;
    const g0 = Math.max(FIRST_FREE_GREF, o.grefs?.first ?? 0);
    const gEnd = Math.min(SIM_GRANT_ENTRIES, o.grefs ? o.grefs.first + o.grefs.count : SIM_GRANT_ENTRIES);
    for (let g = gEnd - 1; g >= g0; g--) this.freeGrefs.push(g);
    this.ringFrame = o.pages?.first ?? 0;
    const fEnd = Math.min(o.memory.frames, o.pages ? o.pages.first + o.pages.count : o.memory.frames);
    for (let f = fEnd - 1; f > this.ringFrame; f--) this.freeFrames.push(f);
  }

  get xs() {
    return this.o.client.xenstore;
  }

  deviceList(): FrontDevice[] {
    return [...this.devices.values()];
  }

  // ---- grants ----
  grant(frame: number, readOnly: boolean): number {
    return this.grantAll([frame], readOnly)[0]!;
  }

  /** Grant every frame to the backend at once (what scsifront does for a request's pages). */
  grantAll(frames: readonly number[], readOnly: boolean): number[] {
    if (this.freeGrefs.length < frames.length) throw new Error('frontend out of grant references');
    const refs = frames.map(() => this.freeGrefs.pop()!);
    this.o.memory.writeGrants(refs, frames, GTF_permit_access | (readOnly ? GTF_readonly : 0), this.backendDomid);
    return refs;
  }

  /** gnttab_end_foreign_access: the page is ours again. */
  endGrant(ref: number): void {
    this.endGrants([ref]);
  }

  endGrants(refs: readonly number[]): void {
    this.o.memory.writeGrants(refs, undefined, 0, 0);
    for (const r of refs) this.freeGrefs.push(r);
  }

  allocFrame(): number {
    const f = this.freeFrames.pop();
    if (f === undefined) throw new Error('frontend out of guest pages');
    return f;
  }

  freeFrame(f: number): void {
    this.freeFrames.push(f);
  }

  // ---- xenbus ----
  /** Handshake (§5.3 step 3, 5) and wait until Connected. */
  async connect(timeoutMs = 10_000): Promise<void> {
    this.bePath = (await this.xs.read(`${this.fePath}/backend`)) ?? '';
    this.backendDomid = parseUnsigned(await this.xs.read(`${this.fePath}/backend-id`), 0x7fef) ?? 0;
    if (!this.bePath) throw new Error(`dom ${this.domid}: no backend for vscsi ${this.o.vhost}`);
    this.watch = await this.xs.watch(this.bePath, () => this.scheduleReconcile());
    const deadline = Date.now() + timeoutMs;
    while (!this.connected) {
      if (this.failed) throw new Error(this.failed);
      if (Date.now() > deadline) throw new Error(`dom ${this.domid}: backend did not connect in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
      this.scheduleReconcile();
    }
  }

  private scheduleReconcile(): void {
    if (this.closed) return;
    if (this.reconciling) {
      this.dirty = true;
      return;
    }
    this.reconciling = (async () => {
      do {
        this.dirty = false;
        try {
          await this.reconcile();
        } catch (e) {
          if (!this.closed) this.fatal(`xenbus: ${(e as Error).message}`);
        }
      } while (this.dirty && !this.closed);
      this.reconciling = undefined;
    })();
  }

  private async setState(s: number): Promise<void> {
    await this.xs.write(`${this.fePath}/state`, String(s));
  }

  private async reconcile(): Promise<void> {
    if (this.paused) return;
    const be = parseState(await this.xs.read(`${this.bePath}/state`));
    const fe = parseState(await this.xs.read(`${this.fePath}/state`));
    if (be === XenbusState.InitWait && (fe === XenbusState.Initialising || fe === undefined)) {
      await this.initRing();
      return;
    }
    if ((be === XenbusState.Connected && fe === XenbusState.Initialised) || (be === XenbusState.Reconfigured && fe === XenbusState.Reconfiguring)) {
      if (be === XenbusState.Connected) {
        const sg = parseUnsigned(await this.xs.read(`${this.bePath}/feature-sg-grant`), 65535) ?? 0;
        this.maxSegments = Math.max(VSCSIIF_SG_TABLESIZE, Math.min(sg, 128));
      }
      await this.addDevices();
      await this.setState(XenbusState.Connected);
      this.connected = true;
      return;
    }
    if (be === XenbusState.Reconfiguring && fe === XenbusState.Connected) {
      await this.removeDevices();
      await this.setState(XenbusState.Reconfiguring);
      return;
    }
    // A backend still finishing an earlier close while we re-initialise is not a reason to close.
    if ((be === XenbusState.Closing || be === XenbusState.Closed) && fe !== XenbusState.Closed && fe !== XenbusState.Initialising) {
      this.connected = false;
      if (fe !== XenbusState.Closing) await this.setState(XenbusState.Closing);
      this.failInflight();
      this.o.client.closePort(this.port);
      await this.setState(XenbusState.Closed);
    }
  }

  private async initRing(): Promise<void> {
    // SHARED_RING_INIT: zero the page, req_event = rsp_event = 1.
    this.o.memory.writeFrame(this.ringFrame, 0, Buffer.alloc(XEN_PAGE_SIZE), 0, XEN_PAGE_SIZE);
    this.o.memory.store32(this.ringFrame, SRING_REQ_EVENT, 1);
    this.o.memory.store32(this.ringFrame, SRING_RSP_EVENT, 1);
    this.reqProdPvt = 0;
    this.rspCons = 0;
    this.ringRef = this.grant(this.ringFrame, false);
    this.port = await this.o.client.allocUnbound(this.backendDomid, () => this.onEvent());
    await this.xs.transaction(async (tx) => {
      await tx.write(`${this.fePath}/ring-ref`, String(this.ringRef));
      await tx.write(`${this.fePath}/event-channel`, String(this.port));
      await tx.write(`${this.fePath}/state`, String(XenbusState.Initialised));
    });
  }

  private async devEntries(): Promise<Array<{ n: number; state: number | undefined; addr: VirtualAddress | undefined }>> {
    const out = [];
    for (const name of await this.xs.directory(`${this.bePath}/vscsi-devs`)) {
      const n = parseDevName(name);
      if (n === undefined) continue;
      out.push({
        n,
        state: parseState(await this.xs.read(`${this.bePath}/vscsi-devs/${name}/state`)),
        addr: parseVirtualAddress(await this.xs.read(`${this.bePath}/vscsi-devs/${name}/v-dev`)),
      });
    }
    return out;
  }

  /** Backend devs in Initialised become guest devices (scsi_add_device), frontend dev state 4. */
  private async addDevices(): Promise<void> {
    let changed = false;
    for (const d of await this.devEntries()) {
      if (d.state !== XenbusState.Initialised || !d.addr) continue;
      if (!this.devices.has(d.n)) {
        this.devices.set(d.n, { dev: d.n, addr: d.addr });
        changed = true;
      }
      await this.xs.write(`${this.fePath}/vscsi-devs/dev-${d.n}/state`, String(XenbusState.Connected));
    }
    if (changed) this.o.onDevicesChanged?.(this.deviceList());
  }

  private async removeDevices(): Promise<void> {
    let changed = false;
    for (const d of await this.devEntries()) {
      if (d.state !== XenbusState.Closing) continue;
      if (this.devices.delete(d.n)) changed = true;
      await this.xs.write(`${this.fePath}/vscsi-devs/dev-${d.n}/state`, String(XenbusState.Closed));
    }
    if (changed) this.o.onDevicesChanged?.(this.deviceList());
  }

  // ---- ring ----
  /** Reserve a free shadow slot (= rqid) synchronously, waiting while all 16 are busy. */
  private async takeSlot(): Promise<number> {
    for (;;) {
      if (this.failed) throw new Error(this.failed);
      const i = this.shadows.findIndex((s) => s === undefined);
      if (i >= 0) {
        this.shadows[i] = { resolve: () => undefined, grants: [], frames: [], readLen: 0, dataFrames: [] };
        return i;
      }
      await new Promise<void>((r) => this.slotWaiters.push(r));
    }
  }

  /** Publish one request image in the next slot (RING_PUSH_REQUESTS_AND_CHECK_NOTIFY). */
  pushRequest(image: Buffer): void {
    const m = this.o.memory;
    m.writeFrame(this.ringFrame, slotOffset(this.reqProdPvt), image, 0, VSCSIIF_ENTRY_SIZE);
    const old = m.load32(this.ringFrame, SRING_REQ_PROD);
    this.reqProdPvt = (this.reqProdPvt + 1) >>> 0;
    m.store32(this.ringFrame, SRING_REQ_PROD, this.reqProdPvt);
    const ev = m.load32(this.ringFrame, SRING_REQ_EVENT);
    if (ringDiff(this.reqProdPvt, ev) < ringDiff(this.reqProdPvt, old)) this.o.client.notify(this.port);
  }

  /** Raw ring access for the hostile emulator. */
  get ring() {
    return {
      memory: this.o.memory,
      frame: this.ringFrame,
      port: this.port,
      reqProdPvt: () => this.reqProdPvt,
      setReqProdPvt: (v: number) => {
        this.reqProdPvt = v >>> 0;
      },
    };
  }

  notifyBackend(): void {
    this.o.client.notify(this.port);
  }

  /**
   * Send a SCSI command and wait for its response. `dataOut` for writes, `readLength` for reads;
   * `expect` (reads): compare what was read with it where it lies, and copy it out only if it differs.
   * Transfers needing more than 26 pages use indirect segments when the backend offered them.
   */
  async command(
    addr: { channel: number; id: number; lun: number },
    cdb: Buffer,
    opts: { dataOut?: Buffer; readLength?: number; expect?: Buffer } = {},
  ): Promise<FrontCommandResult> {
    const rqid = await this.takeSlot();
    const len = opts.dataOut ? opts.dataOut.length : (opts.readLength ?? 0);
    const direction = opts.dataOut ? DMA_TO_DEVICE : len > 0 ? DMA_FROM_DEVICE : DMA_NONE;
    const pages = Math.ceil(len / XEN_PAGE_SIZE);
    if (pages > this.maxSegments) throw new Error(`transfer of ${len} bytes needs ${pages} pages; limit ${this.maxSegments}`);
    const sh: Shadow = { resolve: () => undefined, grants: [], frames: [], readLen: opts.dataOut ? 0 : len, dataFrames: [] };
    if (opts.expect && !opts.dataOut) sh.expect = opts.expect;
    this.shadows[rqid] = sh;
    const data = this.sharePages(sh, len, opts.dataOut, direction === DMA_TO_DEVICE);
    sh.dataFrames = data.spans;
    let segments = data.segments;
    let nrRaw = segments.length;
    if (segments.length > VSCSIIF_SG_TABLESIZE) {
      // Indirect: the descriptor array lives in its own page(s), granted read-only.
      const table = Buffer.alloc(segments.length * VSCSIIF_SEGMENT_SIZE);
      segments.forEach((s, i) => encodeSegment(table, i * VSCSIIF_SEGMENT_SIZE, s));
      segments = this.sharePages(sh, table.length, table, true).segments;
      nrRaw = VSCSIIF_SG_GRANT | segments.length;
    }
    const done = new Promise<FrontCommandResult>((resolve) => (sh.resolve = resolve));
    this.pushRequest(
      encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb, channel: addr.channel, id: addr.id, lun: addr.lun, direction, nrSegmentsRaw: nrRaw, segments }),
    );
    return done;
  }

  /**
   * Take pages for `len` bytes, fill them from `src` (if given), grant them to the backend and record
   * frames and grants in the shadow (released when the response comes).
   */
  private sharePages(sh: Shadow, len: number, src: Buffer | undefined, readOnly: boolean): { spans: FrameSpan[]; segments: Segment[] } {
    const spans: FrameSpan[] = [];
    for (let off = 0; off < len; off += XEN_PAGE_SIZE) spans.push({ frame: this.allocFrame(), offset: 0, length: Math.min(XEN_PAGE_SIZE, len - off) });
    if (src && spans.length > 0) this.o.memory.writeFrames(spans, src, 0);
    const refs = this.grantAll(spans.map((d) => d.frame), readOnly);
    for (const d of spans) sh.frames.push(d.frame);
    sh.grants.push(...refs);
    return { spans, segments: spans.map((d, i) => ({ gref: refs[i]!, offset: 0, length: d.length })) };
  }

  /** ABORT (act 2) of `refRqid` or RESET (act 3); resolves with rslt (0x2002 on success). */
  async taskManagement(kind: 'abort' | 'reset', addr: { channel: number; id: number; lun: number }, refRqid = 0): Promise<number> {
    const rqid = await this.takeSlot();
    const sh: Shadow = { resolve: () => undefined, grants: [], frames: [], readLen: 0, dataFrames: [] };
    this.shadows[rqid] = sh;
    const done = new Promise<FrontCommandResult>((resolve) => (sh.resolve = resolve));
    this.pushRequest(
      encodeRequest({
        rqid,
        act: kind === 'abort' ? VSCSIIF_ACT_SCSI_ABORT : VSCSIIF_ACT_SCSI_RESET,
        channel: addr.channel,
        id: addr.id,
        lun: addr.lun,
        refRqid,
        direction: DMA_NONE,
      }),
    );
    return (await done).rslt;
  }

  /**
   * Tear the ring down and run the handshake again (what a guest does after kexec or resume):
   * state Initialising, the backend answers InitWait, a fresh ring and event channel follow.
   */
  async reconnect(timeoutMs = 10_000): Promise<void> {
    this.failInflight();
    this.failed = undefined;
    this.connected = false;
    this.o.client.closePort(this.port);
    if (this.ringRef >= FIRST_FREE_GREF) this.endGrant(this.ringRef);
    this.ringRef = 0;
    this.paused = false;
    this.ignoreEvents = false;
    await this.setState(XenbusState.Initialising);
    const deadline = Date.now() + timeoutMs;
    while (!this.connected) {
      if (Date.now() > deadline) throw new Error(`dom ${this.domid}: reconnect did not complete in ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 5));
      this.scheduleReconcile();
    }
  }

  /**
   * Publish a hand-built request image (hostile emulator). `build` gets the reserved rqid; `afterPush`
   * runs right after publication (to rewrite the slot). Resolves undefined if no response arrives.
   */
  async raw(build: (rqid: number) => Buffer, timeoutMs: number, afterPush?: (slotOffsetInPage: number) => void): Promise<FrontCommandResult | undefined> {
    const rqid = await this.takeSlot();
    const sh = this.shadows[rqid]!;
    const done = new Promise<FrontCommandResult>((resolve) => (sh.resolve = resolve));
    const slot = slotOffset(this.reqProdPvt);
    this.pushRequest(build(rqid));
    afterPush?.(slot);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), timeoutMs)));
    const r = await Promise.race([done, timeout]);
    clearTimeout(timer);
    return r;
  }

  /** rqids currently in flight (for choosing an abort victim). */
  inflight(): number[] {
    return this.shadows.flatMap((s, i) => (s ? [i] : []));
  }

  private onEvent(): void {
    if (this.ignoreEvents) return;
    try {
      this.drainResponses();
    } finally {
      this.o.client.unmask(this.port);
    }
  }

  private drainResponses(): void {
    const m = this.o.memory;
    for (;;) {
      const rp = m.load32(this.ringFrame, SRING_RSP_PROD);
      // RING_RESPONSE_PROD_OVERFLOW (hardened scsifront): more responses than requests sent.
      if (ringDiff(rp, this.rspCons) > ringDiff(this.reqProdPvt, this.rspCons)) {
        return this.fatal(`backend response producer ${rp} beyond requests (${this.reqProdPvt})`);
      }
      while (this.rspCons !== rp) {
        const img = Buffer.alloc(VSCSIIF_ENTRY_SIZE);
        m.readFrame(this.ringFrame, slotOffset(this.rspCons), img, 0, VSCSIIF_ENTRY_SIZE);
        this.rspCons = (this.rspCons + 1) >>> 0;
        const r = decodeResponse(img);
        const sh = r.rqid < VSCSIIF_RING_SIZE ? this.shadows[r.rqid] : undefined;
        if (!sh) return this.fatal(`illegal rqid ${r.rqid} returned by backend`);
        this.shadows[r.rqid] = undefined;
        // Revoke every grant before looking at the data (scsifront_gnttab_done).
        this.endGrants(sh.grants);
        const matched = sh.expect && sh.expect.length === sh.readLen ? m.framesEqual(sh.dataFrames, sh.expect, 0) : undefined;
        const data = matched ? Buffer.alloc(0) : Buffer.allocUnsafe(sh.readLen);
        if (!matched && sh.readLen > 0) m.readFrames(sh.dataFrames, data, 0);
        for (const f of sh.frames) this.freeFrame(f);
        const done: FrontCommandResult = { rqid: r.rqid, rslt: r.rslt, sense: r.sense ?? Buffer.alloc(0), residual: r.residual, data };
        if (sh.expect) done.matched = matched === true;
        sh.resolve(done);
        this.slotWaiters.shift()?.();
      }
      m.store32(this.ringFrame, SRING_RSP_EVENT, (this.rspCons + 1) >>> 0);
      if (m.load32(this.ringFrame, SRING_RSP_PROD) === this.rspCons) return;
    }
  }

  /** Complete everything in flight with host RESET (the ring is going away), as scsifront does on resume. */
  private failInflight(): void {
    for (let i = 0; i < this.shadows.length; i++) {
      const sh = this.shadows[i];
      if (!sh) continue;
      this.shadows[i] = undefined;
      // DID_RESET-like completion so callers retry or give up.
      sh.resolve({ rqid: i, rslt: 8 << 16, sense: Buffer.alloc(0), residual: 0, data: Buffer.alloc(0) });
    }
    for (const w of this.slotWaiters.splice(0)) w();
  }

  private fatal(why: string): void {
    if (this.failed) return;
    this.failed = why;
    this.o.onFatal?.(why);
    this.failInflight();
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watch?.close();
    await this.reconciling;
  }
}
