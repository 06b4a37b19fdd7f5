/**
 * What the core needs from a logical unit's reservation manager (src/vscsi/pr/). Declared here
 * structurally so the dispatcher does not depend on the PR module's internals; `ReservationManager`
 * from `./pr/index.js` satisfies it.
 */
import type { InitiatorPortId } from './fabric.js';
import type { Logger } from 'pino';
import type { ReasonName, ScsiFailure } from './sense.js';

export interface PrInitiator {
  /** Unique I_T nexus id, see `prNexusKey`. */
  key: string;
  initiator: InitiatorPortId;
  relativeTargetPortId: number;
  targetPortName: string;
}

export type PrEffect =
  | { kind: 'unitAttention'; nexusKeys: string[]; reason: ReasonName }
  | { kind: 'abortTasks'; nexusKeys: string[] };

export type PrOutcome =
  | { kind: 'good'; data?: Buffer; effects: PrEffect[] }
  | { kind: 'conflict' }
  | { kind: 'check'; failure: ScsiFailure };

export interface ReservationPort {
  checkConflict(initiator: PrInitiator, cdb: Buffer): boolean;
  persistentReserveIn(initiator: PrInitiator, cdb: Buffer): PrOutcome;
  persistentReserveOut(initiator: PrInitiator, cdb: Buffer, params: Buffer): Promise<PrOutcome>;
  reserve(initiator: PrInitiator, cdb: Buffer): PrOutcome;
  release(initiator: PrInitiator, cdb: Buffer): PrOutcome;
  onNexusLoss(initiator: PrInitiator): void;
  onLogicalUnitReset(): void;
  /** A nexus that sees the LU opened: reservation unit attentions can reach it before its first command. */
  attachNexus?(initiator: PrInitiator): void;
  /** Operator action: drop all registrations and reservations; returns the effects to apply. */
  adminClear?(): Promise<PrEffect[]>;
}

export type ReservationFactory = (opts: {
  aptplPath?: string;
  logger?: Logger;
  /** REGISTER AND MOVE: target port name for a relative target port id of this LU. */
  resolveTargetPort?: (relativeTargetPortId: number) => string | undefined;
  description?: string;
}) => Promise<ReservationPort>;

/** I_T nexus key, built exactly as the reservation module compares nexuses. */
export { prNexusKey } from './pr/index.js';
