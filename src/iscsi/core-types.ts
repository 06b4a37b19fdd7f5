/**
 * The parts of the SCSI core (src/vscsi/core.ts) the iSCSI fabric uses, gathered in one place.
 */
export { ScsiCore, ScsiTarget, LunMap, type TargetPort, decodeSamLun } from '../vscsi/core.js';
