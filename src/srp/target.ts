/**
 * One SRP channel, target side (the libsrp role): login, SRP_CMD to the SCSI core with data moved
 * by an injected mover, SRP_RSP construction, SRP_TSK_MGMT to the core's task management, logout.
 * Transport-neutral: IBM VIO (H_COPY_RDMA) and SRP over RDMA differ only in the `SrpDataMover`,
 * how IUs arrive and how `send` delivers a response.
 */
import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import {
  INVALID_LUN,
  type Nexus,
  type ScsiCommandRequest,
  type ScsiCompletion,
  ScsiStatus,
  type TaskAttribute,
  TaskAttribute as TA,
  type TmfFunction,
  TmfFunction as TF,
  type TmfResponse,
} from '../vscsi/fabric.js';
import { dataInPool, releaseDataOut } from '../vscsi/buffer-pool.js';
import { InFlightTable } from '../vscsi/in-flight-table.js';
import { type ReasonName, SenseKey, senseKeyOf } from '../vscsi/sense.js';
import { CreditAccount, type SuppressedCreditPolicy } from './credits.js';
import {
  DEFAULT_DESCRIPTOR_LIMITS,
  type DescriptorLimits,
  type DirectDescriptor,
  resolveDescriptors,
  resolveDirect,
  sliceSegments,
} from './descriptors.js';
import {
  decodeCmd,
  decodeILogout,
  decodeLoginReq,
  decodeTskMgmt,
  encodeLoginRej,
  encodeLoginRsp,
  encodeRsp,
  rspCodeData,
  SRP_SCSOLNT,
  SRP_UCSOLNT,
  type SrpCmd,
  SrpIuLength,
  SrpOpcode,
  SrpRspCode,
  SrpRspFlag,
  SrpTaskAttr,
  SrpTaskMgmtFunction,
  type SrpLoginReq,
  type SrpTag,
  type SrpTskMgmt,
  tagToBigInt,
} from './iu.js';
import { type LoginPolicy, negotiateLogin } from './login.js';

/** Moves bytes between initiator memory (described by segments) and target buffers. */
export interface SrpDataMover {
  /** Copy initiator memory into `dst`; the segments' lengths add up to dst.length. Rejects on a bad address. */
  readFromInitiator(segments: readonly DirectDescriptor[], dst: Buffer): Promise<void>;
  /**
   * Optional: `readFromInitiator` done before returning (one synchronous hypervisor copy); throws on a
   * bad address, and nothing writes into `dst` after it returned or threw.
   */
  readFromInitiatorNow?(segments: readonly DirectDescriptor[], dst: Buffer): void;
  /** Copy `src` into initiator memory; the segments' lengths add up to src.length. */
  writeToInitiator(segments: readonly DirectDescriptor[], src: Buffer): Promise<void>;
}

export type SrpSendKind = 'login-rsp' | 'login-rej' | 'rsp' | 'tmf-rsp';

export interface SrpSendInfo {
  kind: SrpSendKind;
  tag: SrpTag;
  /** For command responses: the command failed with HARDWARE ERROR (VIO fast-fail uses this). */
  hardwareError?: boolean;
  /** For command responses: the data phase did not move the whole expected length. */
  partialTransfer?: boolean;
}

/**
 * How residuals are flagged. 'srp' = SRP r16a (UNDER for short transfers). 'overflow-only' = what
 * the Linux IBM VIO client reads: it only applies a residual when DOOVER/DIOVER is set, so a short
 * transfer is reported with the OVER flag and the residual count (as QEMU's spapr_vscsi does).
 */
export type ResidualStyle = 'srp' | 'overflow-only';

