/**
 * The SCSI target core: logical units, targets, and the nexuses fabrics open on target ports.
 * This is the object a service builds from configuration and every fabric talks to.
 */
import type { Logger } from 'pino';
import type { InitiatorPortId, Nexus } from './fabric.js';
import { LogicalUnit, type LogicalUnitOptions } from './logical-unit.js';
import type { LunMap } from './lun-map.js';
import { NexusImpl, type ActiveCommand, type NexusOwner, type NexusProfile } from './nexus.js';
export type { NexusProfile } from './nexus.js';
import type { ReservationFactory } from './reservation-port.js';
import { ReservationManager } from './pr/index.js';
import { AtomicWriteJournal } from './atomic-journal.js';
import type { ReasonName } from './sense.js';
import { cloneLuStats, type CoreStats } from './stats.js';
import { AluaState, ScsiTarget, type TargetPort } from './target.js';
import { applyPrEffects } from './reservations.js';

export { LogicalUnit } from './logical-unit.js';
export { LunMap } from './lun-map.js';
export { ScsiTarget, AluaState, type TargetPort, type TargetPortGroup } from './target.js';
export type { CoreStats, LuStats } from './stats.js';
export { decodeSamLun, encodeSamLun, INVALID_LUN } from './lun-address.js';

export interface ScsiCoreOptions {
  logger?: Logger;
  /** INQUIRY T10 VENDOR IDENTIFICATION default (8 ASCII chars). */
  vendor?: string;
  /** INQUIRY PRODUCT IDENTIFICATION default (16 ASCII chars). */
  product?: string;
  /**
   * Persistent reservations + RESERVE/RELEASE.
   * Opens the reservation manager of each LU; defaults to `ReservationManager.open` from ./pr/.
   * `false` disables reservations: PERSISTENT RESERVE and RESERVE/RELEASE are then unsupported opcodes.
   */
  reservations?: ReservationFactory | false;
  /** How long `removeLogicalUnit` lets accepted commands finish before aborting them (ms). */
  drainTimeoutMs?: number;
  /**
   * Slot 0 is incremented for every command submitted on any nexus; slot 1 holds the commands in
   * flight (accepted and not yet completed or aborted). The service shares it with the event-loop
   * poller, which polls while commands are in flight or requests arrive one per wake-up
   * (`native/src/busy_poll.cc`).
   */
  commandCounter?: Float64Array;
}

/** Default bound on draining a removed LU: below the 30-60 s SCSI timeouts initiators use. */
export const LU_DRAIN_TIMEOUT_MS = 25_000;

