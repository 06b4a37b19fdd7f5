/**
 * What a command handler sees and returns. Handlers parse their CDB, check it, do the work through the
 * LU's backstore and return an outcome; the nexus turns outcomes into status, sense and residuals.
 */
import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import type { DataDirection, Residual, ScsiCommandRequest } from './fabric.js';
import type { LogicalUnit } from './logical-unit.js';
import type { ScsiFailure } from './sense.js';
import { failure } from './sense.js';
import type { CoreServices } from './core-services.js';
import type { ActiveCommand, NexusImpl } from './nexus.js';

export type CommandOutcome =
  | { kind: 'good'; data?: Buffer; conditionMet?: boolean; /** Gives `data` back to the buffer pool. */ releaseData?: () => void }
  | { kind: 'check'; failure: ScsiFailure }
  | { kind: 'conflict' };

/**
 * A handler's answer that it finishes the command itself, later, with `ctx.finish` or `ctx.fail` —
 * no promise per command (READ and WRITE on stores with startRead/startWrite; BENCHMARKS.md
 * section 27). It must not finish before it has returned this.
 */
export const FINISHES_LATER = Symbol('finishes later');
export type HandlerResult = CommandOutcome | typeof FINISHES_LATER;

export const good = (data?: Buffer): CommandOutcome => (data ? { kind: 'good', data } : { kind: 'good' });
export const check = (f: ScsiFailure): CommandOutcome => ({ kind: 'check', failure: f });

/** How a data-out length that differs from the expected length is treated (see `dataOut`). */
type OutKind = 'media' | 'media-lenient' | 'parameters';

/** The class of a command, for statistics and for how mismatched data-out lengths are treated. */
export type CommandClass = 'read' | 'write' | 'other';

export interface CommandSpec {
  name: string;
  opcode: number;
  serviceAction?: number;
  /**
   * CDB usage data (SPC-4 6.35.3): for each CDB byte the bits the command uses. Its length is the CDB
   * length. Any other bit set in a CDB is a reserved bit and fails with INVALID FIELD IN CDB.
   */
  usage: readonly number[];
  /** Accepted with a unit attention pending and on LUNs that do not exist (SAM-5 5.14: INQUIRY, REPORT LUNS, REQUEST SENSE). */
  noUnitAttention?: boolean;
  /** Runs even when no logical unit is mapped at the LUN (INQUIRY, REPORT LUNS, REQUEST SENSE). */
  noLogicalUnit?: boolean;
  /** Needs the medium (NOT READY when the removable medium is out or the unit is stopped). */
  mediaAccess?: boolean;
  /** Served while a failed SANITIZE left the LU in sanitize failure mode (SANITIZE itself). */
  sanitizeFailureAllowed?: boolean;
  /** Recommended timeout (seconds) for the RSOC timeouts descriptor. */
  timeoutSeconds?: number;
  cls: CommandClass;
  run(ctx: CommandContext): Promise<HandlerResult> | HandlerResult;
}

/** INVALID FIELD IN COMMAND INFORMATION UNIT (SPC-4 annex D 0E/03), for write length mismatches. */
export const INVALID_FIELD_IN_CIU = 'INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT' as const;

export class CommandContext {
  /** Data-out residual, set by `dataOut`. */
  outResidual: Residual = { kind: 'none' };
  /** Bytes moved by the command (stats). */
  bytes = 0;
  /** Set by task management: the handler should stop early where it can; its result is discarded. */
  aborted = false;
  private wakeOnAbort: (() => void) | undefined;
  /** Created only for commands that wait for data-out (most commands never need it). */
  private abortedPromise: Promise<void> | undefined;

  /** The command this context runs: set by the nexus before the handler is called. */
  command: ActiveCommand | undefined;

  /** Finish a command whose handler answered FINISHES_LATER. */
  finish(outcome: CommandOutcome): void {
    this.nexus.finishLater(this, outcome);
  }

  /** Finish a command whose handler answered FINISHES_LATER with what it would have thrown. */
  fail(err: unknown): void {
    this.nexus.failLater(this, err);
  }

  /** Task management aborted the command: stop waiting for data-out that may never come. */
  abort(): void {
    this.aborted = true;
    const wake = this.wakeOnAbort;
    this.wakeOnAbort = undefined;
    wake?.();
  }

  private onAbort(fn: () => void): void {
    const before = this.wakeOnAbort;
    this.wakeOnAbort = before ? () => (before(), fn()) : fn;
  }

  /** Resolves when task management aborts the command (for handlers that wait on long work they do not own). */
  whenAborted(): Promise<void> {
    return this.aborted ? Promise.resolve() : this.abortSignal();
  }

  private abortSignal(): Promise<void> {
    this.abortedPromise ??= new Promise<void>((r) => this.onAbort(r));
    return this.abortedPromise;
  }

  /**
   * Data-out from the fabric, or undefined once task management aborts the command (an aborted
   * initiator stops sending Data-Out: the TMF must not wait for it). One promise per fetch, not a
   * race against a second one: every WRITE comes through here.
   */
  private fetchUnlessAborted(length: number): Promise<Buffer | undefined> {
    const fetch = this.request.port.fetchDataOut(0, length);
    return new Promise<Buffer | undefined>((resolve, reject) => {
      fetch.then(resolve, reject);
      this.onAbort(() => resolve(undefined));
    });
  }

  constructor(
    readonly cdb: Buffer,
    readonly lun: number,
    readonly lu: LogicalUnit | undefined,
    readonly nexus: NexusImpl,
    readonly services: CoreServices,
    readonly request: ScsiCommandRequest,
    readonly logger: Logger | undefined,
  ) {}

