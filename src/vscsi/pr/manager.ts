/**
 * ReservationManager: persistent reservations (SPC-4 5.12) and RESERVE/RELEASE reservations (SPC-2 5.5)
 * of one logical unit. Synchronous decisions; PERSISTENT RESERVE OUT is serialised and, while APTPL is
 * active, the new state is on stable storage before the command completes and before anyone sees it.
 */
import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import type { InitiatorPortId } from '../fabric.js';
import { failure, invalidCdbField, type ScsiFailure } from '../sense.js';
import { classifyCommand, persistentConflict, spc2Allowed } from './conflict.js';
import { isAllRegistrants, isRegistrantsOnly, Opcode, PrInServiceAction } from './constants.js';
import { nodePersistFs, readFileIfExists, removeFileDurably, writeFileAtomic, type PersistFs } from './persist.js';
import { buildReadFullStatus, buildReadKeys, buildReadReservation, buildReportCapabilities } from './prin.js';
import { executeProut, type AbstractEffect } from './prout.js';
import {
  cloneState,
  deserialiseState,
  emptyState,
  findRegistration,
  isHolder,
  registrationCovers,
  serialiseState,
  type NexusView,
  type PrState,
  type Registration,
} from './state.js';
import { identityOf } from './transport-id.js';
import type { PrEffect, PrInitiator, PrOutcome } from '../reservation-port.js';

// The contract types live with the core's side of the contract; the manager implements it.
export type { PrEffect, PrInitiator, PrOutcome } from '../reservation-port.js';

/**
 * The key of an I_T nexus: initiator port (normalised as reservations compare it: iSCSI names are
 * case-insensitive, ISIDs compared as numbers) at a target port.
 */
export function prNexusKey(initiator: InitiatorPortId, targetPortName: string): string {
  const id = identityOf(initiator);
  return JSON.stringify([id.protocolId, id.name, id.portSuffix, targetPortName]);
}

export interface ReservationManagerOptions {
  /** APTPL state file; without it APTPL is not supported (PTPL_C = 0) and APTPL=1 is refused. */
  aptplPath?: string;
  logger?: Logger;
  /**
   * Target port name for a RELATIVE TARGET PORT IDENTIFIER of this logical unit (REGISTER AND MOVE).
   * Without it, only target ports that have already sent a command to this logical unit are known.
   */
  resolveTargetPort?: (relativeTargetPortId: number) => string | undefined;
  /** What to call this logical unit in messages, e.g. `iqn.2025-01.org.vtgt:disk0 LUN 0`. */
  description?: string;
  /** File operations (tests inject failures). */
  fs?: PersistFs;
}

/** Read-only view for management tools and metrics; JSON-safe (keys as `0x` + 16 hex digits). */
export interface ReservationStatus {
  generation: number;
  aptpl: boolean;
  spc2Reserved: boolean;
  registrations: { key: string; protocolId: number; initiator: string; port: string | null; allTargetPorts: boolean; targetPort: string }[];
  /** `typeName` as SPC-4 names it, e.g. "Write Exclusive - Registrants Only"; holderKey null for all-registrants types. */
  reservation: { type: number; typeName: string; holderKey: string | null } | null;
}

const TYPE_NAMES: Record<number, string> = {
  1: 'Write Exclusive',
  3: 'Exclusive Access',
  5: 'Write Exclusive - Registrants Only',
  6: 'Exclusive Access - Registrants Only',
  7: 'Write Exclusive - All Registrants',
  8: 'Exclusive Access - All Registrants',
};
const keyText = (k: bigint): string => '0x' + k.toString(16).padStart(16, '0');

const okEmpty = (data?: Buffer): PrOutcome => (data ? { kind: 'good', data, effects: [] } : { kind: 'good', effects: [] });
const check = (f: ScsiFailure): PrOutcome => ({ kind: 'check', failure: f });

export class ReservationManager {
  private state: PrState;
  /** Per-nexus registration lookups for the per-command conflict check; valid for `state` only. */
  private readonly regCache = new Map<string, Registration | null>();
  /** Nexus key of the RESERVE(6/10) holder. */
  private spc2Holder: string | undefined;
  /** I_T nexuses seen on this logical unit, for addressing unit attentions and aborts. */
  private readonly nexuses = new Map<string, NexusView>();
  private outQueue: Promise<unknown> = Promise.resolve();
  private readonly aptplPath: string | undefined;
  private readonly logger: Logger | undefined;
  private readonly resolvePort: ((rtpi: number) => string | undefined) | undefined;
  private readonly description: string;
  private readonly fs: PersistFs;

