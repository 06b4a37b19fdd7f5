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
 * - Extra methods: `attachNexus` (announce a nexus before its first command), `adminClear` (operator
 *   clears stale reservations; apply the returned effects like PR OUT ones), `status` (read-only view).
 *
 * Modelling choices worth knowing:
 * - An ALL_TG_PT registration is one record covering the initiator port at every target port (ports
 *   added later included); READ KEYS lists its key once and READ FULL STATUS reports it once with
 *   ALL_TG_PT set. Every I_T nexus it covers is the holder when it holds the reservation.
 * - An iSCSI TransportID of format 00b (name only, via SPEC_I_PT) registers every port of that device.
 * - SPEC_I_PT without ALL_TG_PT and REGISTER AND MOVE accept only TransportIDs of the sender's protocol.
 * - REPLACE LOST RESERVATION is not supported (RLR_C = 0): INVALID FIELD IN CDB.
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
