/**
 * One iSCSI connection: framing (receiver.ts), the login phase (login.ts), then Full Feature Phase
 * dispatch of every initiator PDU (RFC 7143 §11) to its handler, StatSN, target NOP-In keepalives and
 * connection-scoped task allegiance. Hostile input never throws out of here: it gets a Reject, a login
 * failure or a dropped connection, and other connections carry on.
 */
import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import {
  AsyncEvent,
  InitiatorOpcode,
  IscsiTaskAttr,
  LogoutReason,
  LogoutResponseCode,
  RESERVED_TAG,
  RejectReason,
  TmfCode,
  TmfResponseCode,
} from './constants.js';
import { planTmf, tmfOutcome, type TmfOutcome } from './tmf.js';
import { type OutPdu, type Pdu, opcodeOf } from './pdu.js';
import { PduReceiver, frameOut } from './receiver.js';
import { parseDataOut, parseScsiCommand, type SeqNumbers } from './pdu-scsi.js';
import { buildLogoutResponse, parseLoginRequest, parseLogoutRequest, parseTextRequest } from './pdu-login.js';
import { buildAsyncMessage, buildNopIn, buildReject, buildTmfResponse, parseNopOut, parseTmfRequest, type TmfRequestPdu } from './pdu-misc.js';
import { LoginMachine, type LoginHost } from './login.js';
import { digestNames, type OperationalParams, RFC_DEFAULTS } from './params.js';
import { ScsiTask, type TaskConnection } from './scsi-task.js';
import type { IscsiSession, SessionConnection } from './session.js';
import type { IscsiTransport } from './tcp.js';
import { TextExchange, type TextResponder } from './text.js';
import { decodeSamLun } from './core-types.js';
import { TaskAttribute } from '../vscsi/fabric.js';
import { InFlightTable } from '../vscsi/in-flight-table.js';

/** What a connection needs from the server. */
export interface ConnectionServer {
  readonly logger: Logger | undefined;
  /** Seconds between keepalive NOP-Ins on an idle connection (0 = off), and how long to wait for the answer. */
  readonly nopInterval: number;
  readonly nopTimeout: number;
  loginHost(conn: IscsiConnection): LoginHost;
  textResponder(conn: IscsiConnection): TextResponder;
  connectionClosed(conn: IscsiConnection): void;
  /**
   * Login is complete: the server may continue the connection on a connection thread. It takes the
   * socket and the final Login Response (`handoff.firstBytes`, not yet sent) and returns true, or
   * returns false and the connection carries on here.
   */
  moveConnection?(conn: IscsiConnection, handoff: ConnectionHandoff): boolean;
}

/** The state a logged-in connection continues from, on this thread or another. */
export interface ConnectionHandoff {
  params: OperationalParams;
  cid: number;
  /** StatSN of the first response after the final Login Response. */
  statSn: number;
  /** Bytes to send first (the final Login Response of a connection whose login ran on another thread). */
  firstBytes: Buffer;
}

/** Login must finish within this time or the connection is dropped. */
const LOGIN_TIMEOUT_MS = 30_000;
/** Remember this many finished tasks whose data may still be in flight, to drop their late Data-Out quietly. */
const TOMBSTONES = 256;
/**
 * Backpressure against an initiator that does not read: hold new commands while more than this is
 * queued for sending, and while the reads in flight already expect this many bytes.
 */
const SEND_HIGH_WATER = 16 * 1024 * 1024;
const MAX_INFLIGHT_READ_BYTES = 64 * 1024 * 1024;
/** Data segments accepted during login (before our MaxRecvDataSegmentLength is declared). */
const LOGIN_MAX_SEGMENT = 65536;

let nextConnectionId = 1;