  private constructor(opts: ReservationManagerOptions, state: PrState) {
    this.state = state;
    this.aptplPath = opts.aptplPath;
    this.logger = opts.logger;
    this.resolvePort = opts.resolveTargetPort;
    this.description = opts.description ?? 'logical unit';
    this.fs = opts.fs ?? nodePersistFs;
  }

  /** Create the manager, restoring APTPL state from `aptplPath` when the file exists. */
  static async open(opts: ReservationManagerOptions = {}): Promise<ReservationManager> {
    let state = emptyState();
    if (opts.aptplPath) {
      const text = await readFileIfExists(opts.aptplPath, opts.fs ?? nodePersistFs);
      if (text !== undefined) {
        const parsed = deserialiseState(text);
        if (typeof parsed === 'string') {
          throw new Error(
            `persistent reservation state ${opts.aptplPath} for ${opts.description ?? 'logical unit'} is unusable: ${parsed}. ` +
              'Repair or move the file away (the reservations it held are then lost) and start again.',
          );
        }
        state = parsed;
        // A file only exists while APTPL is active; restore that even if an older writer left it clear.
        state.aptpl = true;
        opts.logger?.info(
          { file: opts.aptplPath, registrations: state.registrations.length, reserved: state.reservation !== null },
          'restored persistent reservations',
        );
      }
    }
    return new ReservationManager(opts, state);
  }

  /** True when the command must complete with RESERVATION CONFLICT (SPC-4 5.12.1, SPC-2 5.5.1). */
  checkConflict(initiator: PrInitiator, cdb: Buffer): boolean {
    const view = this.view(initiator);
    if (cdb.length === 0) return false;
    const op = cdb[0]!;
    if (this.spc2Holder !== undefined) {
      // SPC-2 5.5.1: with a RESERVE in force, PERSISTENT RESERVE IN/OUT conflict whoever sends them.
      if (op === Opcode.PERSISTENT_RESERVE_IN || op === Opcode.PERSISTENT_RESERVE_OUT) return true;
      if (this.spc2Holder !== view.key && !spc2Allowed(cdb)) return true;
    }
    const res = this.state.reservation;
    if (!res) return false;
    const reg = this.registrationOf(view);
    if (isHolder(this.state, reg)) return false;
    return persistentConflict(classifyCommand(cdb), res.type, reg !== undefined);
  }

  /** PERSISTENT RESERVE IN (SPC-4 6.16). The data is whole; the core applies the allocation length. */
  persistentReserveIn(initiator: PrInitiator, cdb: Buffer): PrOutcome {
    this.view(initiator);
    if (cdb.length < 10) return check(invalidCdbField(0));
    if (cdb[1]! & 0xe0) return check(invalidCdbField(1, 7));
    const sa = cdb[1]! & 0x1f;
    if (sa > PrInServiceAction.READ_FULL_STATUS) return check(invalidCdbField(1, 4));
    for (let i = 2; i <= 6; i++) if (cdb[i] !== 0) return check(invalidCdbField(i));
    if (this.spc2Holder !== undefined) return { kind: 'conflict' };
    switch (sa) {
      case PrInServiceAction.READ_KEYS:
        return okEmpty(buildReadKeys(this.state));
      case PrInServiceAction.READ_RESERVATION:
        return okEmpty(buildReadReservation(this.state));
      case PrInServiceAction.REPORT_CAPABILITIES:
        return okEmpty(buildReportCapabilities({ ptplCapable: this.aptplPath !== undefined, ptplActive: this.state.aptpl }));
      default:
        return okEmpty(buildReadFullStatus(this.state));
    }
  }

  /** PERSISTENT RESERVE OUT (SPC-4 6.17) with its parameter list, exactly as the initiator sent it. */
  persistentReserveOut(initiator: PrInitiator, cdb: Buffer, params: Buffer): Promise<PrOutcome> {
    // Copy once: the initiator's buffers may be reused while we wait our turn.
    const cdbCopy = Buffer.from(cdb);
    const paramsCopy = Buffer.from(params);
    const run = this.outQueue.then(() => this.runOut(initiator, cdbCopy, paramsCopy));
    this.outQueue = run.catch(() => undefined);
    return run;
  }

  private async runOut(initiator: PrInitiator, cdb: Buffer, params: Buffer): Promise<PrOutcome> {
    try {
      return await this.runOutUnguarded(initiator, cdb, params);
    } catch (e) {
      // A programming fault must not take the logical unit down; the state stays as it was.
      this.logger?.error({ err: e, lu: this.description }, 'persistent reserve out failed unexpectedly');
      return check(failure('INTERNAL_TARGET_FAILURE'));
    }
  }