export interface SrpChannelOptions<C> {
  login: LoginPolicy;
  creditPolicy: SuppressedCreditPolicy;
  /** Create the I_T nexus once the login was accepted (rejects => LOGIN_REJ insufficient resources). */
  openNexus(req: SrpLoginReq): Promise<Nexus>;
  /** Decode the 8-byte LUN field into a core LUN number (INVALID_LUN when undecodable). */
  decodeLun(lun: Buffer): number;
  mover: SrpDataMover;
  /** Deliver a target-to-initiator IU for the request that arrived with context `ctx`. */
  send(iu: Buffer, ctx: C, info: SrpSendInfo): Promise<void> | void;
  /** The initiator broke the protocol; the transport should drop the connection. */
  onProtocolError(message: string): void;
  /** SRP_I_LOGOUT processed (nexus closed). */
  onLogout?(ctx: C): void;
  residualStyle?: ResidualStyle;
  /** Cap on sense bytes (the VIO client copies into a 96-byte buffer). */
  maxSenseLength?: number;
  descriptorLimits?: DescriptorLimits;
  logger?: Logger;
}

type ChannelState = 'idle' | 'logging-in' | 'logged-in' | 'closed';

interface ActiveCommand {
  /** The tag as a bigint: the key of `active`, and the core's task tag. */
  key: bigint;
  tag: SrpTag;
  lun: number;
  creditId: number;
  generation: number;
  /** Handed to the core (nexus.submit); before that the command is still resolving descriptors. */
  submitted: boolean;
  /** A task management function that covers this not-yet-submitted command is in progress. */
  heldBy?: Promise<unknown>;
  /** complete() was called by the core; the response is being sent. */
  completing: boolean;
  retired: boolean;
  /** Answered or retired. */
  finished: boolean;
  /** Made only when a task management function waits for this command's response to go out. */
  whenFinished?: { promise: Promise<void>; resolve: () => void };
  /** Pooled data-out buffers, given back once the core completed the command normally. */
  dataOut?: Array<() => void>;
}

function finished(c: ActiveCommand): void {
  c.finished = true;
  c.whenFinished?.resolve();
}

function whenFinished(c: ActiveCommand): Promise<void> {
  if (c.finished) return Promise.resolve();
  if (!c.whenFinished) {
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    c.whenFinished = { promise, resolve };
  }
  return c.whenFinished.promise;
}

const TASK_ATTR: Record<number, TaskAttribute> = {
  [SrpTaskAttr.SIMPLE]: TA.SIMPLE,
  [SrpTaskAttr.HEAD_OF_QUEUE]: TA.HEAD_OF_QUEUE,
  [SrpTaskAttr.ORDERED]: TA.ORDERED,
  [SrpTaskAttr.ACA]: TA.ACA,
};

const TMF: Record<number, TmfFunction> = {
  [SrpTaskMgmtFunction.ABORT_TASK]: TF.ABORT_TASK,
  [SrpTaskMgmtFunction.ABORT_TASK_SET]: TF.ABORT_TASK_SET,
  [SrpTaskMgmtFunction.CLEAR_TASK_SET]: TF.CLEAR_TASK_SET,
  [SrpTaskMgmtFunction.LUN_RESET]: TF.LOGICAL_UNIT_RESET,
  [SrpTaskMgmtFunction.CLEAR_ACA]: TF.CLEAR_ACA,
};

/** SAM service response -> SRP RSP_CODE (ibmvscsis mapping, srp.md §5). */
const TMF_RSP_CODE: Record<TmfResponse, number> = {
  FUNCTION_COMPLETE: SrpRspCode.COMPLETE,
  FUNCTION_SUCCEEDED: SrpRspCode.COMPLETE,
  FUNCTION_REJECTED: SrpRspCode.FAILED,
  INCORRECT_LOGICAL_UNIT_NUMBER: SrpRspCode.NOT_SUPPORTED,
  SERVICE_DELIVERY_OR_TARGET_FAILURE: SrpRspCode.FAILED,
};