export class IscsiConnection implements TaskConnection, SessionConnection {
  readonly id: number;
  readonly createdAt = Date.now();
  /** `moved`: continued on a connection thread; this object is finished with. */
  phase: 'login' | 'ffp' | 'logout' | 'closed' | 'moved' = 'login';
  session: IscsiSession | undefined;
  cid = 0;
  params: OperationalParams = { ...RFC_DEFAULTS };
  private statSn: number;
  private readonly receiver = new PduReceiver({ headerDigest: false, dataDigest: false, maxRecvDataSegmentLength: LOGIN_MAX_SEGMENT });
  private busy = false;
  private readonly login: LoginMachine | undefined;
  /** This connection's tasks by ITT (unique in the session, so in the connection too). */
  private readonly tasks = new InFlightTable<number, ScsiTask>();
  private readonly tombstones: number[] = [];
  /** Commands in CmdSN order waiting for backpressure to ease before going to the core. */
  private held: ScsiTask[] = [];
  private inflightReadBytes = 0;
  private waitingForDrain = false;
  private tttCounter = 1;
  private text: TextExchange | undefined;
  private loginTimer: NodeJS.Timeout | undefined;
  private nopTimer: NodeJS.Timeout | undefined;
  private pingTtt: number | undefined;
  private pingSentAt = 0;
  private lastRx = Date.now();
  readonly log: Logger | undefined;
  /** PDUs received / sent (management view). */
  rxPdus = 0;
  txPdus = 0;

  constructor(
    readonly transport: IscsiTransport,
    private readonly server: ConnectionServer,
    readonly tpgt: number,
    /**
     * A connection whose login finished on another thread: starts in Full Feature Phase of `session`,
     * with the number it had there.
     */
    established?: { handoff: ConnectionHandoff; session: IscsiSession; id?: number },
  ) {
    this.id = established?.id ?? nextConnectionId++;
    this.log = server.logger?.child({ conn: this.id, peer: `${transport.remoteAddress}:${transport.remotePort}` });
    this.receiver.copyOut = transport.ephemeralChunks === true;
    transport.setReadDemand?.(() => this.receiver.missing);
    if (established) {
      this.statSn = 0;
      this.login = undefined;
      this.session = established.session;
      this.enterFullFeaturePhase(established.handoff);
    } else {
      this.statSn = (Math.random() * 0x7fffffff) >>> 0;
      this.login = new LoginMachine(server.loginHost(this), this.statSn);
      this.loginTimer = setTimeout(() => this.drop('login did not complete in time'), LOGIN_TIMEOUT_MS);
      this.loginTimer.unref();
    }
    transport.start(
      (chunk) => this.onData(chunk),
      (err) => this.onClose(err),
    );
    if (established?.handoff.firstBytes.length) transport.send([established.handoff.firstBytes]);
  }

  get closed(): boolean {
    return this.phase === 'closed';
  }

  /** Commands of this connection not yet completed. */
  get activeTasks(): number {
    return this.tasks.size;
  }

  // ---------------------------------------------------------------- output

  send(pdu: OutPdu, onWritten?: () => void): void {
    if (this.phase === 'closed') {
      onWritten?.();
      return;
    }
    this.txPdus++;
    this.transport.send(frameOut(pdu.bhs, pdu.data, this.params.HeaderDigest, this.params.DataDigest), onWritten);
    if (!this.waitingForDrain && this.transport.pendingBytes > SEND_HIGH_WATER) this.watchDrain();
  }

  peekSeq(): SeqNumbers {
    const s = this.session;
    return { statSn: this.statSn, expCmdSn: s ? s.expCmdSn : 0, maxCmdSn: s ? s.maxCmdSn : 0 };
  }

  takeSeq(): SeqNumbers {
    const seq = this.peekSeq();
    this.statSn = (this.statSn + 1) >>> 0;
    return seq;
  }

  allocTtt(): number {
    const t = this.tttCounter;
    this.tttCounter = this.tttCounter >= 0xfffffffe ? 1 : this.tttCounter + 1;
    return t;
  }

  taskFinished(task: ScsiTask, transferOpen: boolean): void {
    if (this.tasks.get(task.itt) === task) this.tasks.delete(task.itt);
    if (task.submitted) {
      this.inflightReadBytes -= task.inLength;
      if (this.held.length) this.releaseHeld();
    }
    const s = this.session;
    if (s && s.tasks.get(task.itt) === task) s.tasks.delete(task.itt);
    if (transferOpen) {
      this.tombstones.push(task.itt);
      if (this.tombstones.length > TOMBSTONES) this.tombstones.shift();
    }
  }

