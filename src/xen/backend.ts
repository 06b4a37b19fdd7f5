/**
 * One vscsiif ring (one virtual host of one domU): consumes requests, submits them to the SCSI core
 * through a Nexus, moves data with grant copy and posts responses, following ring.h's index and
 * event rules (xen-vscsiif.md §1.2, §4, §7).
 *
 * Trust model: everything in the shared page is hostile. Each request is copied out exactly once and
 * only the copy is used; indirect descriptor tables are copied once too. A producer index that claims
 * more requests than can exist halts this ring for good with its event channel left masked (XSA-332
 * behaviour); every other defect is answered with the protocol's error result.
 */
import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import { dataInPool, releaseDataOut } from '../vscsi/buffer-pool.js';
import { InFlightTable } from '../vscsi/in-flight-table.js';
import type { Nexus, ScsiCompletion, DataDirection } from '../vscsi/fabric.js';
import { TaskAttribute, TmfFunction, TmfResponse } from '../vscsi/fabric.js';
import {
  DMA_BIDIRECTIONAL,
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
  VSCSIIF_MAX_COMMAND_SIZE,
  VSCSIIF_RING_SIZE,
  VscsiifRequest,
  XEN_VSCSIIF_RSLT_HOST,
  XEN_VSCSIIF_RSLT_RESET_FAILED,
  XEN_VSCSIIF_RSLT_RESET_SUCCESS,
  decodeRequest,
  encodeResult,
  encodeResponse,
  ringDiff,
  senseLengthToSend,
  slotOffset,
} from './ring.js';
import { decodeIndirectTables, planSegments, sliceSegments } from './segments.js';
import { BoundEventChannel, ForeignPage, GNTST, GrantRange, XenHypervisor } from './hypervisor.js';

/** Where a guest's (channel, id, lun) lands in the core. */
export interface LunTarget {
  nexus: Nexus;
  lun: number;
}

export interface VscsiRingOptions {
  hv: XenHypervisor;
  frontendDomid: number;
  ringRef: number;
  eventChannel: number;
  /** Translate the guest's virtual address; undefined = not configured (answered NO_CONNECT). */
  resolve(channel: number, id: number, lun: number): LunTarget | undefined;
  /** Data segments we advertised in feature-sg-grant (0 = indirect not offered). */
  maxIndirectSegments: number;
  /** For messages: "dom 3 vhost 0". */
  name: string;
  logger?: Logger;
}

export interface VscsiRingStats {
  requests: number;
  /** Requests whose data was described through indirect (feature-sg-grant) tables. */
  indirect: number;
  responses: number;
  errors: number;
  bytesIn: number;
  bytesOut: number;
  aborts: number;
  resets: number;
}

interface Pending {
  req: VscsiifRequest;
  target: LunTarget;
  answered: boolean;
  /** The core dropped it (a TMF, PREEMPT AND ABORT, nexus loss); it will never complete. */
  coreAborted: boolean;
  /** Pooled data-out buffers, given back once the core completed the command normally. */
  dataOut?: Array<() => void>;
}

/** Events in a row that found no work before we start delaying the unmask (event-storm damping). */
const SPURIOUS_EVENTS_BEFORE_DAMPING = 64;
const DAMPED_UNMASK_DELAY_MS = 5;
/** How long stop() waits for the core to finish outstanding commands. */
const DRAIN_TIMEOUT_MS = 30_000;
/**
 * Requests taken from the ring per event-loop turn. With all 16 taken in one turn, the frontend got
 * its responses in one batch and then refilled the ring while the backend waited: the two sides
 * took turns instead of working at once.
 */
const REQUESTS_PER_TURN = 4;

export class VscsiRing {
  private page: ForeignPage | undefined;
  private evtchn: BoundEventChannel | undefined;
  private reqCons = 0;
  private rspProdPvt = 0;
  private rspPushed = 0;
  private readonly pending = new InFlightTable<number, Pending>();
  /** Task management functions of this ring still running, per nexus (they answer what they abort). */
  private readonly localTmfs = new Map<Nexus, number>();
  private processing = false;
  private again = false;
  private pushScheduled = false;
  private spurious = 0;
  private stopped = false;
  private quiescing = false;
  private haltReason: string | undefined;
  private drainWaiters: Array<() => void> = [];
  readonly stats: VscsiRingStats = { requests: 0, indirect: 0, responses: 0, errors: 0, bytesIn: 0, bytesOut: 0, aborts: 0, resets: 0 };
  /** Called once if the ring is halted because of a hostile or broken frontend. */
  onHalt: ((reason: string) => void) | undefined;

