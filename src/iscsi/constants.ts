/**
 * iSCSI protocol constants, named as in RFC 7143 (section numbers in comments).
 */

/** RFC 7143 §11.2.1.2: opcodes an initiator sends. */
export const InitiatorOpcode = {
  NOP_OUT: 0x00, // §11.18
  SCSI_COMMAND: 0x01, // §11.3
  TASK_MGMT_REQUEST: 0x02, // §11.5
  LOGIN_REQUEST: 0x03, // §11.12
  TEXT_REQUEST: 0x04, // §11.10
  DATA_OUT: 0x05, // §11.7
  LOGOUT_REQUEST: 0x06, // §11.14
  SNACK_REQUEST: 0x10, // §11.16
} as const;

/** RFC 7143 §11.2.1.2: opcodes a target sends. */
export const TargetOpcode = {
  NOP_IN: 0x20, // §11.19
  SCSI_RESPONSE: 0x21, // §11.4
  TASK_MGMT_RESPONSE: 0x22, // §11.6
  LOGIN_RESPONSE: 0x23, // §11.13
  TEXT_RESPONSE: 0x24, // §11.11
  DATA_IN: 0x25, // §11.7
  LOGOUT_RESPONSE: 0x26, // §11.15
  R2T: 0x31, // §11.8
  ASYNC_MESSAGE: 0x32, // §11.9
  REJECT: 0x3f, // §11.17
} as const;

/** RFC 7143 §11.2: Basic Header Segment length. */
export const BHS_LENGTH = 48;
/** RFC 7143 §11.2.1: reserved tag value ("no task" / "no transfer"). */
export const RESERVED_TAG = 0xffffffff;
/** RFC 7143 §11.2.1.1: immediate delivery bit in byte 0. */
export const IMMEDIATE_BIT = 0x40;
/** Final bit in byte 1 of most PDUs. */
export const FINAL_BIT = 0x80;
/** RFC 7143 §11.2.1.5: the data segment length field is 24 bits. */
export const MAX_DATA_SEGMENT_LENGTH = 0xffffff;

/** RFC 7143 §11.17.1: Reject reasons. */
export const RejectReason = {
  DATA_DIGEST_ERROR: 0x02,
  SNACK_REJECT: 0x03,
  PROTOCOL_ERROR: 0x04,
  COMMAND_NOT_SUPPORTED: 0x05,
  IMMEDIATE_COMMAND_REJECT: 0x06,
  TASK_IN_PROGRESS: 0x07,
  INVALID_DATA_ACK: 0x08,
  INVALID_PDU_FIELD: 0x09,
  LONG_OPERATION_REJECT: 0x0a,
  WAITING_FOR_LOGOUT: 0x0c,
} as const;

/** RFC 7143 §11.13.5: Login response Status-Class / Status-Detail, as (class << 8) | detail. */
export const LoginStatus = {
  SUCCESS: 0x0000,
  TARGET_MOVED_TEMPORARILY: 0x0101,
  INITIATOR_ERROR: 0x0200,
  AUTHENTICATION_FAILURE: 0x0201,
  AUTHORIZATION_FAILURE: 0x0202,
  NOT_FOUND: 0x0203,
  TARGET_REMOVED: 0x0204,
  UNSUPPORTED_VERSION: 0x0205,
  TOO_MANY_CONNECTIONS: 0x0206,
  MISSING_PARAMETER: 0x0207,
  CANT_INCLUDE_IN_SESSION: 0x0208,
  SESSION_TYPE_NOT_SUPPORTED: 0x0209,
  SESSION_DOES_NOT_EXIST: 0x020a,
  INVALID_DURING_LOGIN: 0x020b,
  TARGET_ERROR: 0x0300,
  SERVICE_UNAVAILABLE: 0x0301,
  OUT_OF_RESOURCES: 0x0302,
} as const;
export type LoginStatus = (typeof LoginStatus)[keyof typeof LoginStatus];

/** RFC 7143 §11.12.3: login stages (CSG / NSG). */
export const LoginStage = {
  SECURITY_NEGOTIATION: 0,
  OPERATIONAL_NEGOTIATION: 1,
  FULL_FEATURE_PHASE: 3,
} as const;

/** RFC 7143 §11.5.1: Task Management function codes. */
export const TmfCode = {
  ABORT_TASK: 1,
  ABORT_TASK_SET: 2,
  CLEAR_ACA: 3,
  CLEAR_TASK_SET: 4,
  LOGICAL_UNIT_RESET: 5,
  TARGET_WARM_RESET: 6,
  TARGET_COLD_RESET: 7,
  TASK_REASSIGN: 8,
  QUERY_TASK: 9, // RFC 7144 §4.3
  QUERY_TASK_SET: 10,
  I_T_NEXUS_RESET: 11,
  QUERY_ASYNC_EVENT: 12,
} as const;

/** RFC 7143 §11.6.1 (and RFC 7144 §4.3.3): Task Management response codes. */
export const TmfResponseCode = {
  FUNCTION_COMPLETE: 0,
  TASK_DOES_NOT_EXIST: 1,
  LUN_DOES_NOT_EXIST: 2,
  TASK_STILL_ALLEGIANT: 3,
  TASK_REASSIGNMENT_NOT_SUPPORTED: 4,
  TMF_NOT_SUPPORTED: 5,
  AUTHORIZATION_FAILED: 6,
  FUNCTION_SUCCEEDED: 7, // RFC 7144 §4.3.3
  FUNCTION_REJECTED: 255,
} as const;

/** RFC 7143 §11.14.1: Logout reason codes. */
export const LogoutReason = {
  CLOSE_SESSION: 0,
  CLOSE_CONNECTION: 1,
  REMOVE_CONNECTION_FOR_RECOVERY: 2,
} as const;

/** RFC 7143 §11.15.1: Logout response codes. */
export const LogoutResponseCode = {
  SUCCESS: 0,
  CID_NOT_FOUND: 1,
  RECOVERY_NOT_SUPPORTED: 2,
  CLEANUP_FAILED: 3,
} as const;

/** RFC 7143 §11.9.1: AsyncEvent codes. */
export const AsyncEvent = {
  SCSI_ASYNC_EVENT: 0,
  REQUEST_LOGOUT: 1,
  DROPPING_CONNECTION: 2,
  DROPPING_ALL_CONNECTIONS: 3,
  REQUEST_NEGOTIATION: 4,
} as const;

/** RFC 7143 §11.3.1: ATTR field of a SCSI Command. */
export const IscsiTaskAttr = {
  UNTAGGED: 0,
  SIMPLE: 1,
  ORDERED: 2,
  HEAD_OF_QUEUE: 3,
  ACA: 4,
} as const;

/** RFC 7143 §11.2.2: AHS types. */
export const AhsType = {
  EXTENDED_CDB: 1,
  BIDI_READ_DATA_LENGTH: 2,
} as const;

/** SPC-4 7.6.4 PROTOCOL IDENTIFIER for iSCSI. */
export const ISCSI_PROTOCOL_ID = 0x5;