  private reject(reason: number, bhs: Buffer): void {
    if (this.session) this.session.counters.rejects++;
    this.send(buildReject(reason, bhs, this.takeSeq()));
  }

  /** RFC 7143 §11.9: ask the initiator to log out within `seconds` (AsyncEvent 1). */
  requestLogout(seconds: number): void {
    if (this.phase !== 'ffp') return;
    this.send(buildAsyncMessage({ event: AsyncEvent.REQUEST_LOGOUT, parameter3: Math.min(0xffff, Math.max(0, seconds)) }, this.takeSeq()));
  }

  /** Set for a logout or connection reinstatement; any other close is a connection failure. */
  orderlyExit = false;

  markOrderlyExit(): void {
    this.orderlyExit = true;
  }

  /** Drop the connection now (reinstatement, fatal protocol error, dead peer, removal). */
  drop(reason: string): void {
    if (this.phase === 'closed' || this.phase === 'moved') return;
    this.log?.info({ reason }, 'dropping iSCSI connection');
    this.transport.destroy();
    this.onClose();
  }

  closeAfterFlush(reason: string): void {
    if (this.phase === 'closed' || this.phase === 'logout') return;
    this.log?.info({ reason }, 'closing iSCSI connection');
    this.abortTasks();
    this.finish();
  }

  /** Close after what is queued has been written (after a Logout Response or a login failure). */
  private finish(): void {
    if (this.phase === 'closed') return;
    this.phase = 'logout';
    this.transport.end();
  }

  // ---------------------------------------------------------------- input

  private onData(chunk: Buffer): void {
    if (this.phase === 'closed' || this.phase === 'logout') return;
    this.lastRx = Date.now();
    this.pingTtt = undefined;
    this.receiver.push(chunk);
    this.pump();
    if (this.receiver.copyOut) this.receiver.detach();
  }

  private pump(): void {
    while (!this.busy && (this.phase === 'login' || this.phase === 'ffp')) {
      const r = this.receiver.next();
      if (r.kind === 'need') return;
      if (r.kind === 'error') {
        this.log?.warn({ error: r.message, opcode: r.bhs[0]! & 0x3f }, 'iSCSI framing error');
        if (this.phase === 'ffp' && r.code === 'data-digest') {
          // §7.8: a data digest error is answered with Reject; SCSI data cannot be recovered at ERL 0.
          this.reject(RejectReason.DATA_DIGEST_ERROR, r.bhs);
          const op = opcodeOf(r.bhs);
          if (op === InitiatorOpcode.SCSI_COMMAND || op === InitiatorOpcode.DATA_OUT) {
            this.log?.info({ reason: 'data digest error on SCSI data' }, 'closing iSCSI connection');
            this.finish();
            return;
          }
          continue;
        }
        if (this.phase === 'ffp' && r.code !== 'header-digest') {
          // Let the Reject reach the initiator before the connection closes (§11.17).
          this.reject(RejectReason.PROTOCOL_ERROR, r.bhs);
          this.log?.info({ reason: r.message }, 'closing iSCSI connection');
          this.finish();
          return;
        }
        this.drop(r.message);
        return;
      }
      this.rxPdus++;
      try {
        if (this.phase === 'login') this.onLoginPdu(r.pdu);
        else this.dispatch(r.pdu);
      } catch (e) {
        // A handler bug must not take the service down: drop this connection only.
        this.log?.error({ err: e }, 'internal error handling an iSCSI PDU');
        this.drop('internal error');
        return;
      }
    }
  }

  // ---------------------------------------------------------------- login phase