  constructor(private readonly o: VscsiRingOptions) {}

  /** Why the ring was halted, or undefined while it serves. */
  get halted(): string | undefined {
    return this.haltReason;
  }

  /**
   * Map the ring and bind the event channel. Indices start from the shared rsp_prod, which is 0 on a
   * fresh ring (SHARED_RING_INIT) and is where a restarted backend must resume: requests published
   * but never answered are consumed again.
   */
  async start(): Promise<void> {
    this.page = this.o.hv.mapGrant(this.o.frontendDomid, this.o.ringRef, true);
    this.rspProdPvt = this.rspPushed = this.page.load32(SRING_RSP_PROD);
    this.reqCons = this.rspProdPvt;
    try {
      this.evtchn = await this.o.hv.bindInterdomain(this.o.frontendDomid, this.o.eventChannel, () => this.kick());
    } catch (e) {
      this.page.unmap();
      this.page = undefined;
      throw e;
    }
    this.kick();
  }

  /** Wait until every consumed request has been answered. */
  drain(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  /**
   * Stop serving: wait for outstanding requests (unless `force`, and at most `drainTimeoutMs`), then
   * unbind and unmap.
   */
  async stop(force = false, drainTimeoutMs = DRAIN_TIMEOUT_MS): Promise<void> {
    // Consume nothing new while draining: what the frontend publishes now is left in the ring for
    // whoever maps it next (a restarted backend resumes from the shared rsp_prod).
    this.quiescing = true;
    if (!force && this.pending.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        this.drain().then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), drainTimeoutMs))),
      ]);
      clearTimeout(timer);
      if (timedOut) {
        this.o.logger?.warn(
          { domid: this.o.frontendDomid, ring: this.o.name, pending: this.pending.size },
          `xen: ${this.o.name}: ${this.pending.size} commands still running after ${drainTimeoutMs} ms; stopping without their responses`,
        );
      }
    }
    this.stopped = true;
    this.flushResponses();
    this.evtchn?.close();
    this.evtchn = undefined;
    this.page?.unmap();
    this.page = undefined;
    this.pending.clear();
    this.releaseDrainWaiters();
  }

  private kick(): void {
    if (this.stopped || this.haltReason) return;
    if (this.processing) {
      this.again = true;
      return;
    }
    this.processing = true;
    setImmediate(() => this.processRing());
  }

  private processRing(): void {
    let worked = false;
    let yielded = false;
    try {
      for (;;) {
        if (this.stopped || this.haltReason || !this.page) return;
        this.again = false;
        const rp = this.page.load32(SRING_REQ_PROD);
        // RING_REQUEST_PROD_OVERFLOW: the frontend claims more requests than the ring can hold.
        if (ringDiff(rp, this.rspProdPvt) > VSCSIIF_RING_SIZE) {
          this.halt(`bogus ring: req_prod ${rp} is more than ${VSCSIIF_RING_SIZE} past rsp_prod ${this.rspProdPvt}`);
          return;
        }
        if (this.quiescing) return;
        let budget = REQUESTS_PER_TURN;
        while (this.reqCons !== rp) {
          // RING_REQUEST_CONS_OVERFLOW: every slot holds an unanswered request; wait for completions.
          if (ringDiff(this.reqCons, this.rspProdPvt) >= VSCSIIF_RING_SIZE) break;
          if (budget-- === 0) {
            yielded = true;
            break;
          }
          const copy = Buffer.allocUnsafe(VSCSIIF_ENTRY_SIZE);
          this.page.read(slotOffset(this.reqCons), copy, 0, VSCSIIF_ENTRY_SIZE);
          this.reqCons = (this.reqCons + 1) >>> 0;
          worked = true;
          this.handle(decodeRequest(copy));
          if (this.stopped || this.haltReason || !this.page) return;
        }
        if (yielded || this.reqCons !== rp) break; // full: completions will call kick()
        // RING_FINAL_CHECK_FOR_REQUESTS: ask for an event at the next request, then look again.
        this.page.store32(SRING_REQ_EVENT, (this.reqCons + 1) >>> 0);
        this.page.fence();
        if (this.page.load32(SRING_REQ_PROD) === this.reqCons && !this.again) break;
      }
    } catch (e) {
      // A fault in our own mapping (e.g. the simulator's file vanished): stop this ring only.
      this.halt(`ring access failed: ${(e as Error).message}`);
      return;
    } finally {
      this.processing = yielded;
    }
    if (yielded) {
      // Let the requests taken so far complete and their responses reach the frontend (it can work
      // on them while we take the rest); the port stays masked until the ring is empty.
      setImmediate(() => this.processRing());
      return;
    }
    this.flushResponses();
    this.spurious = worked ? 0 : this.spurious + 1;
    if (this.spurious > SPURIOUS_EVENTS_BEFORE_DAMPING) {
      setTimeout(() => this.evtchn?.unmask(), DAMPED_UNMASK_DELAY_MS);
    } else {
      this.evtchn?.unmask();
    }
  }

  private halt(reason: string): void {
    if (this.haltReason) return;
    this.haltReason = reason;
    this.o.logger?.error(
      { domid: this.o.frontendDomid, ring: this.o.name, reason },
      `xen: ${this.o.name}: halting this ring (frontend misbehaved); the guest must reconnect the device`,
    );
    // Event channel stays masked (no unmask), as Linux scsiback does after "bogus ring requests".
    this.onHalt?.(reason);
    this.releaseDrainWaiters();
  }

  private handle(req: VscsiifRequest): void {
    this.stats.requests++;
    const target = this.o.resolve(req.channel, req.id, req.lun);
    if (req.act === VSCSIIF_ACT_SCSI_ABORT || req.act === VSCSIIF_ACT_SCSI_RESET) {
      if (!target) return this.respondError(req.rqid, XEN_VSCSIIF_RSLT_HOST.NO_CONNECT);
      void this.taskManagement(req, target);
      return;
    }
    if (req.act !== VSCSIIF_ACT_SCSI_CDB) return this.respondError(req.rqid, XEN_VSCSIIF_RSLT_HOST.ERROR);
    if (req.direction > DMA_NONE || req.direction === DMA_BIDIRECTIONAL) {
      // vscsiif has one buffer and no read length: a bidirectional command cannot be described.
      return this.respondError(req.rqid, XEN_VSCSIIF_RSLT_HOST.ERROR);
    }
    if (req.cmdLen === 0 || req.cmdLen > VSCSIIF_MAX_COMMAND_SIZE) return this.respondError(req.rqid, XEN_VSCSIIF_RSLT_HOST.ERROR);
    if (!target) return this.respondError(req.rqid, XEN_VSCSIIF_RSLT_HOST.NO_CONNECT);
    if (this.pending.has(req.rqid)) {
      // Tags must be unique among active tasks; a reused rqid is a frontend bug.
      return this.respondError(req.rqid, XEN_VSCSIIF_RSLT_HOST.ERROR);
    }
    const plan = planSegments(req, this.o.maxIndirectSegments);
    if ('detail' in plan) {
      this.o.logger?.warn({ domid: this.o.frontendDomid, ring: this.o.name, rqid: req.rqid, problem: plan.detail }, 'xen: bad segments');
      return this.respondError(req.rqid, XEN_VSCSIIF_RSLT_HOST.ERROR);
    }
    let segments: Segment[];
    if (plan.kind === 'direct') {
      segments = plan.segments;
    } else {
      this.stats.indirect++;
      const tables = Buffer.alloc(plan.descriptorCount * 8);
      if (!this.copyIn(plan.tables, tables, 0)) return this.respondError(req.rqid, XEN_VSCSIIF_RSLT_HOST.ERROR);
      const d = decodeIndirectTables(tables, plan.descriptorCount);
      if ('detail' in d) {
        this.o.logger?.warn({ domid: this.o.frontendDomid, ring: this.o.name, rqid: req.rqid, problem: d.detail }, 'xen: bad indirect segments');
        return this.respondError(req.rqid, XEN_VSCSIIF_RSLT_HOST.ERROR);
      }
      segments = d.segments;
    }
    const direction: DataDirection =
      req.direction === DMA_TO_DEVICE ? 'write' : req.direction === DMA_FROM_DEVICE ? 'read' : 'none';
    const expectedLength = direction === 'none' ? 0 : segments.reduce((a, s) => a + s.length, 0);
    const p: Pending = { req, target, answered: false, coreAborted: false };
    this.pending.set(req.rqid, p);
    /** Grant-copies data-out [offset, offset+dst.length) from the guest into dst, or throws. */
    const copyDataOut = (offset: number, dst: Buffer): void => {
      const length = dst.length;
      if (p.answered || this.stopped) throw new Error('command no longer active');
      if (offset < 0 || offset + length > expectedLength) {
        throw new RangeError(`data-out [${offset}, +${length}) outside the ${expectedLength}-byte buffer`);
      }
      if (!this.copyIn(sliceSegments(segments, offset, length), dst, 0)) {
        throw new Error(`grant copy from dom ${this.o.frontendDomid} failed`);
      }
      this.stats.bytesOut += length;
    };
    target.nexus.submit({
      lun: target.lun,
      // No copy here: the core copies the CDB once, and `req` was decoded from this request's own copy of the slot.
      cdb: req.cmnd.subarray(0, req.cmdLen),
      // vscsiif carries no task attribute.
      attribute: TaskAttribute.SIMPLE,
      tag: BigInt(req.rqid),
      direction,
      expectedLength,
      port: {
        fetchDataOut: async (offset: number, length: number): Promise<Buffer> => {
          // Pooled, not a fresh zero-filled Buffer: the copy overwrites all of it, and an O_DIRECT
          // backstore takes the pool's aligned buffers without a bounce copy. The grant copy is
          // synchronous, so a failed one leaves nothing writing into the buffer.
          const lent = dataInPool.acquire(length);
          try {
            copyDataOut(offset, lent.data);
          } catch (err) {
            lent.release();
            throw err;
          }
          (p.dataOut ??= []).push(lent.release);
          return lent.data;
        },
        fetchDataOutInto: (offset: number, dst: Buffer): boolean => {
          copyDataOut(offset, dst);
          return true;
        },
        complete: (result: ScsiCompletion) => this.complete(p, segments, expectedLength, result),
        aborted: () => this.coreAborted(p),
      },
    });
  }

  private complete(p: Pending, segments: Segment[], expectedLength: number, result: ScsiCompletion): void {
    releaseDataOut(p.dataOut, result.status);
    p.dataOut = undefined;
    try {
      this.answer(p, segments, expectedLength, result);
    } finally {
      // The grant copy is synchronous: the core's pooled data-in buffer can be reused at once.
      result.releaseDataIn?.();
    }
  }

  private answer(p: Pending, segments: Segment[], expectedLength: number, result: ScsiCompletion): void {
    if (p.answered) return;
    // vscsiif's residual_len is unsigned and Linux scsifront feeds it to scsi_set_resid: it can
    // only say "fewer bytes than asked", so an overflow residual is not reported.
    const residual = result.residual.kind === 'underflow' ? result.residual.count : 0;
    if (result.dataIn && result.dataIn.length > 0 && !this.stopped) {
      // The core limits data-in to the expected length; the bound here only protects the guest.
      const len = Math.min(result.dataIn.length, expectedLength);
      const ok = this.copyOut(sliceSegments(segments, 0, len), result.dataIn, 0);
      if (!ok) return this.finish(p, encodeResult(XEN_VSCSIIF_RSLT_HOST.ERROR, 0), undefined, 0);
      this.stats.bytesIn += len;
    }
    const n = senseLengthToSend(result.sense);
    this.finish(p, encodeResult(XEN_VSCSIIF_RSLT_HOST.OK, result.status), n > 0 ? result.sense!.subarray(0, n) : undefined, residual);
  }

  /**
   * The core dropped a command. If one of our own ABORT/RESET requests is running on that nexus it
   * answers the command; otherwise another initiator's TMF (or a PREEMPT AND ABORT) killed it and
   * the guest gets host RESET at once, which Linux retries.
   */
  private coreAborted(p: Pending): void {
    p.coreAborted = true;
    if ((this.localTmfs.get(p.target.nexus) ?? 0) > 0) return;
    this.finish(p, encodeResult(XEN_VSCSIIF_RSLT_HOST.RESET, 0), undefined, 0);
  }

  private finish(p: Pending, rslt: number, sense: Buffer | undefined, residual: number): void {
    if (p.answered) return;
    p.answered = true;
    this.pending.delete(p.req.rqid);
    this.respond(p.req.rqid, rslt, sense, residual);
    if (this.pending.size === 0) this.releaseDrainWaiters();
  }

  private async taskManagement(req: VscsiifRequest, target: LunTarget): Promise<void> {
    const isAbort = req.act === VSCSIIF_ACT_SCSI_ABORT;
    if (isAbort) this.stats.aborts++;
    else this.stats.resets++;
    let ok = false;
    this.localTmfs.set(target.nexus, (this.localTmfs.get(target.nexus) ?? 0) + 1);
    try {
      const r = await target.nexus.taskManagement(
        isAbort
          ? { fn: TmfFunction.ABORT_TASK, lun: target.lun, referencedTag: BigInt(req.refRqid) }
          : { fn: TmfFunction.LOGICAL_UNIT_RESET, lun: target.lun },
      );
      ok = r.response === TmfResponse.FUNCTION_COMPLETE || r.response === TmfResponse.FUNCTION_SUCCEEDED;
    } catch (e) {
      this.o.logger?.warn({ domid: this.o.frontendDomid, ring: this.o.name, err: (e as Error).message }, 'xen: task management failed');
    } finally {
      const n = (this.localTmfs.get(target.nexus) ?? 1) - 1;
      if (n > 0) this.localTmfs.set(target.nexus, n);
      else this.localTmfs.delete(target.nexus);
    }
    if (this.stopped || this.haltReason) return;
    // Aborted tasks are never completed by the core, but every consumed request needs exactly one
    // response or the frontend's ring shrinks and its rqid stays busy: answer them with the host
    // byte Linux uses for them before the TMF's own answer.
    for (const p of this.pending.values()) {
      const hit = isAbort
        ? p.req.rqid === req.refRqid && p.target.nexus === target.nexus && p.target.lun === target.lun
        : p.target.nexus === target.nexus && p.target.lun === target.lun;
      if (hit && ok) {
        this.finish(p, encodeResult(isAbort ? XEN_VSCSIIF_RSLT_HOST.ABORT : XEN_VSCSIIF_RSLT_HOST.RESET, 0), undefined, 0);
      } else if (p.coreAborted && !this.localTmfs.has(p.target.nexus)) {
        // Dropped by the core while our TMF ran, but not by it.
        this.finish(p, encodeResult(XEN_VSCSIIF_RSLT_HOST.RESET, 0), undefined, 0);
      }
    }
    this.respond(req.rqid, ok ? XEN_VSCSIIF_RSLT_RESET_SUCCESS : XEN_VSCSIIF_RSLT_RESET_FAILED, undefined, 0);
  }

  private copyIn(ranges: Segment[], dst: Buffer, dstOffset: number): boolean {
    if (ranges.length === 0) return true;
    const st = this.o.hv.copyFromGuest(this.o.frontendDomid, toRanges(ranges), dst, dstOffset);
    return this.checkStatuses(st, 'from');
  }

  private copyOut(ranges: Segment[], src: Buffer, srcOffset: number): boolean {
    if (ranges.length === 0) return true;
    const st = this.o.hv.copyToGuest(this.o.frontendDomid, toRanges(ranges), src, srcOffset);
    return this.checkStatuses(st, 'to');
  }

  private checkStatuses(st: number[], dir: 'from' | 'to'): boolean {
    const bad = st.findIndex((s) => s !== GNTST.okay);
    if (bad < 0) return true;
    this.o.logger?.warn(
      { domid: this.o.frontendDomid, ring: this.o.name, status: st[bad], element: bad },
      `xen: grant copy ${dir} guest refused; failing that request`,
    );
    return false;
  }

  private respondError(rqid: number, host: number): void {
    this.respond(rqid, encodeResult(host, 0), undefined, 0);
  }

  private respond(rqid: number, rslt: number, sense: Buffer | undefined, residual: number): void {
    if (this.stopped || this.haltReason || !this.page) return;
    if (rslt !== 0 && rslt !== XEN_VSCSIIF_RSLT_RESET_SUCCESS) this.stats.errors++;
    this.page.write(slotOffset(this.rspProdPvt), encodeResponse(sense ? { rqid, rslt, sense, residual } : { rqid, rslt, residual }));
    this.rspProdPvt = (this.rspProdPvt + 1) >>> 0;
    this.stats.responses++;
    if (!this.pushScheduled) {
      this.pushScheduled = true;
      queueMicrotask(() => this.flushResponses());
    }
  }

  /** RING_PUSH_RESPONSES_AND_CHECK_NOTIFY, then wake the request loop if it stopped on a full ring. */
  private flushResponses(): void {
    this.pushScheduled = false;
    if (!this.page || this.haltReason || this.rspPushed === this.rspProdPvt) return;
    const old = this.rspPushed;
    const now = this.rspProdPvt;
    this.page.store32(SRING_RSP_PROD, now);
    this.page.fence();
    this.rspPushed = now;
    const rspEvent = this.page.load32(SRING_RSP_EVENT);
    if (ringDiff(now, rspEvent) < ringDiff(now, old)) this.evtchn?.notify();
    // Requests may be waiting behind a full ring (CONS_OVERFLOW stop): look again.
    if (this.reqCons !== this.page.load32(SRING_REQ_PROD)) this.kick();
  }

  private releaseDrainWaiters(): void {
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const f of w) f();
  }
}

function toRanges(segs: Segment[]): GrantRange[] {
  return segs.filter((s) => s.length > 0).map((s) => ({ ref: s.gref, offset: s.offset, length: s.length }));
}