/** SPC-4 annex D: INVALID FIELD IN COMMAND INFORMATION UNIT (0Eh/03h), for malformed SRP_CMD IUs. */
const BAD_IU_REASON: ReasonName = 'INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT';
/** Offset of the LUN field in SRP_CMD (SRP r16a table 21), to address the LU of an undecodable IU. */
const SRP_CMD_LUN_OFFSET = 16;
const NO_CDB = Buffer.alloc(0);

export interface SrpChannelStats {
  commands: number;
  taskManagement: number;
  descriptorErrors: number;
  transferErrors: number;
}

export class SrpChannel<C> {
  private state: ChannelState = 'idle';
  private nexus: Nexus | undefined;
  private credits: CreditAccount;
  private readonly active = new InFlightTable<bigint, ActiveCommand>();
  private generation = 0;
  private readonly residualStyle: ResidualStyle;
  private readonly maxSense: number;
  private readonly limits: DescriptorLimits;
  readonly stats: SrpChannelStats = { commands: 0, taskManagement: 0, descriptorErrors: 0, transferErrors: 0 };

  constructor(private readonly opts: SrpChannelOptions<C>) {
    this.credits = new CreditAccount(opts.login.requestLimit, opts.creditPolicy);
    this.residualStyle = opts.residualStyle ?? 'srp';
    this.maxSense = Math.min(opts.maxSenseLength ?? 252, opts.login.maxTiIuLen - SrpIuLength.RSP_FIXED);
    this.limits = opts.descriptorLimits ?? DEFAULT_DESCRIPTOR_LIMITS;
  }

  get loggedIn(): boolean {
    return this.state === 'logged-in';
  }

  /** Commands submitted to the core and not yet answered or retired. */
  get activeCount(): number {
    return this.active.size;
  }

  get outstandingCredits(): number {
    return this.credits.outstanding;
  }

  /**
   * Handle one initiator-to-target IU. `iu` must be this channel's private copy of the bytes (it is
   * parsed in place). Never throws; protocol violations go to `onProtocolError`.
   */
  async handle(iu: Buffer, ctx: C): Promise<void> {
    try {
      if (iu.length === 0) return this.protocolError('empty IU');
      if (iu.length > this.opts.login.maxItIuLen) {
        return this.protocolError(`IU of ${iu.length} bytes exceeds the negotiated ${this.opts.login.maxItIuLen}`);
      }
      switch (iu[0]) {
        case SrpOpcode.LOGIN_REQ:
          return await this.handleLogin(iu, ctx);
        case SrpOpcode.CMD:
          return await this.handleCmd(iu, ctx);
        case SrpOpcode.TSK_MGMT:
          return await this.handleTskMgmt(iu, ctx);
        case SrpOpcode.I_LOGOUT:
          return await this.handleLogout(iu, ctx);
        default:
          // CRED_RSP / AER_RSP answer requests this target never sends; anything else is unknown.
          return this.protocolError(`unexpected SRP opcode 0x${iu[0]!.toString(16)}`);
      }
    } catch (err) {
      this.opts.logger?.error({ err }, 'SRP channel: internal error while handling an IU');
      this.protocolError(`internal error: ${(err as Error).message}`);
    }
  }

  /** The transport is gone or being reset: abort everything silently and forget the login. */
  async reset(): Promise<void> {
    this.generation++;
    for (const cmd of this.active.values()) this.retire(cmd);
    this.active.clear();
    this.credits.reset();
    const nexus = this.nexus;
    this.nexus = undefined;
    this.state = this.state === 'closed' ? 'closed' : 'idle';
    if (nexus) await nexus.close();
  }

  async close(): Promise<void> {
    await this.reset();
    this.state = 'closed';
  }

  private protocolError(message: string): void {
    this.opts.onProtocolError(message);
  }

  private async send(iu: Buffer, ctx: C, info: SrpSendInfo): Promise<void> {
    try {
      await this.opts.send(iu, ctx, info);
    } catch (err) {
      this.opts.logger?.warn({ err, kind: info.kind }, 'SRP channel: sending a response failed');
    }
  }

