/**
 * One SCSI command on an iSCSI connection (RFC 7143 §4.2.5 data transfer, §11.3–§11.8): serves the
 * core's data-out fetches from immediate data, unsolicited Data-Out and R2T-solicited Data-Out, and turns
 * the core's completion into Data-In PDUs (status in the final one when allowed) or a SCSI Response.
 */
import { Buffer } from 'node:buffer';
import { RESERVED_TAG, RejectReason } from './constants.js';
import type { DataOutPdu, ResidualFields, ScsiCommandPdu, SeqNumbers } from './pdu-scsi.js';
import { buildDataIn, buildR2t, buildScsiResponse } from './pdu-scsi.js';
import type { OutPdu } from './pdu.js';
import type { OperationalParams } from './params.js';
import { dataInPool } from '../vscsi/buffer-pool.js';
import { type DataDirection, type FabricCommandPort, type Residual, type ScsiCompletion, ScsiStatus } from '../vscsi/fabric.js';

/** What a task needs from its connection (connection allegiance, §4.2.5). */
export interface TaskConnection {
  readonly params: OperationalParams;
  readonly closed: boolean;
  /** `onWritten`: the PDU's bytes were handed to the transport's kernel side (or dropped). */
  send(pdu: OutPdu, onWritten?: () => void): void;
  /** StatSN/ExpCmdSN/MaxCmdSN for a PDU that does not advance StatSN (R2T, Data-In without status). */
  peekSeq(): SeqNumbers;
  /** The same, taking the next StatSN (responses, Data-In with status). */
  takeSeq(): SeqNumbers;
  allocTtt(): number;
  taskFinished(task: ScsiTask, transferOpen: boolean): void;
}

export type DataOutOutcome = { ok: true } | { ok: false; reason: number; message: string };

interface R2tState {
  ttt: number;
  offset: number;
  end: number;
  next: number;
  dataSn: number;
}

interface Segment {
  offset: number;
  data: Buffer;
}

/**
 * The segment and fetch lists of a task that has none (every READ has no segments, and a fetch waits
 * only for data not yet received): one shared empty list instead of two arrays per command, which
 * would wait with it as long as the device takes (BENCHMARKS.md, section 23). Never mutated: a task
 * replaces it with a list of its own first.
 */
const NONE: readonly never[] = [];

interface Fetch {
  offset: number;
  end: number;
  resolve: (b: Buffer) => void;
  reject: (e: Error) => void;
}

export class ScsiTask implements FabricCommandPort {
  state: 'active' | 'done' | 'aborted' = 'active';
  readonly itt: number;
  readonly direction: DataDirection;
  /** Data-out bytes expected (EDTL for writes). */
  readonly outLength: number;
  /** Data-in bytes the initiator expects (EDTL for reads, the bidirectional read length for bidi). */
  readonly inLength: number;
  /** Handed to the core (commands may wait in the connection while the initiator is slow to read). */
  submitted = false;
  private segments: readonly Segment[] = NONE;
  /** Pooled buffers holding this task's data-out: given back when the core has completed the command. */
  private pooled: Array<() => void> | undefined;
  private contiguousEnd = 0;
  private unsolicitedOpen: boolean;
  private unsolicitedNext: number;
  private unsolicitedDataSn = 0;
  private readonly unsolicitedLimit: number;
  private solicitedEnd: number;
  /** Open R2Ts by TTT; created with the first R2T (most commands never need one). */
  private r2ts: Map<number, R2tState> | undefined;
  private r2tSn = 0;
  private fetches: readonly Fetch[] = NONE;
  private dataSn = 0;
  /** Set when the data-out phase failed: every fetch fails, so the core ends the command with an error. */
  private dataFailure: string | undefined;

  constructor(
    private readonly conn: TaskConnection,
    readonly cmd: ScsiCommandPdu,
    readonly lun: number,
  ) {
    this.itt = cmd.itt;
    this.direction = cmd.read && cmd.write ? 'bidi' : cmd.write ? 'write' : cmd.read ? 'read' : 'none';
    this.outLength = cmd.write ? cmd.edtl : 0;
    this.inLength = !cmd.read ? 0 : cmd.write ? (cmd.bidiReadLength ?? 0) : cmd.edtl;
    const p = conn.params;
    const imm = cmd.immediateData;
    if (imm.length) this.addSegment(0, imm);
    this.unsolicitedNext = imm.length;
    this.unsolicitedLimit = Math.min(p.FirstBurstLength, this.outLength);
    this.unsolicitedOpen = cmd.write && !cmd.final && this.unsolicitedNext < this.unsolicitedLimit;
    this.solicitedEnd = this.unsolicitedOpen ? this.unsolicitedLimit : imm.length;
  }

