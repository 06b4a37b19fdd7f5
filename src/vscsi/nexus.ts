/**
 * An I_T nexus (SAM-5): one initiator port at one target port. It owns the unit attention queues
 * of its I_T_L nexuses and its active commands, runs each submitted command through the pipeline
 * (LUN → unit attention → CDB checks → task set → reservations/readiness → handler) and completes it
 * with status, sense and residual exactly once — or never, when task management aborted it.
 */
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { BackstoreError } from '../backstores/backstore.js';
import {
  INVALID_LUN,
  ScsiStatus,
  TaskAttribute,
  type InitiatorPortId,
  type Nexus,
  type Residual,
  type ScsiCommandRequest,
  type ScsiCompletion,
  type TmfRequest,
  type TmfResult,
} from './fabric.js';
import { CommandContext, FINISHES_LATER, check, type CommandOutcome, type CommandSpec, type HandlerResult } from './command.js';
import type { CoreServices } from './core-services.js';
import type { LogicalUnit } from './logical-unit.js';
import type { LunMap } from './lun-map.js';
import { isCommandSpec, lookupCommand, validateCdb } from './opcodes.js';
import { prNexusKey, type PrInitiator } from './reservation-port.js';
import { buildSense, failure, Reason, type ReasonName, type ScsiFailure, type SenseFormat } from './sense.js';
import { recordLatency } from './stats.js';
import { AluaState, type ScsiTarget, type TargetPort } from './target.js';
import type { TaskSet, TaskSetEntry } from './task-set.js';
import { UnitAttentionQueue } from './unit-attention.js';
import { handleTaskManagement } from './tmf.js';
import { sanitizeInProgress } from './sbc-sanitize.js';
import { InFlightTable } from './in-flight-table.js';

export type AbortMode = 'silent' | 'taskAborted';

/**
 * A command from submission to completion; also its own entry in its LU's task set, so that a command
 * waiting for its device holds one object less (BENCHMARKS.md, section 23).
 */
export class ActiveCommand implements TaskSetEntry {
  state: 'waiting' | 'running' | 'done' = 'waiting';
  abortMode: AbortMode | undefined;
  ctx: CommandContext | undefined;
  setState: 'waiting' | 'running' = 'waiting';
  prevInSet: TaskSetEntry | undefined = undefined;
  nextInSet: TaskSetEntry | undefined = undefined;
  inSet: TaskSet | undefined = undefined;
  private settledPromise: Promise<void> | undefined;
  private resolveSettled: (() => void) | undefined;
  private isSettled = false;
  readonly startedAt = performance.now();

  constructor(
    readonly nexus: NexusImpl,
    readonly request: ScsiCommandRequest,
    readonly cdb: Buffer,
    readonly lu: LogicalUnit | undefined,
    readonly spec: CommandSpec,
  ) {}

  /** Resolves when the command can no longer touch the medium or complete (created on demand). */
  get settled(): Promise<void> {
    if (this.isSettled) return Promise.resolve();
    this.settledPromise ??= new Promise<void>((r) => (this.resolveSettled = r));
    return this.settledPromise;
  }

  get tag(): bigint {
    return this.request.tag;
  }

  get attribute(): TaskAttribute {
    return this.request.attribute;
  }

  get nexusId(): number {
    return this.nexus.id;
  }

  /** The task set enabled it. */
  start(): void {
    this.state = 'running';
    this.nexus.execute(this);
  }

  get lun(): number {
    return this.request.lun;
  }

  markSettled(): void {
    this.isSettled = true;
    this.resolveSettled?.();
  }
}

let nextNexusId = 1;

/**
 * A completion with every field present, in one order: the fabrics read `sense`, `dataIn`,
 * `releaseDataIn` of every completion, and objects built with different subsets of fields would have
 * different shapes (polymorphic loads in the hottest functions, BENCHMARKS.md section 27).
 */
function completion(
  status: ScsiStatus,
  residual: Residual,
  dataIn?: Buffer,
  sense?: Buffer,
  bidiReadResidual?: Residual,
  releaseDataIn?: () => void,
): ScsiCompletion {
  return { status, sense, dataIn, residual, bidiReadResidual, releaseDataIn };
}

const NO_CDB = Buffer.alloc(0);
const CDB_SCRATCH_BYTES = 272;

/** Schedules batch completions: a `then` on a settled promise costs less than Node's queueMicrotask. */
const settled = Promise.resolve();