  private async handleLogin(iu: Buffer, ctx: C): Promise<void> {
    const d = decodeLoginReq(iu);
    if (!d.ok) return this.protocolError(d.error.message);
    const req = d.value;
    if (this.state === 'logging-in' || this.state === 'closed') {
      return this.protocolError('SRP_LOGIN_REQ while a login is in progress');
    }
    const decision = negotiateLogin(req, this.opts.login, { loggedIn: this.state === 'logged-in', otherChannels: 0 });
    if (!decision.accept) {
      this.opts.logger?.info({ reason: decision.rej.reason, why: decision.why }, 'SRP login rejected');
      return this.send(encodeLoginRej(decision.rej), ctx, { kind: 'login-rej', tag: req.tag });
    }
    this.state = 'logging-in';
    const gen = this.generation;
    let nexus: Nexus;
    try {
      nexus = await this.opts.openNexus(req);
    } catch (err) {
      if (gen === this.generation) this.state = 'idle';
      this.opts.logger?.warn({ err }, 'SRP login: opening the I_T nexus failed');
      return this.send(
        encodeLoginRej({ tag: req.tag, reason: 0x00010001, bufFmt: this.opts.login.bufFmt }),
        ctx,
        { kind: 'login-rej', tag: req.tag },
      );
    }
    if (gen !== this.generation) {
      await nexus.close();
      return;
    }
    this.nexus = nexus;
    this.credits = new CreditAccount(this.opts.login.requestLimit, this.opts.creditPolicy);
    this.state = 'logged-in';
    await this.send(encodeLoginRsp(decision.rsp), ctx, { kind: 'login-rsp', tag: req.tag });
  }

  private async handleLogout(iu: Buffer, ctx: C): Promise<void> {
    const d = decodeILogout(iu);
    if (!d.ok) return this.protocolError(d.error.message);
    if (this.state !== 'logged-in') return this.protocolError('SRP_I_LOGOUT before login');
    await this.reset();
    this.opts.onLogout?.(ctx);
  }

  /**
   * Answer a command the channel cannot carry (malformed IU, bad descriptors, overlapped tag) with
   * the core's CHECK CONDITION for `reason`: the core builds the sense in the LU's format.
   */
  private failureRsp(tag: SrpTag, solNot: number, creditId: number, lun: number, reason: ReasonName, ctx: C): Promise<void> {
    const nexus = this.nexus;
    if (!nexus) return Promise.resolve();
    const gen = this.generation;
    return new Promise<void>((resolve) => {
      nexus.failCommand({
        lun,
        cdb: NO_CDB,
        attribute: TA.SIMPLE,
        tag: tagToBigInt(tag),
        direction: 'none',
        expectedLength: 0,
        port: {
          fetchDataOut: () => Promise.reject(new Error('a failed command has no data phase')),
          complete: (result) => {
            // A reset in between retired the credit and forgot this login: nothing to answer.
            if (gen !== this.generation) return resolve();
            void this.sendRsp(tag, solNot, creditId, 'none', result, ctx).then(resolve);
          },
        },
      }, reason);
    });
  }