  /** Validate a SCSI Command's data fields against the negotiated parameters before submission (§11.3). */
  static check(cmd: ScsiCommandPdu, p: OperationalParams): string | undefined {
    const imm = cmd.immediateData.length;
    if (imm && !cmd.write) return 'immediate data on a command without the W bit';
    if (imm && !p.ImmediateData) return 'immediate data while ImmediateData=No';
    if (imm > cmd.edtl) return `immediate data (${imm} bytes) beyond the expected data transfer length ${cmd.edtl}`;
    if (imm > p.FirstBurstLength) return `immediate data (${imm} bytes) beyond FirstBurstLength ${p.FirstBurstLength}`;
    if (!cmd.final && (!cmd.write || p.InitialR2T)) return 'F bit clear but no unsolicited Data-Out is allowed';
    if (!cmd.final && imm >= Math.min(p.FirstBurstLength, cmd.edtl)) return 'F bit clear but the first burst is already complete';
    return undefined;
  }

  /** Transfers (unsolicited or R2T) the initiator may still be sending data for. */
  get transferOpen(): boolean {
    return this.unsolicitedOpen || (this.r2ts?.size ?? 0) > 0 || this.dataFailure !== undefined;
  }

  // ---- FabricCommandPort ----

  fetchDataOut(offset: number, length: number): Promise<Buffer> {
    if (this.state !== 'active') return Promise.reject(new Error(`iSCSI task 0x${this.itt.toString(16)} is no longer active`));
    if (this.dataFailure) return Promise.reject(new Error(this.dataFailure));
    if (offset < 0 || length < 0 || offset + length > this.outLength) {
      return Promise.reject(new RangeError(`data-out fetch [${offset}, +${length}) beyond the expected length ${this.outLength}`));
    }
    if (length === 0) return Promise.resolve(Buffer.alloc(0));
    // Immediate data (the usual small WRITE) is already here: no pending fetch to queue behind.
    const ready = this.fetchDataOutNow(offset, length);
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => {
      this.fetches = [...this.fetches, { offset, end: offset + length, resolve, reject }];
      this.serveFetches();
      this.solicit();
    });
  }

  fetchDataOutNow(offset: number, length: number): Buffer | undefined {
    if (this.state !== 'active' || this.dataFailure || this.fetches.length !== 0 || length === 0) return undefined;
    if (offset < 0 || offset + length > this.contiguousEnd || offset + length > this.outLength) return undefined;
    return this.gather(offset, offset + length);
  }

  complete(result: ScsiCompletion): void {
    // The core lent the data-in buffer: give it back once the last PDU that carries it is written.
    const release = result.releaseDataIn;
    if (this.state !== 'active') {
      release?.();
      return;
    }
    this.finish('done');
    const conn = this.conn;
    if (conn.closed) {
      release?.();
      return;
    }
    const residual = residualFields(result.residual, result.bidiReadResidual, this.direction === 'bidi');
    const data = result.dataIn;
    const p = conn.params;
    const canCollapse = result.status !== ScsiStatus.CHECK_CONDITION && !result.sense?.length && this.direction !== 'bidi';
    if (data && data.length) {
      const maxSeg = p.MaxRecvDataSegmentLength;
      const maxBurst = p.MaxBurstLength;
      let off = 0;
      let burstLeft = maxBurst;
      while (off < data.length) {
        const n = Math.min(maxSeg, burstLeft, data.length - off);
        const last = off + n === data.length;
        burstLeft -= n;
        const endOfBurst = last || burstLeft === 0;
        if (burstLeft === 0) burstLeft = maxBurst;
        const withStatus = last && canCollapse;
        const seq = withStatus ? conn.takeSeq() : conn.peekSeq();
        conn.send(
          buildDataIn(
            {
              itt: this.itt,
              final: endOfBurst,
              dataSn: this.dataSn++,
              bufferOffset: off,
              expCmdSn: seq.expCmdSn,
              maxCmdSn: seq.maxCmdSn,
              ...(withStatus ? { status: { scsiStatus: result.status, statSn: seq.statSn, residual } } : {}),
            },
            data.subarray(off, off + n),
          ),
          withStatus ? release : undefined,
        );
        off += n;
      }
      if (canCollapse) return;
    }
    conn.send(buildScsiResponse(this.itt, result.status, conn.takeSeq(), this.dataSn, residual, result.sense), release);
  }

  // ---- from the connection ----

  /**
   * A Data-Out PDU for this task (§11.7). A sequence error (DataSN, offset, length) cannot be recovered at
   * ErrorRecoveryLevel 0: the PDU is rejected and the command fails (its data-out fetch rejects, so the
   * core answers it with an error) while the connection keeps serving other tasks.
   */
  dataOut(d: DataOutPdu): DataOutOutcome {
    if (this.dataFailure) return { ok: true }; // already failed and reported: drop the rest quietly
    const r = this.acceptDataOut(d);
    if (!r.ok) this.failData(r.message);
    return r;
  }

  /**
   * A TMF is aborting this task: fail its outstanding data-out fetch so the core, which has already
   * marked the task aborted, is not left waiting for data the initiator will never send.
   */
  cancelTransfers(): void {
    if (this.state === 'active' && !this.dataFailure) this.failData('aborted by task management');
  }

  private failData(message: string): void {
    this.dataFailure = `data-out of iSCSI task 0x${this.itt.toString(16)} failed: ${message}`;
    this.unsolicitedOpen = false;
    this.r2ts?.clear();
    const fetches = this.fetches;
    this.fetches = NONE;
    for (const f of fetches) f.reject(new Error(this.dataFailure));
  }

  private acceptDataOut(d: DataOutPdu): DataOutOutcome {
    const len = d.data.length;
    if (d.ttt === RESERVED_TAG) {
      if (!this.unsolicitedOpen) return bad(RejectReason.INVALID_PDU_FIELD, 'unsolicited Data-Out after the first burst ended');
      if (d.dataSn !== this.unsolicitedDataSn) return bad(RejectReason.PROTOCOL_ERROR, `unsolicited DataSN ${d.dataSn}, expected ${this.unsolicitedDataSn}`);
      if (d.bufferOffset !== this.unsolicitedNext) return bad(RejectReason.PROTOCOL_ERROR, `unsolicited Data-Out offset ${d.bufferOffset}, expected ${this.unsolicitedNext}`);
      if (d.bufferOffset + len > this.unsolicitedLimit) return bad(RejectReason.PROTOCOL_ERROR, 'unsolicited data beyond FirstBurstLength or the expected length');
      this.unsolicitedDataSn++;
      this.unsolicitedNext += len;
      if (len) this.addSegment(d.bufferOffset, d.data);
      if (d.final || this.unsolicitedNext === this.unsolicitedLimit) {
        // An initiator may end the first burst early with F (§4.2.5.2): solicit the rest.
        this.unsolicitedOpen = false;
        this.solicitedEnd = this.unsolicitedNext;
      }
    } else {
      const r = this.r2ts?.get(d.ttt);
      if (!r) return bad(RejectReason.INVALID_PDU_FIELD, `Data-Out with unknown Target Transfer Tag 0x${d.ttt.toString(16)}`);
      if (d.dataSn !== r.dataSn) return bad(RejectReason.PROTOCOL_ERROR, `DataSN ${d.dataSn}, expected ${r.dataSn}`);
      if (d.bufferOffset !== r.next) return bad(RejectReason.PROTOCOL_ERROR, `Data-Out offset ${d.bufferOffset}, expected ${r.next}`);
      if (r.next + len > r.end) return bad(RejectReason.PROTOCOL_ERROR, 'Data-Out beyond the R2T desired length');
      r.dataSn++;
      r.next += len;
      if (len) this.addSegment(d.bufferOffset, d.data);
      if (r.next === r.end) this.r2ts!.delete(r.ttt);
      else if (d.final) return bad(RejectReason.PROTOCOL_ERROR, 'F bit before the R2T was satisfied');
    }
    this.serveFetches();
    this.solicit();
    return { ok: true };
  }

  /** The core dropped the command silently (a TMF, TAS=0, nexus loss): never answer it. */
  aborted(): void {
    this.abort();
  }

  /** The task was aborted or its connection went away: never answer it. */
  abort(): void {
    if (this.state !== 'active') return;
    this.finish('aborted');
  }

  // ---- internals ----

  private finish(state: 'done' | 'aborted'): void {
    const open = this.transferOpen;
    this.state = state;
    this.r2ts?.clear();
    this.unsolicitedOpen = false;
    const fetches = this.fetches;
    this.fetches = NONE;
    for (const f of fetches) f.reject(new Error(`iSCSI task 0x${this.itt.toString(16)} ended before its data arrived`));
    this.segments = NONE;
    const pooled = this.pooled;
    this.pooled = undefined;
    // Only after complete(): an aborted command may still be writing from these buffers, so those are
    // left to the garbage collector instead of being reused.
    if (pooled && state === 'done') for (const r of pooled) r();
    this.conn.taskFinished(this, open);
  }

  /** Keep a pooled receive buffer alive until the command completes (see finish). */
  holdBuffer(release: () => void): void {
    if (this.state !== 'active') return;
    (this.pooled ??= []).push(release);
  }

  private addSegment(offset: number, data: Buffer): void {
    // DataPDUInOrder/DataSequenceInOrder are forced to Yes (params.ts), so segments arrive in order
    // within a burst; bursts of different R2Ts may interleave, so keep the list sorted.
    const segments = this.segments === NONE ? [] : (this.segments as Segment[]);
    this.segments = segments;
    let i = segments.length;
    while (i > 0 && segments[i - 1]!.offset > offset) i--;
    segments.splice(i, 0, { offset, data });
    while (true) {
      const next = segments.find((s) => s.offset <= this.contiguousEnd && s.offset + s.data.length > this.contiguousEnd);
      if (!next) break;
      this.contiguousEnd = next.offset + next.data.length;
    }
  }

  private serveFetches(): void {
    if (!this.fetches.length) return;
    const remaining: Fetch[] = [];
    for (const f of this.fetches) {
      if (f.end <= this.contiguousEnd) f.resolve(this.gather(f.offset, f.end));
      else remaining.push(f);
    }
    this.fetches = remaining.length ? remaining : NONE;
  }

  /** Bytes [start, end) from the received segments: a view when one segment holds them all. */
  private gather(start: number, end: number): Buffer {
    for (const s of this.segments) {
      if (s.offset <= start && s.offset + s.data.length >= end) return s.data.subarray(start - s.offset, end - s.offset);
    }
    const lent = dataInPool.acquire(end - start);
    const out = lent.data;
    this.holdBuffer(lent.release);
    for (const s of this.segments) {
      const a = Math.max(start, s.offset);
      const b = Math.min(end, s.offset + s.data.length);
      if (a < b) s.data.copy(out, a - start, a - s.offset, b - s.offset);
    }
    return out;
  }

  /** Issue R2Ts (§4.2.5.2) for data a pending fetch needs, within MaxBurstLength and MaxOutstandingR2T. */
  private solicit(): void {
    if (this.state !== 'active' || this.unsolicitedOpen || !this.fetches.length || this.conn.closed) return;
    let want = 0;
    for (const f of this.fetches) want = Math.max(want, f.end);
    const p = this.conn.params;
    const r2ts = (this.r2ts ??= new Map());
    while (this.solicitedEnd < want && r2ts.size < p.MaxOutstandingR2T) {
      const len = Math.min(p.MaxBurstLength, this.outLength - this.solicitedEnd);
      if (len <= 0) break;
      const ttt = this.conn.allocTtt();
      const r: R2tState = { ttt, offset: this.solicitedEnd, end: this.solicitedEnd + len, next: this.solicitedEnd, dataSn: 0 };
      r2ts.set(ttt, r);
      this.solicitedEnd = r.end;
      const seq = this.conn.peekSeq();
      this.conn.send(
        buildR2t({
          lunField: this.cmd.lunField,
          itt: this.itt,
          ttt,
          statSn: seq.statSn,
          expCmdSn: seq.expCmdSn,
          maxCmdSn: seq.maxCmdSn,
          r2tSn: this.r2tSn++,
          bufferOffset: r.offset,
          desiredLength: len,
        }),
      );
    }
  }
}

function bad(reason: number, message: string): DataOutOutcome {
  return { ok: false, reason, message };
}

function residualFields(r: Residual, bidiRead: Residual | undefined, bidi: boolean): ResidualFields {
  const out: ResidualFields = {};
  if (r.kind === 'underflow' && r.count > 0) out.underflow = r.count;
  if (r.kind === 'overflow' && r.count > 0) out.overflow = r.count;
  if (bidi && bidiRead) {
    if (bidiRead.kind === 'underflow' && bidiRead.count > 0) out.bidiUnderflow = bidiRead.count;
    if (bidiRead.kind === 'overflow' && bidiRead.count > 0) out.bidiOverflow = bidiRead.count;
  }
  return out;
}