  private onLoginPdu(pdu: Pdu): void {
    if (opcodeOf(pdu.bhs) !== InitiatorOpcode.LOGIN_REQUEST) {
      // §6.3: only Login Requests before Full Feature Phase.
      this.drop(`opcode 0x${opcodeOf(pdu.bhs).toString(16)} before login completed`);
      return;
    }
    const req = parseLoginRequest(pdu);
    this.busy = true;
    this.login!
      .handle(req)
      .then((step) => {
        if (this.phase === 'closed') return;
        if (step.outcome === 'ffp' && this.moveOut(step.responses, step.result!.params)) return;
        for (const r of step.responses) this.send(r);
        if (step.outcome === 'fail') {
          this.log?.info({ status: step.failure?.status.toString(16), reason: step.failure?.message }, 'iSCSI login failed');
          this.finish();
          return;
        }
        if (step.outcome === 'ffp') {
          const p = step.result!.params;
          this.enterFullFeaturePhase(this.handoffAfterLogin(p, Buffer.alloc(0)));
          this.log?.info(
            {
              initiator: step.result!.initiatorName,
              target: step.result!.targetName,
              sessionType: step.result!.sessionType,
              tsih: this.session?.tsih,
              cid: this.cid,
              ...digestNames(p),
            },
            'iSCSI login complete',
          );
        }
        this.busy = false;
        this.pump();
      })
      .catch((e: unknown) => {
        this.log?.error({ err: e }, 'iSCSI login failed internally');
        this.drop('internal error during login');
      });
  }

  /** Where a connection whose login just completed continues from, here or on a connection thread. */
  private handoffAfterLogin(negotiated: Partial<OperationalParams>, firstBytes: Buffer): ConnectionHandoff {
    return { params: { ...this.params, ...negotiated }, cid: this.cid, statSn: this.login!.nextStatSn, firstBytes };
  }

  private enterFullFeaturePhase(h: ConnectionHandoff): void {
    clearTimeout(this.loginTimer);
    this.statSn = h.statSn;
    this.cid = h.cid;
    this.phase = 'ffp';
    this.params = h.params;
    this.receiver.limits = {
      headerDigest: h.params.HeaderDigest,
      dataDigest: h.params.DataDigest,
      maxRecvDataSegmentLength: h.params.TargetMaxRecvDataSegmentLength,
    };
    this.text = new TextExchange(this.server.textResponder(this));
    this.startKeepalive();
  }

  /**
   * Offer the logged-in connection to the server for a connection thread, with the final Login
   * Response still to send. Only at a clean boundary: nothing of the initiator's buffered here (it
   * sends nothing before that response) and nothing of ours still queued.
   */
  private moveOut(responses: OutPdu[], negotiated: Partial<OperationalParams>): boolean {
    const move = this.server.moveConnection;
    if (!move || this.receiver.midPdu || this.transport.pendingBytes > 0) return false;
    const firstBytes = Buffer.concat(responses.flatMap((r) => frameOut(r.bhs, r.data, false, false)));
    if (!move.call(this.server, this, this.handoffAfterLogin(negotiated, firstBytes))) return false;
    clearTimeout(this.loginTimer);
    this.phase = 'moved';
    return true;
  }

  // ---------------------------------------------------------------- full feature phase

  private dispatch(pdu: Pdu): void {
    const op = opcodeOf(pdu.bhs);
    switch (op) {
      case InitiatorOpcode.SCSI_COMMAND:
        return this.onScsiCommand(pdu);
      case InitiatorOpcode.DATA_OUT:
        return this.onDataOut(pdu);
      case InitiatorOpcode.NOP_OUT:
        return this.onNopOut(pdu);
      case InitiatorOpcode.TASK_MGMT_REQUEST:
        return this.onTmf(pdu);
      case InitiatorOpcode.TEXT_REQUEST:
        return this.onText(pdu);
      case InitiatorOpcode.LOGOUT_REQUEST:
        return this.onLogout(pdu);
      case InitiatorOpcode.LOGIN_REQUEST:
        // §6.3: a Login Request in Full Feature Phase is a protocol error.
        return this.reject(RejectReason.PROTOCOL_ERROR, pdu.bhs);
      case InitiatorOpcode.SNACK_REQUEST:
        // ErrorRecoveryLevel 0: no SNACK support (§11.16).
        return this.reject(RejectReason.COMMAND_NOT_SUPPORTED, pdu.bhs);
      default:
        return this.reject(RejectReason.COMMAND_NOT_SUPPORTED, pdu.bhs);
    }
  }