  /** Encode and send the SRP_RSP for a finished command (residual flags per `residualStyle`). */
  private sendRsp(tag: SrpTag, solNot: number, creditId: number, direction: 'read' | 'write' | 'none', result: ScsiCompletion, ctx: C): Promise<void> {
    const { status, sense, residual } = result;
    let flags = 0;
    let outRes = 0;
    let inRes = 0;
    let partial = false;
    if (residual.kind !== 'none' && residual.count > 0 && direction !== 'none') {
      partial = true;
      const over = residual.kind === 'overflow' || this.residualStyle === 'overflow-only';
      if (direction === 'read') {
        flags = over ? SrpRspFlag.DIOVER : SrpRspFlag.DIUNDER;
        inRes = residual.count;
      } else {
        flags = over ? SrpRspFlag.DOOVER : SrpRspFlag.DOUNDER;
        outRes = residual.count;
      }
    }
    const good = status === ScsiStatus.GOOD || status === ScsiStatus.CONDITION_MET;
    const sol = good ? solNot & SRP_SCSOLNT : solNot & SRP_UCSOLNT;
    const senseOut = status === ScsiStatus.CHECK_CONDITION && sense ? sense.subarray(0, this.maxSense) : undefined;
    const rsp = encodeRsp({
      tag,
      solNot: sol ? 1 : 0,
      reqLimDelta: this.credits.respond(creditId),
      residualFlags: flags,
      status,
      dataOutResidual: outRes,
      dataInResidual: inRes,
      ...(senseOut ? { sense: senseOut } : {}),
    });
    const hardwareError = !!senseOut && senseKeyOf(senseOut) === SenseKey.HARDWARE_ERROR;
    return this.send(rsp, ctx, { kind: 'rsp', tag, hardwareError, partialTransfer: partial });
  }

  private async handleCmd(iu: Buffer, ctx: C): Promise<void> {
    if (this.state !== 'logged-in' || !this.nexus) return this.protocolError('SRP_CMD before login');
    const d = decodeCmd(iu);
    if (!d.ok && (d.error.code === 'RESERVED_BITS' || d.error.code === 'BAD_TASK_ATTRIBUTE' || !d.error.tag)) {
      return this.protocolError(d.error.message);
    }
    const creditId = this.credits.consume();
    if (creditId === undefined) {
      return this.protocolError(`credit overrun: more than ${this.credits.limit} requests outstanding`);
    }
    this.stats.commands++;
    if (!d.ok) {
      this.stats.descriptorErrors++;
      this.opts.logger?.debug({ error: d.error.message }, 'SRP_CMD rejected');
      const rawLun = iu.length >= SRP_CMD_LUN_OFFSET + 8 ? this.opts.decodeLun(iu.subarray(SRP_CMD_LUN_OFFSET, SRP_CMD_LUN_OFFSET + 8)) : INVALID_LUN;
      return this.failureRsp(d.error.tag!, iu[1] ?? 0, creditId, rawLun, BAD_IU_REASON, ctx);
    }
    const cmd = d.value;
    const key = tagToBigInt(cmd.tag);
    const lun = this.opts.decodeLun(cmd.lun);
    if (this.active.has(key)) {
      return this.failureRsp(cmd.tag, cmd.solNot, creditId, lun, 'OVERLAPPED_COMMANDS_ATTEMPTED', ctx);
    }
    if (cmd.dataIn.format !== 'none' && cmd.dataOut.format !== 'none') {
      // No SRP target supports bidirectional commands and the VIO client never sends them.
      this.stats.descriptorErrors++;
      return this.failureRsp(cmd.tag, cmd.solNot, creditId, lun, BAD_IU_REASON, ctx);
    }
    const direction = cmd.dataIn.format !== 'none' ? 'read' : cmd.dataOut.format !== 'none' ? 'write' : 'none';
    const entry: ActiveCommand = {
      key,
      tag: cmd.tag,
      lun,
      creditId,
      generation: this.generation,
      submitted: false,
      completing: false,
      retired: false,
      finished: false,
    };
    this.active.set(key, entry);
    const descriptor = direction === 'read' ? cmd.dataIn : cmd.dataOut;
    const resolved =
      resolveDirect(descriptor) ??
      (await resolveDescriptors(
        descriptor,
        async (table) => {
          const buf = Buffer.alloc(table.len);
          await this.opts.mover.readFromInitiator([table], buf);
          return buf;
        },
        this.limits,
      ));
    // A TMF arrived while the descriptors were being fetched: its outcome decides whether we go on.
    if (entry.heldBy) await entry.heldBy;
    if (entry.retired || entry.generation !== this.generation) return;
    if (!resolved.ok) {
      this.stats.descriptorErrors++;
      this.opts.logger?.debug({ error: resolved.error.message }, 'SRP_CMD descriptor rejected');
      this.active.delete(key);
      entry.retired = true;
      finished(entry);
      return this.failureRsp(cmd.tag, cmd.solNot, creditId, lun, BAD_IU_REASON, ctx);
    }
    const { segments, expectedLength } = resolved.value;
    entry.submitted = true;
    const mover = this.opts.mover;
    const dataOutSegments = (offset: number, length: number): DirectDescriptor[] => {
      const segs = sliceSegments(segments, offset, length);
      if (!segs) throw new Error(`data-out range ${offset}+${length} is not covered by the descriptors`);
      return segs;
    };
    const request: ScsiCommandRequest = {
      lun: entry.lun,
      cdb: cmd.cdb,
      attribute: TASK_ATTR[cmd.taskAttr] ?? TA.SIMPLE,
      tag: key,
      direction,
      expectedLength,
      port: {
        fetchDataOut: async (offset, length) => {
          const segs = dataOutSegments(offset, length);
          // Pooled, not a fresh zero-filled Buffer: the copy overwrites all of it, and an O_DIRECT
          // backstore takes the pool's aligned buffers without a bounce copy.
          const lent = dataInPool.acquire(length);
          try {
            await mover.readFromInitiator(segs, lent.data);
          } catch (err) {
            // Not given back: a mover that failed part-way may still be writing into it.
            this.stats.transferErrors++;
            throw err;
          }
          (entry.dataOut ??= []).push(lent.release);
          return lent.data;
        },
        ...(mover.readFromInitiatorNow
          ? {
              fetchDataOutInto: (offset: number, dst: Buffer): boolean => {
                try {
                  mover.readFromInitiatorNow!(dataOutSegments(offset, dst.length), dst);
                } catch (err) {
                  this.stats.transferErrors++;
                  throw err;
                }
                return true;
              },
            }
          : {}),
        complete: (result) => {
          void this.complete(entry, cmd, request, segments, result, ctx);
        },
      },
    };
    this.nexus.submit(request);
  }