export interface NexusOwner extends CoreServices {
  closeNexus(n: NexusImpl): void;
  nexusLoss(n: NexusImpl): void;
}

/** Per-nexus presentation options (e.g. IBM VIO AIX clients expect IBM identity and LUN encoding). */
export interface NexusProfile {
  /** Replaces the LU's INQUIRY vendor / product / revision as seen by this nexus. */
  inquiryIdentity?: { vendor?: string; product?: string; revision?: string };
  /** Encodes LUN numbers in REPORT LUNS data (default: `encodeSamLun`). */
  lunEncoder?: (lun: number) => Buffer;
}

export class NexusImpl implements Nexus {
  readonly id = nextNexusId++;
  readonly prInitiator: PrInitiator;
  private readonly ua = new Map<number, UnitAttentionQueue>();
  readonly active = new InFlightTable<bigint, ActiveCommand>();
  private closed = false;
  private readonly unsubscribe: () => void;
  /** Where submitChecked copies each CDB first: large enough for any CDB a fabric carries (SPC-4: 260). */
  private readonly cdbScratch = Buffer.alloc(CDB_SCRATCH_BYTES);
  /** Commands whose handler answered at once, finished together in the next microtask (execute). */
  private finishing: ActiveCommand[] = [];
  private finishingOutcomes: CommandOutcome[] = [];

  constructor(
    readonly initiator: InitiatorPortId,
    readonly target: ScsiTarget,
    readonly targetPort: TargetPort,
    readonly lunMap: LunMap,
    readonly owner: NexusOwner,
    readonly logger?: Logger,
    readonly profile: NexusProfile = {},
  ) {
    this.prInitiator = {
      key: prNexusKey(initiator, targetPort.name),
      initiator,
      relativeTargetPortId: targetPort.relativeId,
      targetPortName: targetPort.name,
    };
    this.attachToReservations();
    this.unsubscribe = lunMap.onChange((map) => {
      this.attachToReservations();
      for (const n of map.lunNumbers()) this.addUnitAttention(n, 'REPORTED_LUNS_DATA_HAS_CHANGED');
      // A LUN that disappeared still reports the change on LUN 0 if it is absent too.
      if (!map.has(0)) this.addUnitAttention(0, 'REPORTED_LUNS_DATA_HAS_CHANGED');
    });
  }

