/**
 * Which commands a reservation lets through (SPC-4 5.12.1 table 66 "SPC commands that are allowed in the
 * presence of various reservations", SBC-3 4.17 table 13 for block commands, SPC-2 5.5.1 for
 * RESERVE(6/10) reservations). Pure functions of the CDB and the requester's standing.
 */
import { isWriteExclusive, isAllRegistrants, isRegistrantsOnly, Opcode } from './constants.js';

/** How a command fares under a persistent reservation held by someone else. */
export type AccessClass =
  /** Allowed under every reservation type (INQUIRY, REPORT LUNS, TEST UNIT READY, READ CAPACITY...). */
  | 'allowed'
  /** Reads: allowed through write-exclusive types, conflict through exclusive-access types. */
  | 'read'
  /** Writes and everything unknown: conflict unless the requester is a registrant of an RO/AR type. */
  | 'write'
  /** Decided by the service action itself (PERSISTENT RESERVE OUT, RESERVE, RELEASE). */
  | 'self';

// Operation codes named as in SPC-4 / SBC-3 (annex A lists them all).
const TEST_UNIT_READY = 0x00;
const REQUEST_SENSE = 0x03;
const READ_6 = 0x08;
const INQUIRY = 0x12;
const MODE_SENSE_6 = 0x1a;
const START_STOP_UNIT = 0x1b;
const RECEIVE_DIAGNOSTIC_RESULTS = 0x1c;
const PREVENT_ALLOW_MEDIUM_REMOVAL = 0x1e;
const READ_CAPACITY_10 = 0x25;
const READ_10 = 0x28;
const VERIFY_10 = 0x2f;
const PRE_FETCH_10 = 0x34;
const READ_DEFECT_DATA_10 = 0x37;
const READ_BUFFER_10 = 0x3c;
const READ_LONG_10 = 0x3e;
const LOG_SENSE = 0x4d;
const MODE_SENSE_10 = 0x5a;
const VARIABLE_LENGTH_CDB = 0x7f;
const ACCESS_CONTROL_IN = 0x86;
const ACCESS_CONTROL_OUT = 0x87;
const READ_16 = 0x88;
const READ_ATTRIBUTE = 0x8c;
const VERIFY_16 = 0x8f;
const PRE_FETCH_16 = 0x90;
const READ_BUFFER_16 = 0x9b;
const SERVICE_ACTION_IN_16 = 0x9e;
const REPORT_LUNS = 0xa0;
const SECURITY_PROTOCOL_IN = 0xa2;
const MAINTENANCE_IN = 0xa3;
const READ_12 = 0xa8;
const SERVICE_ACTION_IN_12 = 0xab;
const VERIFY_12 = 0xaf;
const READ_DEFECT_DATA_12 = 0xb7;

/** SERVICE ACTION IN(16) service actions (SBC-3 5.16 / 5.23). */
const SAI16_READ_CAPACITY_16 = 0x10;
/** SERVICE ACTION IN(12): READ MEDIA SERIAL NUMBER (SPC-4 6.21). */
const SAI12_READ_MEDIA_SERIAL_NUMBER = 0x01;
/** MAINTENANCE IN service actions that only report configuration (SPC-4 6.22-6.35). */
const MAINTENANCE_IN_REPORTS: ReadonlySet<number> = new Set([
  0x05, // REPORT IDENTIFYING INFORMATION
  0x0a, // REPORT TARGET PORT GROUPS
  0x0b, // REPORT ALIASES
  0x0c, // REPORT SUPPORTED OPERATION CODES
  0x0d, // REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS
  0x0e, // REPORT PRIORITY
  0x0f, // REPORT TIMESTAMP
]);
/** VARIABLE LENGTH CDB service action READ(32) (SBC-3 5.13). */
const VLC_READ_32 = 0x0009;
const VLC_VERIFY_32 = 0x000a;

const ALWAYS_ALLOWED: ReadonlySet<number> = new Set([
  TEST_UNIT_READY,
  REQUEST_SENSE,
  INQUIRY,
  READ_CAPACITY_10,
  LOG_SENSE,
  ACCESS_CONTROL_IN,
  ACCESS_CONTROL_OUT,
  REPORT_LUNS,
  Opcode.PERSISTENT_RESERVE_IN,
]);