  private async complete(
    entry: ActiveCommand,
    cmd: SrpCmd,
    request: ScsiCommandRequest,
    segments: DirectDescriptor[],
    result: ScsiCompletion,
    ctx: C,
  ): Promise<void> {
    releaseDataOut(entry.dataOut, result.status);
    entry.dataOut = undefined;
    // The core's pooled data-in buffer goes back once nothing can read it any more: at once when it
    // is not sent, after the RDMA copy when it is; never after a failed copy (a mover may still hold it).
    let release = result.releaseDataIn;
    if (entry.retired || entry.completing || entry.generation !== this.generation) return release?.();
    entry.completing = true;
    try {
      let final = result;
      if (request.direction === 'read' && result.dataIn && result.dataIn.length > 0) {
        const n = Math.min(result.dataIn.length, request.expectedLength);
        const segs = sliceSegments(segments, 0, n);
        try {
          if (!segs) throw new Error('data-in does not fit the descriptors');
          await this.opts.mover.writeToInitiator(segs, result.dataIn.subarray(0, n));
        } catch (err) {
          release = undefined;
          this.stats.transferErrors++;
          this.opts.logger?.debug({ err }, 'SRP data-in transfer failed');
          if (entry.retired || entry.generation !== this.generation || !this.nexus) return;
          // The initiator did not get the data: the core turns that into the command's failure.
          final = this.nexus.failureCompletion(request, 'LOGICAL_UNIT_COMMUNICATION_FAILURE');
        }
        if (entry.retired || entry.generation !== this.generation) return;
      }
      this.active.delete(entry.key);
      entry.retired = true;
      await this.sendRsp(cmd.tag, cmd.solNot, entry.creditId, request.direction === 'read' || request.direction === 'write' ? request.direction : 'none', final, ctx);
    } finally {
      release?.();
      finished(entry);
    }
  }