  /** Let each LU's reservation manager know this nexus exists (routing of PR unit attentions). */
  private attachToReservations(): void {
    for (const [, lu] of this.lunMap.entries()) {
      void lu.ready.then(() => {
        if (!this.closed) lu.reservations?.attachNexus?.(this.prInitiator);
      });
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  lunNumbers(): number[] {
    return this.lunMap.lunNumbers();
  }

  activeCommands(): number {
    return this.active.size;
  }

  /** The logical unit at `lun` on this nexus, if any. */
  unitAt(lun: number): LogicalUnit | undefined {
    if (lun === INVALID_LUN) return undefined;
    const lu = this.lunMap.get(lun);
    return lu && !lu.removed ? lu : undefined;
  }

  senseFormat(lu: LogicalUnit | undefined): SenseFormat {
    return lu?.mode.dSense ? 'descriptor' : 'fixed';
  }

  // ---- unit attentions -------------------------------------------------------------------------

  addUnitAttention(lun: number, reason: ReasonName): void {
    if (this.closed) return;
    let q = this.ua.get(lun);
    if (!q) {
      q = new UnitAttentionQueue();
      this.ua.set(lun, q);
    }
    q.add(reason);
  }

  unitAttentions(lun: number): UnitAttentionQueue | undefined {
    const q = this.ua.get(lun);
    return q && q.size > 0 ? q : undefined;
  }

  /** Drop one condition from every LUN of this nexus (REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED). */
  removeUnitAttention(reason: ReasonName): void {
    for (const q of this.ua.values()) q.remove(reason);
  }

  clearUnitAttentions(): void {
    this.ua.clear();
  }

  // ---- commands --------------------------------------------------------------------------------

  /** The command leaves this nexus's active set (and the core's count of commands in flight). */
  private untrack(cmd: ActiveCommand): void {
    if (this.active.get(cmd.tag) !== cmd) return;
    this.active.delete(cmd.tag);
    const counters = this.owner.commandCounter;
    if (counters) counters[1]!--;
  }

  submit(request: ScsiCommandRequest): void {
    const counters = this.owner.commandCounter;
    if (counters) counters[0]!++;
    try {
      this.submitChecked(request);
    } catch (err) {
      this.logger?.error({ err, nexus: this.id }, 'internal error while accepting a command');
      queueMicrotask(() => this.safeComplete(request, {
        status: ScsiStatus.CHECK_CONDITION,
        sense: buildSense(failure('INTERNAL_TARGET_FAILURE'), 'fixed'),
        residual: { kind: 'none' },
      }));
    }
  }

  private submitChecked(request: ScsiCommandRequest): void {
    if (this.closed) {
      queueMicrotask(() => this.safeComplete(request, { status: ScsiStatus.TASK_ABORTED, residual: { kind: 'none' } }));
      return;
    }
    // Copy once, into memory the fabric cannot touch (it may reuse its buffer, a guest may change
    // shared memory): the checks below and the command's own CDB all read this copy. It is this
    // nexus's scratch buffer, so the command's CDB is the one allocation, at its own length.
    const src = request.cdb ?? NO_CDB;
    const length = src.length;
    const cdb = length <= this.cdbScratch.length ? this.cdbScratch : Buffer.allocUnsafe(length);
    cdb.set(src);
    const lu = this.unitAt(request.lun);

    if (this.active.has(request.tag)) {
      // Overlapped commands (SAM-5): a tag still in use by an active task of this nexus.
      this.refuse(request, lu, failure('OVERLAPPED_COMMANDS_ATTEMPTED'));
      return;
    }
    if (length === 0) {
      this.refuse(request, lu, failure('INVALID_COMMAND_OPERATION_CODE', { field: { inCdb: true, byte: 0 } }));
      return;
    }
    const found = lookupCommand(cdb, length);
    const spec = isCommandSpec(found) ? found : undefined;
    if (!lu && !spec?.noLogicalUnit) {
      this.refuse(request, lu, failure('LOGICAL_UNIT_NOT_SUPPORTED'));
      return;
    }
    if (lu && !spec?.noUnitAttention) {
      const q = this.unitAttentions(request.lun);
      const reason = q?.take();
      if (reason) {
        this.refuse(request, lu, failure(reason));
        return;
      }
    }
    if (!spec) {
      this.refuse(request, lu, found as ScsiFailure);
      return;
    }
    const invalid = validateCdb(spec, cdb, length);
    if (invalid) {
      this.refuse(request, lu, invalid);
      return;
    }
    if (request.attribute === TaskAttribute.ACA) {
      // NACA is never accepted, so no ACA condition can exist for an ACA task to address.
      this.refuse(request, lu, failure('INVALID_MESSAGE_ERROR'));
      return;
    }

    const own = Buffer.allocUnsafe(spec.usage.length);
    cdb.copy(own, 0, 0, own.length);
    const cmd = new ActiveCommand(this, request, own, lu, spec);
    this.active.set(request.tag, cmd);
    const counters = this.owner.commandCounter;
    if (counters) counters[1]!++;
    if (!lu) {
      cmd.state = 'running';
      this.execute(cmd);
      return;
    }
    lu.taskSet.add(cmd);
  }

  /** Complete a command refused before it started (a method, not a closure made for every command). */
  private refuse(request: ScsiCommandRequest, lu: LogicalUnit | undefined, f: ScsiFailure): void {
    this.completeImmediately(request, lu, { kind: 'check', failure: f });
  }

  /**
   * Run the command and finish it. Plain promise callbacks instead of nested async functions: with
   * thousands of commands in flight (64 sessions x QD32) every per-command allocation is copied by
   * each young-generation collection, so the hot path keeps them few (BENCHMARKS.md, section 8).
   * Called by ActiveCommand.start when the task set enables the command, or at once without an LU.
   */
  execute(cmd: ActiveCommand): void {
    const lu = cmd.lu;
    const ctx = new CommandContext(cmd.cdb, cmd.lun, lu, this, this.owner, cmd.request, this.logger);
    cmd.ctx = ctx;
    ctx.command = cmd;
    let run: HandlerResult | Promise<HandlerResult>;
    try {
      run = lu && !lu.isReady ? lu.ready.then(() => this.runPipeline(cmd, ctx)) : this.runPipeline(cmd, ctx);
    } catch (err) {
      run = this.mapError(err, lu, cmd);
    }
    if (run instanceof Promise) {
      run.then(
        (outcome) => {
          if (outcome !== FINISHES_LATER) this.finish(cmd, ctx, outcome);
        },
        (err: unknown) => this.finish(cmd, ctx, this.mapError(err, lu, cmd)),
      );
    } else if (run !== FINISHES_LATER) {
      // Never complete inside submit() (the fabric may still be registering the task) or inside
      // another command's completion (which starts the tasks it was holding back). One microtask
      // per batch, not per command: READ and WRITE on memory, null and page-cache hits answer at once,
      // and Node's queueMicrotask allocates an async resource and a bound function per call.
      if (this.finishing.length === 0) void settled.then(this.finishAnswered);
      this.finishing.push(cmd);
      this.finishingOutcomes.push(run);
    }
  }

  /** Finishes the commands execute() collected, in the order they were answered. */
  private readonly finishAnswered = (): void => {
    const cmds = this.finishing;
    const outcomes = this.finishingOutcomes;
    this.finishing = [];
    this.finishingOutcomes = [];
    for (let i = 0; i < cmds.length; i++) this.finishGuarded(cmds[i]!, cmds[i]!.ctx!, outcomes[i]!);
  };

  /**
   * finish() where the caller is a batch (finishAnswered, the engine's completions). The fabric's own
   * throws are caught in safeComplete; this catches a bug of ours finishing one command, so that it
   * neither strands the rest of the batch nor escapes into the engine's completion loop.
   */
  private finishGuarded(cmd: ActiveCommand, ctx: CommandContext, outcome: CommandOutcome): void {
    try {
      this.finish(cmd, ctx, outcome);
    } catch (err) {
      this.logger?.error({ err, nexus: this.id, opcode: cmd.cdb[0] }, 'completing a command failed');
    }
  }

  /** The end of a command whose handler answered FINISHES_LATER (CommandContext.finish). */
  finishLater(ctx: CommandContext, outcome: CommandOutcome): void {
    const cmd = ctx.command;
    if (cmd && cmd.state !== 'done') this.finishGuarded(cmd, ctx, outcome);
  }

  /** As finishLater, for a failure: mapped as a thrown error would be. */
  failLater(ctx: CommandContext, err: unknown): void {
    const cmd = ctx.command;
    if (cmd && cmd.state !== 'done') this.finishGuarded(cmd, ctx, this.mapError(err, cmd.lu, cmd));
  }

  /** The checks every command passes, then its handler; synchronous up to the handler's first await. */
  private runPipeline(cmd: ActiveCommand, ctx: CommandContext): HandlerResult | Promise<HandlerResult> {
    const lu = cmd.lu;
    if (lu) {
      if (cmd.abortMode) return { kind: 'good' };
      if (lu.reservations?.checkConflict(this.prInitiator, cmd.cdb)) return { kind: 'conflict' };
      // SBC-4 4.11.2: while sanitizing, only INQUIRY, REPORT LUNS and REQUEST SENSE are served.
      if (lu.sanitize && !cmd.spec.noUnitAttention) return check(sanitizeInProgress(lu));
      const notReady = this.readiness(lu, cmd.spec);
      if (notReady) return check(notReady);
    }
    return cmd.spec.run(ctx);
  }

  /** NOT READY conditions: ALUA state of this port, removed medium, stopped unit. */
  private readiness(lu: LogicalUnit, spec: CommandSpec): ScsiFailure | undefined {
    if (!spec.mediaAccess) return undefined;
    const state = this.targetPort.group.state;
    if (state === AluaState.STANDBY) return failure('LU_NOT_ACCESSIBLE_TARGET_PORT_IN_STANDBY_STATE');
    if (state === AluaState.UNAVAILABLE || state === AluaState.OFFLINE) {
      return failure('LU_NOT_ACCESSIBLE_TARGET_PORT_IN_UNAVAILABLE_STATE');
    }
    if (state === AluaState.TRANSITIONING) return failure('LU_NOT_ACCESSIBLE_ASYMMETRIC_ACCESS_STATE_TRANSITION');
    if (lu.fault) return failure(lu.fault);
    if (lu.sanitizeFailed && !spec.sanitizeFailureAllowed) return failure('SANITIZE_COMMAND_FAILED');
    if (!lu.mediumPresent) return failure('MEDIUM_NOT_PRESENT');
    if (lu.stopped) return failure('LU_NOT_READY_INITIALIZING_COMMAND_REQUIRED');
    return undefined;
  }

  /** Backstore errors become sense per LU; anything else is a bug, reported as a target failure. */
  private mapError(err: unknown, lu: LogicalUnit | undefined, cmd: ActiveCommand): CommandOutcome {
    if (err instanceof BackstoreError) {
      if (!err.reported) lu?.logErrorOnce(err.kind, err);
      const isWrite = cmd.spec.cls === 'write';
      const reason: ReasonName =
        err.kind === 'io'
          ? isWrite
            ? 'WRITE_ERROR'
            : 'UNRECOVERED_READ_ERROR'
          : err.kind === 'nospace'
            ? 'SPACE_ALLOCATION_FAILED_WRITE_PROTECT'
            : err.kind === 'readonly'
              ? 'WRITE_PROTECTED'
              : err.kind === 'gone'
                ? 'LU_NOT_READY_MANUAL_INTERVENTION_REQUIRED'
                : 'INVALID_COMMAND_OPERATION_CODE';
      return check(failure(reason));
    }
    this.logger?.error({ err, lu: lu?.id, opcode: cmd.cdb[0] }, 'command handler failed unexpectedly');
    return check(failure('INTERNAL_TARGET_FAILURE'));
  }

  private finish(cmd: ActiveCommand, ctx: CommandContext, outcome: CommandOutcome): void {
    cmd.state = 'done';
    cmd.inSet?.remove(cmd);
    const abortMode = cmd.abortMode;
    if (abortMode) {
      if (outcome.kind === 'good') outcome.releaseData?.();
      if (abortMode === 'taskAborted' && !this.closed) {
        this.safeComplete(cmd.request, { status: ScsiStatus.TASK_ABORTED, residual: { kind: 'none' } });
      } else {
        this.safeAborted(cmd.request);
      }
      this.untrack(cmd);
      if (cmd.lu) cmd.lu.stats.aborted++;
      cmd.markSettled();
      return;
    }
    this.untrack(cmd);
    const completion = this.buildCompletion(ctx, cmd.lu, outcome);
    if (cmd.lu) {
      this.account(cmd, ctx, completion);
      if (outcome.kind === 'good' && cmd.spec.mediaAccess) cmd.lu.noteSuccess();
    }
    cmd.markSettled();
    this.safeComplete(cmd.request, completion);
  }

  private account(cmd: ActiveCommand, ctx: CommandContext, c: ScsiCompletion): void {
    const s = cmd.lu!.stats;
    if (cmd.spec.cls === 'read') {
      s.readCommands++;
      s.readBytes += c.status === ScsiStatus.GOOD ? ctx.bytes : 0;
    } else if (cmd.spec.cls === 'write') {
      s.writeCommands++;
      s.writeBytes += c.status === ScsiStatus.GOOD ? ctx.bytes : 0;
    } else s.otherCommands++;
    if (c.status !== ScsiStatus.GOOD && c.status !== ScsiStatus.CONDITION_MET) s.errors++;
    recordLatency(s, performance.now() - cmd.startedAt);
  }

  /** Residuals (SAM-5 / RFC 7143 11.4.5): measured against the initiator's expected length. */
  buildCompletion(ctx: CommandContext | undefined, lu: LogicalUnit | undefined, outcome: CommandOutcome): ScsiCompletion {
    const req = ctx?.request;
    const expectedIn = ctx?.expectedIn ?? 0;
    const expectedAll = req?.expectedLength ?? 0;
    const outResidual: Residual = ctx?.outResidual ?? { kind: 'none' };
    const noData: Residual =
      outResidual.kind !== 'none' ? outResidual : expectedAll > 0 ? { kind: 'underflow', count: expectedAll } : { kind: 'none' };
    if (outcome.kind === 'conflict') return completion(ScsiStatus.RESERVATION_CONFLICT, noData);
    if (outcome.kind === 'check') {
      return completion(ScsiStatus.CHECK_CONDITION, noData, undefined, buildSense(outcome.failure, this.senseFormat(lu)));
    }
    const status = outcome.conditionMet ? ScsiStatus.CONDITION_MET : ScsiStatus.GOOD;
    if (!outcome.data) return completion(status, ctx?.direction === 'write' || ctx?.direction === 'bidi' ? outResidual : noData);
    const data = outcome.data;
    let residual: Residual = { kind: 'none' };
    if (data.length < expectedIn) residual = { kind: 'underflow', count: expectedIn - data.length };
    else if (data.length > expectedIn) residual = { kind: 'overflow', count: data.length - expectedIn };
    const dataIn = data.length > expectedIn ? data.subarray(0, expectedIn) : data;
    if (req?.direction === 'bidi') return completion(status, outResidual, dataIn, undefined, residual, outcome.releaseData);
    return completion(status, residual, dataIn, undefined, undefined, outcome.releaseData);
  }

  private completeImmediately(
    request: ScsiCommandRequest,
    lu: LogicalUnit | undefined,
    outcome: CommandOutcome,
    outResidual: Residual = { kind: 'none' },
  ): void {
    const fake = { request, expectedIn: 0, outResidual, direction: request.direction } as unknown as CommandContext;
    const completion = this.buildCompletion(fake, lu, outcome);
    if (lu) lu.stats.errors++;
    // Never complete inside submit(): the fabric may still be registering the task.
    queueMicrotask(() => this.safeComplete(request, completion));
  }

  failureCompletion(request: ScsiCommandRequest, reason: ReasonName, extra: Omit<ScsiFailure, 'reason'> = {}): ScsiCompletion {
    const lu = this.unitAt(request.lun);
    const known: ReasonName = Object.hasOwn(Reason, reason) ? reason : 'INTERNAL_TARGET_FAILURE';
    const nothing = (n: number | undefined): Residual =>
      Number.isSafeInteger(n) && n! > 0 ? { kind: 'underflow', count: n! } : { kind: 'none' };
    const completion: ScsiCompletion = {
      status: ScsiStatus.CHECK_CONDITION,
      sense: buildSense({ ...extra, reason: known }, this.senseFormat(lu)),
      residual: nothing(request.expectedLength),
    };
    if (request.direction === 'bidi') completion.bidiReadResidual = nothing(request.expectedReadLength);
    return completion;
  }

  failCommand(request: ScsiCommandRequest, reason: ReasonName, extra: Omit<ScsiFailure, 'reason'> = {}): void {
    const completion = this.failureCompletion(request, reason, extra);
    const lu = this.unitAt(request.lun);
    if (lu) lu.stats.errors++;
    queueMicrotask(() => this.safeComplete(request, completion));
  }

  private safeAborted(request: ScsiCommandRequest): void {
    try {
      request.port.aborted?.();
    } catch (err) {
      this.logger?.warn({ err, nexus: this.id }, 'fabric aborted callback threw');
    }
  }

  private safeComplete(request: ScsiCommandRequest, completion: ScsiCompletion): void {
    try {
      request.port.complete(completion);
    } catch (err) {
      this.logger?.warn({ err, nexus: this.id }, 'fabric completion callback threw');
    }
  }

  /**
   * Abort `cmd` (task management). Waiting tasks leave the task set at once; running ones finish their
   * I/O first. The returned promise resolves when the command can no longer touch the medium.
   */
  abortCommand(cmd: ActiveCommand, mode: AbortMode): Promise<void> {
    if (cmd.state === 'done') return cmd.settled;
    if (!cmd.abortMode || mode === 'silent') cmd.abortMode = mode;
    cmd.ctx?.abort();
    if (cmd.state === 'waiting') {
      cmd.state = 'done';
      cmd.inSet?.remove(cmd);
      this.untrack(cmd);
      if (cmd.lu) cmd.lu.stats.aborted++;
      if (mode === 'taskAborted' && !this.closed) {
        this.safeComplete(cmd.request, { status: ScsiStatus.TASK_ABORTED, residual: { kind: 'none' } });
      } else {
        this.safeAborted(cmd.request);
      }
      cmd.markSettled();
    }
    return cmd.settled;
  }

  /** Commands of this nexus addressed to `lu` (any LUN it is mapped at). */
  commandsFor(lu: LogicalUnit): ActiveCommand[] {
    return [...this.active.values()].filter((c) => c.lu === lu && c.state !== 'done');
  }

  taskManagement(request: TmfRequest): Promise<TmfResult> {
    return handleTaskManagement(this, request);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    const pending = [...this.active.values()].map((c) => this.abortCommand(c, 'silent'));
    await Promise.all(pending);
    this.ua.clear();
    this.owner.nexusLoss(this);
    this.owner.closeNexus(this);
  }
}