  private async runOutUnguarded(initiator: PrInitiator, cdb: Buffer, params: Buffer): Promise<PrOutcome> {
    const view = this.view(initiator);
    if (this.spc2Holder !== undefined) return { kind: 'conflict' };
    const before = this.state;
    const next = cloneState(before);
    const step = executeProut(next, view, cdb, params, {
      aptplSupported: this.aptplPath !== undefined,
      resolveTargetPort: (rtpi) => this.resolveTargetPort(rtpi),
    });
    if (step.kind !== 'good') {
      if (step.kind === 'conflict') {
        this.logger?.debug({ initiator: initiator.initiator.name, sa: cdb[1]! & 0x1f }, 'persistent reserve out: reservation conflict');
      }
      return step;
    }
    if (!step.changed) return okEmpty();
    if (this.aptplPath !== undefined && (next.aptpl || before.aptpl)) {
      try {
        if (next.aptpl) await writeFileAtomic(this.aptplPath, serialiseState(next), this.fs);
        else await removeFileDurably(this.aptplPath, this.fs);
      } catch (e) {
        this.logger?.error(
          { err: e, file: this.aptplPath, lu: this.description },
          'cannot save persistent reservations; the command fails and the previous state stays in force. Check the disk holding the file.',
        );
        return check(failure('INTERNAL_TARGET_FAILURE'));
      }
    }
    this.publish(next);
    this.logger?.debug(
      { initiator: initiator.initiator.name, sa: cdb[1]! & 0x1f, generation: next.generation, registrations: next.registrations.length },
      'persistent reservation changed',
    );
    return { kind: 'good', effects: this.addressEffects(step.effects, view.key) };
  }

  /** RESERVE(6) / RESERVE(10) (SPC-2 7.21, 7.22). Third-party and extent reservations are not supported. */
  reserve(initiator: PrInitiator, cdb: Buffer): PrOutcome {
    const view = this.view(initiator);
    const bad = this.validateReserveReleaseCdb(cdb);
    if (bad) return check(bad);
    const exception = this.spc2Exception(view);
    if (exception) return exception;
    if (this.spc2Holder !== undefined && this.spc2Holder !== view.key) return { kind: 'conflict' };
    this.spc2Holder = view.key;
    return okEmpty();
  }

  /** RELEASE(6) / RELEASE(10): only the holder releases; from anyone else it is GOOD without effect. */
  release(initiator: PrInitiator, cdb: Buffer): PrOutcome {
    const view = this.view(initiator);
    const bad = this.validateReserveReleaseCdb(cdb);
    if (bad) return check(bad);
    const exception = this.spc2Exception(view);
    if (exception) return exception;
    if (this.spc2Holder === view.key) this.spc2Holder = undefined;
    return okEmpty();
  }

  /** The I_T nexus is gone (logout, connection loss, I_T NEXUS RESET): its RESERVE(6/10) goes with it. */
  onNexusLoss(initiator: PrInitiator): void {
    if (this.spc2Holder === initiator.key) this.spc2Holder = undefined;
    this.nexuses.delete(initiator.key);
    this.regCache.delete(initiator.key);
  }

  /** LOGICAL UNIT RESET (and so TARGET RESET) releases RESERVE(6/10); persistent reservations stay. */
  onLogicalUnitReset(): void {
    this.spc2Holder = undefined;
  }

  /**
   * An I_T nexus that can reach this logical unit now exists (optional: `checkConflict` also learns
   * nexuses). Knowing it early lets unit attentions reach it before its first command here.
   */
  attachNexus(initiator: PrInitiator): void {
    this.view(initiator);
  }

  /**
   * Operator action: drop every registration, the persistent reservation and any RESERVE(6/10),
   * as CLEAR would (RESERVATIONS PREEMPTED to the registrants we know). Persisted when APTPL is active.
   * Rejects, leaving the state as it was, when the state file cannot be updated.
   */
  adminClear(): Promise<PrEffect[]> {
    const run = this.outQueue.then(async () => {
      const before = this.state;
      const next = cloneState(before);
      next.registrations = [];
      next.reservation = null;
      if (before.registrations.length > 0 || before.reservation) next.generation = (next.generation + 1) >>> 0;
      if (this.aptplPath !== undefined && next.aptpl) await writeFileAtomic(this.aptplPath, serialiseState(next), this.fs);
      this.publish(next);
      this.spc2Holder = undefined;
      this.logger?.warn({ lu: this.description, registrations: before.registrations.length }, 'persistent reservations cleared by the operator');
      const keys = this.nexusesOf(before.registrations);
      return keys.length > 0 ? [{ kind: 'unitAttention', nexusKeys: keys, reason: 'RESERVATIONS_PREEMPTED' } as PrEffect] : [];
    });
    this.outQueue = run.catch(() => undefined);
    return run;
  }