  private onScsiCommand(pdu: Pdu): void {
    const s = this.session!;
    if (s.type === 'Discovery' || !s.nexus) return this.reject(RejectReason.PROTOCOL_ERROR, pdu.bhs);
    const parsed = parseScsiCommand(pdu);
    if (!parsed.ok) {
      this.log?.warn({ error: parsed.error }, 'malformed SCSI Command PDU');
      return this.reject(RejectReason.INVALID_PDU_FIELD, pdu.bhs);
    }
    const cmd = parsed.value;
    if (cmd.itt === RESERVED_TAG) return this.reject(RejectReason.INVALID_PDU_FIELD, pdu.bhs);
    const problem = ScsiTask.check(cmd, this.params);
    if (problem) {
      this.log?.warn({ error: problem }, 'SCSI Command violates negotiated parameters');
      return this.reject(RejectReason.PROTOCOL_ERROR, pdu.bhs);
    }
    if (s.tasks.has(cmd.itt)) return this.reject(RejectReason.TASK_IN_PROGRESS, pdu.bhs);
    // Immediate commands bypass the CmdSN window; bound them by the same number of tasks (§11.17.1).
    if (cmd.immediate && s.tasks.size >= s.window) return this.reject(RejectReason.IMMEDIATE_COMMAND_REJECT, pdu.bhs);
    if (!cmd.immediate && !s.inWindow(cmd.cmdSn)) {
      // §4.2.2.1: outside the window: silently ignored.
      this.log?.debug({ cmdSn: cmd.cmdSn, expCmdSn: s.expCmdSn }, 'command outside the CmdSN window ignored');
      return;
    }
    const task = new ScsiTask(this, cmd, decodeSamLun(cmd.lunField));
    if (pdu.release) task.holdBuffer(pdu.release);
    s.tasks.set(cmd.itt, task);
    this.tasks.set(task.itt, task);
    const delivered = s.order(cmd.cmdSn, cmd.immediate, () => this.submit(task));
    if (!delivered) task.abort();
  }

  private submit(task: ScsiTask): void {
    if (task.state !== 'active') return;
    if (this.phase !== 'ffp') {
      task.abort();
      return;
    }
    if (this.held.length || this.mustHold(task)) {
      this.held.push(task);
      this.watchDrain();
      return;
    }
    this.toCore(task);
  }

  /** Hold a command while the initiator is not reading what we already owe it. */
  private mustHold(task: ScsiTask): boolean {
    if (this.transport.pendingBytes > SEND_HIGH_WATER) return true;
    return task.inLength > 0 && this.inflightReadBytes > 0 && this.inflightReadBytes + task.inLength > MAX_INFLIGHT_READ_BYTES;
  }

  private releaseHeld(): void {
    while (this.held.length && this.phase === 'ffp') {
      const next = this.held[0]!;
      if (next.state !== 'active') {
        this.held.shift();
        continue;
      }
      if (this.mustHold(next)) {
        this.watchDrain();
        return;
      }
      this.held.shift();
      this.toCore(next);
    }
  }

  private watchDrain(): void {
    if (this.waitingForDrain || this.transport.pendingBytes <= SEND_HIGH_WATER) return;
    this.waitingForDrain = true;
    this.transport.pauseReading();
    this.transport.whenDrained(() => {
      this.waitingForDrain = false;
      this.transport.resumeReading();
      this.releaseHeld();
    });
  }

  private toCore(task: ScsiTask): void {
    const s = this.session!;
    task.submitted = true;
    this.inflightReadBytes += task.inLength;
    const cmd = task.cmd;
    s.counters.commands++;
    if (cmd.write) s.counters.writeBytes += cmd.edtl;
    if (cmd.read) s.counters.readBytes += cmd.bidiReadLength ?? cmd.edtl;
    const attribute =
      cmd.attr === IscsiTaskAttr.ORDERED
        ? TaskAttribute.ORDERED
        : cmd.attr === IscsiTaskAttr.HEAD_OF_QUEUE
          ? TaskAttribute.HEAD_OF_QUEUE
          : cmd.attr === IscsiTaskAttr.ACA
            ? TaskAttribute.ACA
            : TaskAttribute.SIMPLE;
    s.nexus!.submit({
      lun: task.lun,
      cdb: cmd.cdb,
      attribute,
      tag: BigInt(cmd.itt),
      direction: task.direction,
      expectedLength: cmd.edtl,
      ...(task.direction === 'bidi' ? { expectedReadLength: cmd.bidiReadLength ?? 0 } : {}),
      port: task,
    });
  }