  /** The LU (for handlers whose spec has no `noLogicalUnit`, the nexus guarantees it is there). */
  get unit(): LogicalUnit {
    if (!this.lu) throw new Error('command handler needs a logical unit');
    return this.lu;
  }

  get direction(): DataDirection {
    return this.request.direction;
  }

  /** Expected data-in length. */
  get expectedIn(): number {
    const r = this.request;
    if (r.direction === 'read') return r.expectedLength;
    if (r.direction === 'bidi') return r.expectedReadLength ?? 0;
    return 0;
  }

  /** Expected data-out length. */
  get expectedOut(): number {
    const r = this.request;
    return r.direction === 'write' || r.direction === 'bidi' ? r.expectedLength : 0;
  }

  /**
   * Fetch `length` bytes of data-out. `media` commands (WRITE, COMPARE AND WRITE, ...) must be given
   * exactly what the CDB says: any other expected length fails with INVALID FIELD IN COMMAND
   * INFORMATION UNIT and nothing is written (FCP-4 / LIO behaviour; libiscsi accepts it). Parameter
   * lists may come with a longer expected length (underflow); a shorter one fails with INVALID FIELD
   * IN CDB pointing at the parameter list length.
   */
  async dataOut(length: number, kind: OutKind, lengthField?: number): Promise<Buffer | ScsiFailure> {
    const settled = this.settleOut(length, kind, lengthField);
    if (settled) return settled;
    try {
      const got = await this.fetchUnlessAborted(length);
      if (!Buffer.isBuffer(got) || got.length !== length) return failure('DATA_PHASE_ERROR');
      return got;
    } catch {
      return failure('DATA_PHASE_ERROR');
    }
  }

  /** What `dataOut` would give, when the fabric already holds the bytes; undefined when they must be fetched. */
  dataOutNow(length: number, kind: OutKind, lengthField?: number): Buffer | ScsiFailure | undefined {
    const settled = this.settleOut(length, kind, lengthField);
    if (settled) return settled;
    const got = this.request.port.fetchDataOutNow?.(0, length);
    return got !== undefined && got.length === length ? got : undefined;
  }

  /** Residual and length checks of a data-out request: a failure, an empty buffer, or undefined to transfer. */
  private settleOut(length: number, kind: OutKind, lengthField?: number): Buffer | ScsiFailure | undefined {
    const expected = this.expectedOut;
    if (expected > length) this.outResidual = { kind: 'underflow', count: expected - length };
    else if (expected < length) this.outResidual = { kind: 'overflow', count: length - expected };
    if (kind === 'media' && expected !== length) return failure(INVALID_FIELD_IN_CIU);
    if (kind === 'media-lenient' && expected < length) return failure(INVALID_FIELD_IN_CIU);
    if (kind === 'parameters' && expected < length) {
      return failure('INVALID_FIELD_IN_CDB', lengthField === undefined ? {} : { field: { inCdb: true, byte: lengthField } });
    }
    if (length === 0) return Buffer.alloc(0);
    if (this.aborted) return failure('DATA_PHASE_ERROR');
    return undefined;
  }

  /**
   * Data-out of a WRITE whose expected length may differ from what the CDB asks for. As FCP-4 9.4.2
   * option (a) and libiscsi's residual tests expect: with more expected than needed, only the CDB's
   * bytes are taken (underflow); with less, only the expected bytes are transferred and written
   * (overflow) — provided they are whole blocks, otherwise nothing is written and the command fails
   * with INVALID FIELD IN COMMAND INFORMATION UNIT.
   */
  async dataOutTruncatable(length: number, blockSize: number): Promise<Buffer | ScsiFailure> {
    const t = this.truncation(length, blockSize);
    return this.dataOut(t.length, t.kind);
  }

  /** `dataOutTruncatable` without waiting, when the fabric already holds the bytes; else undefined. */
  dataOutTruncatableNow(length: number, blockSize: number): Buffer | ScsiFailure | undefined {
    const t = this.truncation(length, blockSize);
    return this.dataOutNow(t.length, t.kind);
  }

  /**
   * `dataOutTruncatable` straight into storage, when the fabric copies synchronously: `target(n)` gives
   * the `n` bytes to fill (a store's own memory) and the fabric copies the data-out there before this
   * returns. Returns the bytes written, a failure, or undefined when it cannot be done at once (then
   * nothing was copied and the caller fetches as usual).
   */
  dataOutTruncatableInto(length: number, blockSize: number, target: (n: number) => Buffer | undefined): number | ScsiFailure | undefined {
    const port = this.request.port;
    if (!port.fetchDataOutInto) return undefined;
    const t = this.truncation(length, blockSize);
    const settled = this.settleOut(t.length, t.kind);
    if (settled) return Buffer.isBuffer(settled) ? 0 : settled;
    const dst = target(t.length);
    if (!dst) return undefined;
    try {
      return port.fetchDataOutInto(0, dst) ? t.length : undefined;
    } catch {
      return failure('DATA_PHASE_ERROR');
    }
  }

  /** The length and kind to fetch; an overflow is recorded here (fetching exactly `expected` sets no residual). */
  private truncation(length: number, blockSize: number): { length: number; kind: OutKind } {
    const expected = this.expectedOut;
    if (expected >= length || expected % blockSize !== 0) return { length, kind: 'media-lenient' };
    this.outResidual = { kind: 'overflow', count: length - expected };
    return { length: expected, kind: 'media' };
  }

  /** Data-in limited to the CDB's allocation length (the nexus further limits it to the expected length). */
  dataIn(data: Buffer, allocationLength: number): CommandOutcome {
    return good(data.length > allocationLength ? data.subarray(0, allocationLength) : data);
  }
}

export const isFailure = (x: Buffer | ScsiFailure): x is ScsiFailure => !Buffer.isBuffer(x);