const READ_LIKE: ReadonlySet<number> = new Set([
  READ_6,
  READ_10,
  READ_12,
  READ_16,
  VERIFY_10,
  VERIFY_12,
  VERIFY_16,
  PRE_FETCH_10,
  PRE_FETCH_16,
  READ_DEFECT_DATA_10,
  READ_DEFECT_DATA_12,
  READ_LONG_10,
  MODE_SENSE_6,
  MODE_SENSE_10,
  READ_BUFFER_10,
  READ_BUFFER_16,
  RECEIVE_DIAGNOSTIC_RESULTS,
  READ_ATTRIBUTE,
  SECURITY_PROTOCOL_IN,
]);

/** Classify a CDB for the persistent reservation tables. Unknown or short CDBs count as writes. */
export function classifyCommand(cdb: Buffer): AccessClass {
  if (cdb.length === 0) return 'write';
  const op = cdb[0]!;
  if (ALWAYS_ALLOWED.has(op)) return 'allowed';
  if (READ_LIKE.has(op)) return 'read';
  const sa = cdb.length > 1 ? cdb[1]! & 0x1f : -1;
  switch (op) {
    case Opcode.PERSISTENT_RESERVE_OUT:
    case Opcode.RESERVE_6:
    case Opcode.RESERVE_10:
    case Opcode.RELEASE_6:
    case Opcode.RELEASE_10:
      return 'self';
    case SERVICE_ACTION_IN_16:
      // READ CAPACITY(16) is allowed everywhere; GET LBA STATUS, READ LONG(16) are reads.
      return sa === SAI16_READ_CAPACITY_16 ? 'allowed' : 'read';
    case SERVICE_ACTION_IN_12:
      return sa === SAI12_READ_MEDIA_SERIAL_NUMBER ? 'allowed' : 'read';
    case MAINTENANCE_IN:
      return MAINTENANCE_IN_REPORTS.has(sa) ? 'allowed' : 'read';
    case PREVENT_ALLOW_MEDIUM_REMOVAL:
      // SBC-3 table 13: PREVENT = 0 is allowed for everyone; preventing removal is a write.
      return cdb.length > 4 && (cdb[4]! & 0x03) === 0 ? 'allowed' : 'write';
    case START_STOP_UNIT:
      // SBC-3 table 13: START = 1 with POWER CONDITION 0 is allowed; stopping or power changes are writes.
      return cdb.length > 4 && (cdb[4]! & 0x01) === 1 && (cdb[4]! & 0xf0) === 0 ? 'allowed' : 'write';
    case VARIABLE_LENGTH_CDB: {
      const vsa = cdb.length >= 10 ? cdb.readUInt16BE(8) : -1;
      return vsa === VLC_READ_32 || vsa === VLC_VERIFY_32 ? 'read' : 'write';
    }
    default:
      return 'write';
  }
}

/**
 * Conflict for a requester that is not the reservation holder (SPC-4 table 66 / SBC-3 table 13):
 * `registered` = the requester's I_T nexus is registered.
 */
export function persistentConflict(cls: AccessClass, type: number, registered: boolean): boolean {
  if (cls === 'allowed' || cls === 'self') return false;
  if ((isRegistrantsOnly(type) || isAllRegistrants(type)) && registered) return false;
  return !(cls === 'read' && isWriteExclusive(type));
}

/**
 * SPC-2 5.5.1: while another I_T nexus holds a RESERVE(6/10) reservation, only these get through
 * (RESERVE and RELEASE are decided by their own handlers: conflict and GOOD-without-effect).
 */
export function spc2Allowed(cdb: Buffer): boolean {
  if (cdb.length === 0) return false;
  switch (cdb[0]) {
    case INQUIRY:
    case REPORT_LUNS:
    case REQUEST_SENSE:
    case Opcode.RESERVE_6:
    case Opcode.RESERVE_10:
    case Opcode.RELEASE_6:
    case Opcode.RELEASE_10:
      return true;
    case PREVENT_ALLOW_MEDIUM_REMOVAL:
      return cdb.length > 4 && (cdb[4]! & 0x03) === 0;
    default:
      return false;
  }
}