  /** Current state, for management tools. */
  status(): ReservationStatus {
    const s = this.state;
    const holder = s.reservation?.holderId == null ? undefined : s.registrations.find((r) => r.id === s.reservation!.holderId);
    return {
      generation: s.generation,
      aptpl: s.aptpl,
      spc2Reserved: this.spc2Holder !== undefined,
      registrations: s.registrations.map((r) => ({
        key: keyText(r.key),
        protocolId: r.identity.protocolId,
        initiator: r.identity.name,
        port: r.identity.portSuffix,
        allTargetPorts: r.allTgPt,
        targetPort: r.targetPortName,
      })),
      reservation: s.reservation
        ? { type: s.reservation.type, typeName: TYPE_NAMES[s.reservation.type] ?? 'unknown', holderKey: holder ? keyText(holder.key) : null }
        : null,
    };
  }

  // -------------------------------------------------------------------------------------------

  private publish(next: PrState): void {
    this.state = next;
    this.regCache.clear();
  }

  private registrationOf(view: NexusView): Registration | undefined {
    let r = this.regCache.get(view.key);
    if (r === undefined) {
      r = findRegistration(this.state, view) ?? null;
      this.regCache.set(view.key, r);
    }
    return r ?? undefined;
  }

  private view(initiator: PrInitiator): NexusView {
    let v = this.nexuses.get(initiator.key);
    if (!v) {
      v = {
        key: initiator.key,
        identity: identityOf(initiator.initiator),
        targetPortName: initiator.targetPortName,
        relativeTargetPortId: initiator.relativeTargetPortId,
        transportId: initiator.initiator.transportId,
      };
      this.nexuses.set(initiator.key, v);
    }
    return v;
  }

  private resolveTargetPort(rtpi: number): string | undefined {
    const named = this.resolvePort?.(rtpi);
    if (named !== undefined) return named;
    for (const v of this.nexuses.values()) if (v.relativeTargetPortId === rtpi) return v.targetPortName;
    return undefined;
  }

  private validateReserveReleaseCdb(cdb: Buffer): ScsiFailure | undefined {
    const ten = cdb[0] === Opcode.RESERVE_10 || cdb[0] === Opcode.RELEASE_10;
    if (cdb.length < (ten ? 10 : 6)) return invalidCdbField(0);
    const b1 = cdb[1]!;
    if (b1 & 0x10) return invalidCdbField(1, 4); // 3RDPTY: third-party reservations are not supported
    if (ten && b1 & 0x02) return invalidCdbField(1, 1); // LONGID only means something with 3RDPTY
    if (b1 & 0x01) return invalidCdbField(1, 0); // extent reservations (obsolete) are not supported
    return undefined;
  }

  /**
   * SPC-4 5.12.3: while persistent reservation registrations exist, RESERVE and RELEASE are GOOD without
   * effect from a holder (or any registrant of a registrants-only / all-registrants reservation), and
   * conflict from everyone else.
   */
  private spc2Exception(view: NexusView): PrOutcome | undefined {
    if (this.state.registrations.length === 0) return undefined;
    const reg = findRegistration(this.state, view);
    const res = this.state.reservation;
    if (reg && res && (isHolder(this.state, reg) || isRegistrantsOnly(res.type) || isAllRegistrants(res.type))) return okEmpty();
    return { kind: 'conflict' };
  }

  /** Turn effects on registrations into effects on the I_T nexuses we know, never the sender's. */
  private addressEffects(effects: AbstractEffect[], senderKey: string): PrEffect[] {
    const out: PrEffect[] = [];
    for (const e of effects) {
      const nexusKeys = this.nexusesOf(e.registrations).filter((k) => k !== senderKey);
      if (nexusKeys.length === 0) continue;
      out.push(e.kind === 'unitAttention' ? { kind: 'unitAttention', nexusKeys, reason: e.reason } : { kind: 'abortTasks', nexusKeys });
    }
    return out;
  }

  private nexusesOf(regs: Registration[]): string[] {
    const keys: string[] = [];
    for (const v of this.nexuses.values()) if (regs.some((r) => registrationCovers(r, v))) keys.push(v.key);
    return keys;
  }
}