/** true when every promise settled within `ms`, false on timeout (the promises keep running). */
async function settledWithin(promises: Promise<void>[], ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  try {
    return await Promise.race([Promise.all(promises).then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What `addLogicalUnit` takes: the LU's options, documented where the LU uses them. */
export type AddLogicalUnitOptions = LogicalUnitOptions;

export class ScsiCore implements NexusOwner {
  readonly vendor: string;
  readonly product: string;
  private readonly units = new Map<string, LogicalUnit>();
  private readonly targets = new Map<string, ScsiTarget>();
  private readonly nexusSet = new Set<NexusImpl>();
  private readonly logger: Logger | undefined;
  private readonly reservationFactory: ReservationFactory | undefined;
  private readonly drainTimeoutMs: number;
  readonly commandCounter: Float64Array | undefined;

  constructor(opts: ScsiCoreOptions = {}) {
    this.logger = opts.logger;
    this.drainTimeoutMs = opts.drainTimeoutMs ?? LU_DRAIN_TIMEOUT_MS;
    if (!Number.isFinite(this.drainTimeoutMs) || this.drainTimeoutMs < 0) {
      throw new Error(`drainTimeoutMs must be a non-negative number of milliseconds, got ${opts.drainTimeoutMs}`);
    }
    this.commandCounter = opts.commandCounter;
    this.vendor = opts.vendor ?? 'VTGT';
    this.product = opts.product ?? 'VIRTUAL-DISK';
    this.reservationFactory =
      opts.reservations === false ? undefined : (opts.reservations ?? ((o) => ReservationManager.open(o)));
  }

  // ---- logical units ---------------------------------------------------------------------------

  addLogicalUnit(opts: AddLogicalUnitOptions): LogicalUnit {
    if (this.units.has(opts.id)) throw new Error(`logical unit ${opts.id} already exists; remove it first or pick another id`);
    const luOpts: LogicalUnitOptions = { ...opts };
    const lu = new LogicalUnit(luOpts, { vendor: this.vendor, product: this.product }, this.logger?.child({ lu: opts.id }));
    const opening: Promise<void>[] = [];
    if (this.reservationFactory) {
      const factory = this.reservationFactory;
      opening.push(
        factory({
          ...(opts.prStatePath ? { aptplPath: opts.prStatePath } : {}),
          ...(this.logger ? { logger: this.logger } : {}),
          resolveTargetPort: (rtpi) => this.portNameFor(lu, rtpi),
          description: `logical unit ${opts.id}`,
        })
          .then((r) => {
            lu.reservations = r;
          })
          .catch((err: unknown) => {
            // Serving without the restored reservations could let a fenced initiator write: stay not ready.
            lu.fault = 'LU_NOT_READY_MANUAL_INTERVENTION_REQUIRED';
            this.logger?.error(
              { err, lu: opts.id, path: opts.prStatePath },
              'cannot restore persistent reservations; the LU reports NOT READY until the state file is fixed and the LU re-added',
            );
          }),
      );
    }
    if (opts.atomicJournalPath) {
      opening.push(
        AtomicWriteJournal.open({
          path: opts.atomicJournalPath,
          backstore: opts.backstore,
          capacity: lu.maxAtomicBlocks * lu.blockSize,
          lu: opts.id,
          ...(this.logger ? { logger: this.logger } : {}),
        })
          .then((j) => {
            if (lu.removed) void j.close();
            else lu.atomicJournal = j;
          })
          .catch((err: unknown) => {
            // An interrupted atomic write that cannot be replayed may have left its range torn.
            lu.fault = 'LU_NOT_READY_MANUAL_INTERVENTION_REQUIRED';
            this.logger?.error(
              { err, lu: opts.id, path: opts.atomicJournalPath },
              'cannot open or replay the atomic write journal; the LU reports NOT READY until it is fixed and the LU re-added',
            );
          }),
      );
    }
    if (opening.length > 0) {
      lu.isReady = false;
      // Both openers catch their own errors (they set lu.fault), so this never rejects.
      lu.ready = Promise.all(opening).then(() => {
        lu.isReady = true;
      });
    }
    this.units.set(opts.id, lu);
    return lu;
  }

  /** Target port with that relative id on a target whose nexuses see `lu` (REGISTER AND MOVE). */
  private portNameFor(lu: LogicalUnit, relativeId: number): string | undefined {
    for (const t of this.targets.values()) {
      const sees = t.luns.lunsOf(lu).length > 0 || t.nexuses().some((n) => (n as NexusImpl).lunMap.lunsOf(lu).length > 0);
      if (!sees) continue;
      const p = t.ports().find((x) => x.relativeId === relativeId);
      if (p) return p.name;
    }
    return undefined;
  }

  getLogicalUnit(id: string): LogicalUnit | undefined {
    return this.units.get(id);
  }

  logicalUnits(): LogicalUnit[] {
    return [...this.units.values()];
  }

  /**
   * Take the LU out of service without failing the commands it already accepted: from now on it
   * answers nowhere (new commands → LOGICAL UNIT NOT SUPPORTED, gone from REPORT LUNS, REPORTED LUNS
   * DATA HAS CHANGED on every nexus that saw it); commands already accepted run to their normal
   * completion. Only what is still running after `drainTimeoutMs` (default `LU_DRAIN_TIMEOUT_MS`) is
   * aborted with TASK ABORTED, because an initiator given no status at all waits for its own SCSI
   * timeout. Resolves when no command can touch the backstore any more; the backstore is not closed.
   */
  async removeLogicalUnit(id: string, opts: { drainTimeoutMs?: number } = {}): Promise<void> {
    const lu = this.units.get(id);
    if (!lu) return;
    lu.removed = true;
    this.units.delete(id);
    const inFlight: Array<{ nexus: NexusImpl; cmd: ActiveCommand }> = [];
    for (const n of this.nexusSet) for (const cmd of n.commandsFor(lu)) inFlight.push({ nexus: n, cmd });
    const maps = new Set<LunMap>();
    for (const t of this.targets.values()) maps.add(t.luns);
    for (const n of this.nexusSet) maps.add(n.lunMap);
    for (const m of maps) m.deleteUnit(lu);
    try {
      await this.drain(lu, id, inFlight, opts.drainTimeoutMs ?? this.drainTimeoutMs);
      // A background SANITIZE stops at its next chunk once it sees the LU removed.
      if (lu.sanitize) await settledWithin([lu.sanitize.done], opts.drainTimeoutMs ?? this.drainTimeoutMs);
    } finally {
      const journal = lu.atomicJournal;
      lu.atomicJournal = undefined;
      if (journal) {
        const closing = journal.close().catch((err: unknown) => this.logger?.warn({ err, lu: id }, 'closing the atomic write journal failed'));
        await settledWithin([closing], opts.drainTimeoutMs ?? this.drainTimeoutMs);
      }
    }
  }

  private async drain(
    lu: LogicalUnit,
    id: string,
    inFlight: Array<{ nexus: NexusImpl; cmd: ActiveCommand }>,
    timeoutMs: number,
  ): Promise<void> {
    if (inFlight.length === 0) return;
    const drained = await settledWithin(inFlight.map((x) => x.cmd.settled), timeoutMs);
    if (drained) return;
    const left = inFlight.filter((x) => x.cmd.state !== 'done');
    this.logger?.warn(
      { lu: id, commands: left.length, timeoutMs },
      'logical unit removal: commands still running after the drain timeout are aborted (TASK ABORTED)',
    );
    const aborted = await settledWithin(
      left.map((x) => x.nexus.abortCommand(x.cmd, 'taskAborted')),
      timeoutMs,
    );
    if (!aborted) {
      this.logger?.error(
        { lu: id, backstore: lu.backstore.describe },
        'logical unit removal: backstore I/O did not finish; closing the backstore now may fail those requests',
      );
    }
  }

  /**
   * Operator action: clear every persistent reservation, registration and RESERVE(6/10) of the LU,
   * raising RESERVATIONS PREEMPTED on the registrants' nexuses. For stale reservations left by a dead
   * cluster node; an initiator would use PERSISTENT RESERVE OUT CLEAR instead.
   */
  async clearReservations(luId: string): Promise<void> {
    const lu = this.units.get(luId);
    if (!lu) throw new Error(`logical unit ${luId} does not exist`);
    await lu.ready;
    const r = lu.reservations;
    if (!r?.adminClear) throw new Error(`logical unit ${luId} has no reservation manager (reservations disabled or not restored)`);
    const effects = await r.adminClear();
    await applyPrEffects(this, lu, effects);
    this.logger?.info({ lu: luId }, 'reservations cleared by the operator');
  }

  /**
   * The backstore changed size: raise CAPACITY DATA HAS CHANGED (SBC-3, capacity change) on every nexus that sees
   * the LU. Call after `backstore.refreshSize()`.
   */
  capacityChanged(lu: LogicalUnit): void {
    const now = lu.capacityBlocks();
    if (now === lu.reportedBlocks) return;
    lu.reportedBlocks = now;
    this.unitAttention(lu, 'CAPACITY_DATA_HAS_CHANGED');
  }

  /**
   * Change the asymmetric access state of a target port group (SPC-4 5.16, implicit ALUA) and raise
   * ASYMMETRIC ACCESS STATE CHANGED on every nexus of the target so multipath initiators re-read RTPG.
   */
  setPortGroupState(target: ScsiTarget, groupId: number, state: AluaState, preferred?: boolean): void {
    const group = target.portGroups.find((g) => g.id === groupId);
    if (!group) throw new Error(`target ${target.name} has no target port group ${groupId}`);
    if (group.state === state && (preferred === undefined || group.preferred === preferred)) return;
    group.state = state;
    if (preferred !== undefined) group.preferred = preferred;
    for (const n of target.nexuses() as NexusImpl[]) {
      for (const lun of n.lunNumbers()) n.addUnitAttention(lun, 'ASYMMETRIC_ACCESS_STATE_CHANGED');
    }
  }

  // ---- targets ---------------------------------------------------------------------------------

  createTarget(opts: { name: string }): ScsiTarget {
    if (!opts.name) throw new Error('target name must be a non-empty string');
    if (this.targets.has(opts.name)) throw new Error(`target ${opts.name} already exists`);
    const t = new ScsiTarget(opts.name);
    this.targets.set(opts.name, t);
    return t;
  }

  getTarget(name: string): ScsiTarget | undefined {
    return this.targets.get(name);
  }

  targetList(): ScsiTarget[] {
    return [...this.targets.values()];
  }

  /** Close every nexus of the target (aborting their commands silently) and forget it. */
  async removeTarget(name: string): Promise<void> {
    const t = this.targets.get(name);
    if (!t) return;
    this.targets.delete(name);
    await Promise.all(t.nexuses().map((n) => n.close()));
  }

  // ---- nexuses ---------------------------------------------------------------------------------

  openNexus(opts: {
    target: ScsiTarget;
    targetPort: TargetPort;
    initiator: InitiatorPortId;
    /** Per-ACL LUN map; the target's default map when absent. */
    lunMap?: LunMap;
    profile?: NexusProfile;
  }): Nexus {
    if (opts.targetPort.target !== opts.target) {
      throw new Error(`target port ${opts.targetPort.name} does not belong to target ${opts.target.name}`);
    }
    const n = new NexusImpl(
      opts.initiator,
      opts.target,
      opts.targetPort,
      opts.lunMap ?? opts.target.luns,
      this,
      this.logger?.child({ initiator: opts.initiator.name, initiatorPort: opts.initiator.portSuffix }),
      opts.profile ?? {},
    );
    this.nexusSet.add(n);
    opts.target.attachNexus(n);
    return n;
  }

  /** @internal NexusOwner */
  closeNexus(n: NexusImpl): void {
    this.nexusSet.delete(n);
    n.target.detachNexus(n);
  }

  /** @internal NexusOwner: the nexus is gone or was reset — drop its RESERVE(6) and PREVENT state. */
  nexusLoss(n: NexusImpl): void {
    for (const [, lu] of n.lunMap.entries()) {
      lu.preventers.delete(n.id);
      lu.reservations?.onNexusLoss(n.prInitiator);
    }
  }

  nexusesOf(lu: LogicalUnit): Array<{ nexus: NexusImpl; luns: number[] }> {
    const out: Array<{ nexus: NexusImpl; luns: number[] }> = [];
    for (const n of this.nexusSet) {
      if (n.isClosed) continue;
      const luns = n.lunMap.lunsOf(lu);
      if (luns.length > 0) out.push({ nexus: n, luns });
    }
    return out;
  }

  unitAttention(lu: LogicalUnit, reason: ReasonName, except?: NexusImpl): void {
    for (const { nexus, luns } of this.nexusesOf(lu)) {
      if (nexus === except) continue;
      for (const l of luns) nexus.addUnitAttention(l, reason);
    }
  }

  stats(): CoreStats {
    const logicalUnits: CoreStats['logicalUnits'] = {};
    for (const lu of this.units.values()) logicalUnits[lu.id] = cloneLuStats(lu.stats);
    let activeCommands = 0;
    for (const n of this.nexusSet) activeCommands += n.activeCommands();
    return { logicalUnits, nexuses: this.nexusSet.size, activeCommands };
  }
}