  private onDataOut(pdu: Pdu): void {
    const d = parseDataOut(pdu);
    const task = this.session?.tasks.get(d.itt);
    if (!task || this.tasks.get(task.itt) !== task || task.state !== 'active') {
      if (this.tombstones.includes(d.itt)) return; // late data of a finished or aborted task (§4.2.5)
      this.log?.warn({ itt: d.itt, ttt: d.ttt }, 'Data-Out for an unknown task');
      return this.reject(RejectReason.INVALID_PDU_FIELD, pdu.bhs);
    }
    if (pdu.release) task.holdBuffer(pdu.release);
    const r = task.dataOut(d);
    if (!r.ok) {
      this.log?.warn({ itt: d.itt, error: r.message }, 'invalid Data-Out');
      this.reject(r.reason, pdu.bhs);
    }
  }

  private onNopOut(pdu: Pdu): void {
    const n = parseNopOut(pdu);
    if (n.ttt !== RESERVED_TAG) {
      // Answer to our ping (§11.18.3): nothing to send back.
      return;
    }
    if (n.itt === RESERVED_TAG) {
      // §11.18.2: no response wanted; must be immediate.
      if (!n.immediate) return this.reject(RejectReason.PROTOCOL_ERROR, pdu.bhs);
      return;
    }
    const data = n.data.length ? Buffer.from(n.data) : undefined;
    const lun = Buffer.from(n.lunField);
    this.session!.order(n.cmdSn, n.immediate, () => {
      if (this.phase !== 'ffp') return;
      this.send(buildNopIn(n.itt, RESERVED_TAG, lun, this.takeSeq(), data));
    });
  }

  private onText(pdu: Pdu): void {
    const t = parseTextRequest(pdu);
    if (t.itt === RESERVED_TAG) return this.reject(RejectReason.INVALID_PDU_FIELD, pdu.bhs);
    const copy = { ...t, data: Buffer.from(t.data) };
    const bhs = Buffer.from(pdu.bhs);
    this.session!.order(t.cmdSn, t.immediate, () => {
      if (this.phase !== 'ffp') return;
      const out = this.text!.handle(copy, () => this.takeSeq(), this.params.MaxRecvDataSegmentLength);
      if (!out.ok) return this.reject(out.reason, bhs);
      this.send(out.pdu);
    });
  }

  private onLogout(pdu: Pdu): void {
    const l = parseLogoutRequest(pdu);
    const s = this.session!;
    s.order(l.cmdSn, l.immediate, () => {
      if (this.phase !== 'ffp') return;
      let code: number = LogoutResponseCode.SUCCESS;
      let closeSelf = false;
      let closeOther: SessionConnection | undefined;
      if (l.reason === LogoutReason.CLOSE_SESSION) {
        closeSelf = true;
      } else if (l.reason === LogoutReason.CLOSE_CONNECTION) {
        const target = s.connections.get(l.cid);
        if (!target) code = LogoutResponseCode.CID_NOT_FOUND;
        else if (target === this) closeSelf = true;
        else closeOther = target;
      } else if (l.reason === LogoutReason.REMOVE_CONNECTION_FOR_RECOVERY) {
        code = LogoutResponseCode.RECOVERY_NOT_SUPPORTED; // ErrorRecoveryLevel 0
      } else {
        return this.reject(RejectReason.INVALID_PDU_FIELD, pdu.bhs);
      }
      this.send(buildLogoutResponse(l.itt, code, this.takeSeq(), this.params.DefaultTime2Wait, this.params.DefaultTime2Retain));
      if (closeOther) {
        closeOther.markOrderlyExit();
        closeOther.drop('logged out by another connection of the session');
      }
      if (l.reason === LogoutReason.CLOSE_SESSION) {
        for (const c of [...s.connections.values()]) if (c !== this) c.drop('session logged out');
      }
      if (closeSelf) {
        this.orderlyExit = true;
        this.log?.info({ reason: l.reason }, 'iSCSI logout');
        this.abortTasks();
        this.finish();
      }
    });
  }

