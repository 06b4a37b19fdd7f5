/**
 * Persistent reservations and RESERVE/RELEASE for the SCSI core (SPC-4 5.12, SPC-2 5.5).
 *
 * Contract notes for the core (beyond the shapes below):
 * - Build `PrInitiator.key` with `prNexusKey(initiator, targetPortName)`.
 * - Call `checkConflict` for every command addressed to the logical unit (it also learns which I_T
 *   nexuses exist, so unit attentions reach nexuses that registered through ALL_TG_PT or SPEC_I_PT).
 *   It returns false for PERSISTENT RESERVE OUT, RESERVE and RELEASE unless a RESERVE(6/10) is in force:
 *   their handlers decide (and may answer `{ kind: 'conflict' }`).
 * - Call `onNexusLoss` when an I_T nexus ends, `onLogicalUnitReset` on LOGICAL UNIT RESET / TARGET RESET.
 * - PR IN data is returned whole; truncate to the ALLOCATION LENGTH.
 * - `abortTasks` effects (PREEMPT AND ABORT) never name the sender's nexus; the core aborts the named
 *   nexuses' tasks for this LU as SAM-5 prescribes (with COMMANDS CLEARED BY ANOTHER INITIATOR when TAS=0).
 * - `persistentReserveOut` resolves, never rejects; persistence failures come back as HARDWARE ERROR.
 * - Extra `open` options: `resolveTargetPort` (REGISTER AND MOVE), `description` (for messages).
 */
export {
  ReservationManager,
  prNexusKey,
  type PrInitiator,
  type PrOutcome,
  type PrEffect,
  type ReservationManagerOptions,
  type ReservationStatus,
} from './manager.js';
export { PrType, PrInServiceAction, PrOutServiceAction, ProtocolId } from './constants.js';
export { classifyCommand, type AccessClass } from './conflict.js';
export { parseTransportId, buildTransportId, type PortIdentity } from './transport-id.js';
