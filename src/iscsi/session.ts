/**
 * An iSCSI session (RFC 7143 §4.2.2, §6): the I_T nexus with the core, the session-wide command window
 * (CmdSN/ExpCmdSN/MaxCmdSN) and in-order delivery of non-immediate commands across all connections
 * (MC/S), and the table of active tasks by Initiator Task Tag.
 */
import type { Nexus } from '../vscsi/fabric.js';
import type { OperationalParams } from './params.js';
import { serialAdd, serialLe, serialLt } from './pdu.js';
import type { ScsiTask } from './scsi-task.js';
import { InFlightTable } from '../vscsi/in-flight-table.js';

/** What the session asks of each of its connections. */
export interface SessionConnection {
  readonly cid: number;
  /** Close the connection now (logout, reinstatement, session end). */
  drop(reason: string): void;
  /**
   * The connection is leaving in an orderly way (logged out, or replaced by connection reinstatement):
   * its closing does not fail the session.
   */
  markOrderlyExit(): void;
  /** Close after what is already queued (a final response) has been sent. */
  closeAfterFlush(reason: string): void;
}

/** The part of the core's nexus a session's connections use (a connection thread has only this). */
export type SessionNexus = Pick<Nexus, 'submit' | 'taskManagement'>;

export interface SessionCounters {
  commands: number;
  readBytes: number;
  writeBytes: number;
  tmfs: number;
  rejects: number;
}

/** Commands accepted beyond ExpCmdSN (and in flight) at most: the advertised window. */
export const DEFAULT_CMD_WINDOW = 128;

export class IscsiSession<N extends SessionNexus = SessionNexus> {
  readonly connections = new Map<number, SessionConnection>();
  readonly tasks = new InFlightTable<number, ScsiTask>();
  readonly counters: SessionCounters = { commands: 0, readBytes: 0, writeBytes: 0, tmfs: 0, rejects: 0 };
  readonly createdAt = Date.now();
  expCmdSn: number;
  private announcedMax: number;
  private readonly pending = new Map<number, () => void>();
  private draining = false;
  closed = false;

  constructor(
    readonly tsih: number,
    readonly isid: Buffer,
    readonly initiatorName: string,
    readonly targetName: string | undefined,
    readonly type: 'Normal' | 'Discovery',
    readonly params: OperationalParams,
    firstCmdSn: number,
    readonly nexus: N | undefined,
    readonly tpgt: number,
    readonly window = DEFAULT_CMD_WINDOW,
  ) {
    this.expCmdSn = firstCmdSn >>> 0;
    this.announcedMax = serialAdd(this.expCmdSn, window - 1);
  }

  get isidHex(): string {
    return this.isid.toString('hex');
  }

  /**
   * MaxCmdSN: the window shrinks while commands are in flight so an initiator cannot queue without
   * bound; it never moves backwards (§4.2.2.1: initiators ignore a smaller MaxCmdSN anyway).
   */
  get maxCmdSn(): number {
    const room = Math.max(0, this.window - this.tasks.size - this.pending.size);
    const candidate = serialAdd(this.expCmdSn, room - 1);
    if (serialLt(this.announcedMax, candidate)) this.announcedMax = candidate;
    return this.announcedMax;
  }

  /** Continue the command window where another thread's copy of this session left it. */
  resumeWindow(expCmdSn: number, maxCmdSn: number): void {
    this.expCmdSn = expCmdSn >>> 0;
    if (serialLt(this.announcedMax, maxCmdSn >>> 0)) this.announcedMax = maxCmdSn >>> 0;
  }

  /** Is `cmdSn` inside [ExpCmdSN, MaxCmdSN]? */
  inWindow(cmdSn: number): boolean {
    return serialLe(this.expCmdSn, cmdSn) && serialLe(cmdSn, this.announcedMax);
  }

  /**
   * Deliver a command in CmdSN order (§4.2.2.1). Immediate commands run at once; others run when
   * their CmdSN is next, wait if ahead within the window, and are dropped silently when outside it.
   * Returns false when the command was dropped.
   */
  order(cmdSn: number, immediate: boolean, run: () => void): boolean {
    if (this.closed) return false;
    if (immediate) {
      run();
      return true;
    }
    if (cmdSn === this.expCmdSn) {
      this.expCmdSn = serialAdd(this.expCmdSn, 1);
      run();
      this.drain();
      return true;
    }
    if (this.inWindow(cmdSn) && !this.pending.has(cmdSn)) {
      this.pending.set(cmdSn, run);
      return true;
    }
    return false;
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    try {
      for (let run = this.pending.get(this.expCmdSn); run; run = this.pending.get(this.expCmdSn)) {
        this.pending.delete(this.expCmdSn);
        this.expCmdSn = serialAdd(this.expCmdSn, 1);
        run();
      }
    } finally {
      this.draining = false;
    }
  }

  /** Tasks still active on the nexus for this session (for leak checks). */
  activeTasks(): number {
    return this.tasks.size;
  }

  /** Abort every task silently (session end, reinstatement) and drop queued commands. */
  abortAllTasks(): void {
    this.pending.clear();
    for (const t of this.tasks.values()) t.abort();
    this.tasks.clear();
  }
}