  private onTmf(pdu: Pdu): void {
    const t = parseTmfRequest(pdu);
    const s = this.session!;
    if (s.type === 'Discovery' || !s.nexus) return this.reject(RejectReason.PROTOCOL_ERROR, pdu.bhs);
    const lunField = Buffer.from(t.lunField);
    s.order(t.cmdSn, t.immediate, () => {
      s.counters.tmfs++;
      this.runTmf({ ...t, lunField }).then(
        ({ code, additional }) => {
          if (this.phase !== 'ffp') return;
          this.send(buildTmfResponse(t.itt, code, this.takeSeq(), additional));
          if (t.fn === TmfCode.TARGET_COLD_RESET) {
            // §11.5.1: after a cold reset the target closes its connections (after this response).
            for (const c of [...s.connections.values()]) c.closeAfterFlush('target cold reset');
          }
        },
        (e: unknown) => {
          this.log?.error({ err: e }, 'task management function failed');
          if (this.phase === 'ffp') this.send(buildTmfResponse(t.itt, TmfResponseCode.FUNCTION_REJECTED, this.takeSeq()));
        },
      );
    });
  }

  private async runTmf(t: TmfRequestPdu): Promise<TmfOutcome> {
    const s = this.session!;
    const lun = decodeSamLun(t.lunField);
    const plan = planTmf(t, lun, s);
    if ('code' in plan) return plan;
    // The core calls each dropped task's aborted(), which frees it here (scsi-task.ts). Tasks it is
    // aborting may wait for Data-Out that will never come: release those waits once it has them marked.
    const pending = s.nexus!.taskManagement(plan.request);
    for (const task of plan.aborting) task.cancelTransfers();
    const outcome = tmfOutcome(await pending);
    // The command completed (and its status went out) before the core saw the abort, as happens when
    // the core runs on another thread: it was not aborted, so it no longer existed (§11.6.1).
    if (t.fn === TmfCode.ABORT_TASK && plan.aborting[0]?.state === 'done') return { code: TmfResponseCode.TASK_DOES_NOT_EXIST };
    return outcome;
  }

  // ---------------------------------------------------------------- keepalive and teardown

  private startKeepalive(): void {
    const interval = this.server.nopInterval;
    if (!interval || interval <= 0) return;
    const timeoutMs = Math.max(1, this.server.nopTimeout || interval) * 1000;
    const tick = Math.min(interval * 1000, timeoutMs);
    this.nopTimer = setInterval(() => {
      if (this.phase !== 'ffp') return;
      const now = Date.now();
      if (this.pingTtt !== undefined) {
        if (now - this.pingSentAt >= timeoutMs) this.drop(`no answer to NOP-In within ${timeoutMs / 1000}s`);
        return;
      }
      if (now - this.lastRx >= interval * 1000) {
        this.pingTtt = this.allocTtt();
        this.pingSentAt = now;
        this.send(buildNopIn(RESERVED_TAG, this.pingTtt, undefined, this.peekSeq()));
      }
    }, tick);
    this.nopTimer.unref();
  }

  /** Tasks with allegiance to this connection end with it (ERL 0): never answered. */
  private abortTasks(): void {
    this.held = [];
    for (const t of this.tasks.values()) t.abort();
  }

  private onClose(err?: Error): void {
    if (this.phase === 'closed' || this.phase === 'moved') return;
    const wasMidPdu = this.receiver.midPdu;
    this.phase = 'closed';
    clearTimeout(this.loginTimer);
    clearInterval(this.nopTimer);
    this.abortTasks();
    if (err || wasMidPdu) this.log?.debug({ err, midPdu: wasMidPdu }, 'iSCSI connection closed');
    this.server.connectionClosed(this);
  }
}