  /** The command will never be answered: its credit is retired without a response. */
  private retire(cmd: ActiveCommand): void {
    if (cmd.retired) return;
    cmd.retired = true;
    this.credits.suppress(cmd.creditId);
    finished(cmd);
  }

  private async handleTskMgmt(iu: Buffer, ctx: C): Promise<void> {
    if (this.state !== 'logged-in' || !this.nexus) return this.protocolError('SRP_TSK_MGMT before login');
    const d = decodeTskMgmt(iu);
    if (!d.ok) return this.protocolError(d.error.message);
    const creditId = this.credits.consume();
    if (creditId === undefined) {
      return this.protocolError(`credit overrun: more than ${this.credits.limit} requests outstanding`);
    }
    this.stats.taskManagement++;
    const tm: SrpTskMgmt = d.value;
    const fn = TMF[tm.func];
    const lun = this.opts.decodeLun(tm.lun);
    const answer = (code: number) => {
      const ok = code === SrpRspCode.COMPLETE;
      const rsp = encodeRsp({
        tag: tm.tag,
        solNot: (ok ? tm.solNot & SRP_SCSOLNT : tm.solNot & SRP_UCSOLNT) ? 1 : 0,
        reqLimDelta: this.credits.respond(creditId),
        residualFlags: 0,
        status: ScsiStatus.GOOD,
        dataOutResidual: 0,
        dataInResidual: 0,
        responseData: rspCodeData(code),
      });
      return this.send(rsp, ctx, { kind: 'tmf-rsp', tag: tm.tag });
    };
    if (!fn) return answer(SrpRspCode.NOT_SUPPORTED);
    if (lun === INVALID_LUN) return answer(SrpRspCode.NOT_SUPPORTED);
    const candidates: ActiveCommand[] = [];
    if (fn === TF.ABORT_TASK) {
      const c = this.active.get(tagToBigInt(tm.taskTag));
      if (c && c.lun === lun) candidates.push(c);
    } else if (fn !== TF.CLEAR_ACA) {
      for (const c of this.active.values()) if (c.lun === lun) candidates.push(c);
    }
    // Commands not yet handed to the core cannot be aborted by it: hold their submission until the
    // function's outcome is known and drop them if it succeeded, so that nothing retired below is
    // still running in the core (it would touch the medium after the TM response).
    const inCore = candidates.filter((c) => c.submitted);
    const held = candidates.filter((c) => !c.submitted);
    let release!: () => void;
    const decided = new Promise<void>((r) => (release = r));
    for (const c of held) c.heldBy = decided;
    const gen = this.generation;
    let code: number;
    try {
      const r = await this.nexus.taskManagement({
        fn,
        lun,
        ...(fn === TF.ABORT_TASK ? { referencedTag: tagToBigInt(tm.taskTag) } : {}),
      });
      code = TMF_RSP_CODE[r.response] ?? SrpRspCode.FAILED;
    } catch (err) {
      this.opts.logger?.warn({ err }, 'SRP task management failed in the core');
      code = SrpRspCode.FAILED;
    }
    for (const c of held) {
      delete c.heldBy;
      if (code === SrpRspCode.COMPLETE && !c.retired) {
        this.active.delete(c.key);
        this.retire(c);
      }
    }
    release();
    if (gen !== this.generation) return;
    if (code === SrpRspCode.COMPLETE) {
      // The core never completes a command it aborted: retire those, and let commands that were
      // already completing finish sending their response before the TM response goes out.
      const finishing: Promise<void>[] = [];
      for (const c of inCore) {
        if (c.retired) continue;
        if (c.completing) finishing.push(whenFinished(c));
        else {
          this.active.delete(c.key);
          this.retire(c);
        }
      }
      await Promise.all(finishing);
    }
    await answer(code);
  }
}
