/**
 * SCSI failures as values (ARCHITECTURE.md rule 3): handlers return a `ScsiFailure` naming a reason
 * from `Reason`; this file is the one table that turns reasons into sense bytes, in fixed (SPC-4 4.5.3)
 * or descriptor (SPC-4 4.5.2) format.
 */
import { Buffer } from 'node:buffer';

/** SPC-4 table 28, sense keys. */
export const SenseKey = {
  NO_SENSE: 0x0,
  RECOVERED_ERROR: 0x1,
  NOT_READY: 0x2,
  MEDIUM_ERROR: 0x3,
  HARDWARE_ERROR: 0x4,
  ILLEGAL_REQUEST: 0x5,
  UNIT_ATTENTION: 0x6,
  DATA_PROTECT: 0x7,
  BLANK_CHECK: 0x8,
  VENDOR_SPECIFIC: 0x9,
  COPY_ABORTED: 0xa,
  ABORTED_COMMAND: 0xb,
  VOLUME_OVERFLOW: 0xd,
  MISCOMPARE: 0xe,
  COMPLETED: 0xf,
} as const;

export interface SenseCode {
  key: number;
  asc: number;
  ascq: number;
}

const c = (key: number, asc: number, ascq: number): SenseCode => ({ key, asc, ascq });
const K = SenseKey;

/** Every sense the core reports, by name (ASC/ASCQ from SPC-4 annex D). */
export const Reason = {
  NO_ADDITIONAL_SENSE: c(K.NO_SENSE, 0x00, 0x00),
  // NOT READY
  LU_NOT_READY_CAUSE_NOT_REPORTABLE: c(K.NOT_READY, 0x04, 0x00),
  LU_NOT_READY_INITIALIZING_COMMAND_REQUIRED: c(K.NOT_READY, 0x04, 0x02),
  LU_NOT_READY_MANUAL_INTERVENTION_REQUIRED: c(K.NOT_READY, 0x04, 0x03),
  LU_NOT_READY_SANITIZE_IN_PROGRESS: c(K.NOT_READY, 0x04, 0x1b),
  MEDIUM_NOT_PRESENT: c(K.NOT_READY, 0x3a, 0x00),
  MEDIUM_NOT_PRESENT_TRAY_OPEN: c(K.NOT_READY, 0x3a, 0x02),
  // MEDIUM / HARDWARE ERROR
  UNRECOVERED_READ_ERROR: c(K.MEDIUM_ERROR, 0x11, 0x00),
  WRITE_ERROR: c(K.MEDIUM_ERROR, 0x0c, 0x00),
  MEDIUM_ERROR_GENERIC: c(K.MEDIUM_ERROR, 0x00, 0x00),
  SANITIZE_COMMAND_FAILED: c(K.MEDIUM_ERROR, 0x31, 0x03),
  INTERNAL_TARGET_FAILURE: c(K.HARDWARE_ERROR, 0x44, 0x00),
  LOGICAL_UNIT_COMMUNICATION_FAILURE: c(K.HARDWARE_ERROR, 0x08, 0x00),
  // ILLEGAL REQUEST
  PARAMETER_LIST_LENGTH_ERROR: c(K.ILLEGAL_REQUEST, 0x1a, 0x00),
  INVALID_COMMAND_OPERATION_CODE: c(K.ILLEGAL_REQUEST, 0x20, 0x00),
  LBA_OUT_OF_RANGE: c(K.ILLEGAL_REQUEST, 0x21, 0x00),
  INVALID_FIELD_IN_CDB: c(K.ILLEGAL_REQUEST, 0x24, 0x00),
  LOGICAL_UNIT_NOT_SUPPORTED: c(K.ILLEGAL_REQUEST, 0x25, 0x00),
  INVALID_FIELD_IN_PARAMETER_LIST: c(K.ILLEGAL_REQUEST, 0x26, 0x00),
  PARAMETER_NOT_SUPPORTED: c(K.ILLEGAL_REQUEST, 0x26, 0x01),
  INVALID_RELEASE_OF_PERSISTENT_RESERVATION: c(K.ILLEGAL_REQUEST, 0x26, 0x04),
  SAVING_PARAMETERS_NOT_SUPPORTED: c(K.ILLEGAL_REQUEST, 0x39, 0x00),
  MEDIUM_REMOVAL_PREVENTED: c(K.ILLEGAL_REQUEST, 0x53, 0x02),
  INSUFFICIENT_REGISTRATION_RESOURCES: c(K.ILLEGAL_REQUEST, 0x55, 0x04),
  INVALID_MESSAGE_ERROR: c(K.ILLEGAL_REQUEST, 0x49, 0x00),
  INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT: c(K.ILLEGAL_REQUEST, 0x0e, 0x03),
  // NOT READY, asymmetric access (SPC-4 5.16.2.3-5)
  LU_NOT_ACCESSIBLE_ASYMMETRIC_ACCESS_STATE_TRANSITION: c(K.NOT_READY, 0x04, 0x0a),
  LU_NOT_ACCESSIBLE_TARGET_PORT_IN_STANDBY_STATE: c(K.NOT_READY, 0x04, 0x0b),
  LU_NOT_ACCESSIBLE_TARGET_PORT_IN_UNAVAILABLE_STATE: c(K.NOT_READY, 0x04, 0x0c),
  // UNIT ATTENTION
  POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED: c(K.UNIT_ATTENTION, 0x29, 0x00),
  POWER_ON_OCCURRED: c(K.UNIT_ATTENTION, 0x29, 0x01),
  BUS_DEVICE_RESET_FUNCTION_OCCURRED: c(K.UNIT_ATTENTION, 0x29, 0x03),
  I_T_NEXUS_LOSS_OCCURRED: c(K.UNIT_ATTENTION, 0x29, 0x07),
  PARAMETERS_CHANGED: c(K.UNIT_ATTENTION, 0x2a, 0x00),
  MODE_PARAMETERS_CHANGED: c(K.UNIT_ATTENTION, 0x2a, 0x01),
  RESERVATIONS_PREEMPTED: c(K.UNIT_ATTENTION, 0x2a, 0x03),
  RESERVATIONS_RELEASED: c(K.UNIT_ATTENTION, 0x2a, 0x04),
  REGISTRATIONS_PREEMPTED: c(K.UNIT_ATTENTION, 0x2a, 0x05),
  ASYMMETRIC_ACCESS_STATE_CHANGED: c(K.UNIT_ATTENTION, 0x2a, 0x06),
  CAPACITY_DATA_HAS_CHANGED: c(K.UNIT_ATTENTION, 0x2a, 0x09),
  COMMANDS_CLEARED_BY_ANOTHER_INITIATOR: c(K.UNIT_ATTENTION, 0x2f, 0x00),
  COMMANDS_CLEARED_BY_POWER_LOSS_NOTIFICATION: c(K.UNIT_ATTENTION, 0x2f, 0x01),
  COMMANDS_CLEARED_BY_DEVICE_SERVER: c(K.UNIT_ATTENTION, 0x2f, 0x02),
  REPORTED_LUNS_DATA_HAS_CHANGED: c(K.UNIT_ATTENTION, 0x3f, 0x0e),
  INQUIRY_DATA_HAS_CHANGED: c(K.UNIT_ATTENTION, 0x3f, 0x03),
  MEDIUM_MAY_HAVE_CHANGED: c(K.UNIT_ATTENTION, 0x28, 0x00),
  // DATA PROTECT
  WRITE_PROTECTED: c(K.DATA_PROTECT, 0x27, 0x00),
  HARDWARE_WRITE_PROTECTED: c(K.DATA_PROTECT, 0x27, 0x01),
  LOGICAL_UNIT_SOFTWARE_WRITE_PROTECTED: c(K.DATA_PROTECT, 0x27, 0x02),
  SPACE_ALLOCATION_FAILED_WRITE_PROTECT: c(K.DATA_PROTECT, 0x27, 0x07),
  // ABORTED COMMAND
  COMMAND_PHASE_ERROR: c(K.ABORTED_COMMAND, 0x4a, 0x00),
  DATA_PHASE_ERROR: c(K.ABORTED_COMMAND, 0x4b, 0x00),
  DATA_OFFSET_ERROR: c(K.ABORTED_COMMAND, 0x4b, 0x05),
  INITIATOR_RESPONSE_TIMEOUT: c(K.ABORTED_COMMAND, 0x4b, 0x06),
  SCSI_PARITY_ERROR_ABORTED: c(K.ABORTED_COMMAND, 0x47, 0x00),
  ABORTED_INTERNAL_TARGET_FAILURE: c(K.ABORTED_COMMAND, 0x44, 0x00),
  OVERLAPPED_COMMANDS_ATTEMPTED: c(K.ABORTED_COMMAND, 0x4e, 0x00),
  // MISCOMPARE
  MISCOMPARE_DURING_VERIFY_OPERATION: c(K.MISCOMPARE, 0x1d, 0x00),
  // EXTENDED COPY (SPC-4 6.4): parameter list problems and aborted copies
  TOO_MANY_TARGET_DESCRIPTORS: c(K.ILLEGAL_REQUEST, 0x26, 0x06),
  UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE: c(K.ILLEGAL_REQUEST, 0x26, 0x07),
  TOO_MANY_SEGMENT_DESCRIPTORS: c(K.ILLEGAL_REQUEST, 0x26, 0x08),
  UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE: c(K.ILLEGAL_REQUEST, 0x26, 0x09),
  COPY_ABORTED_NO_ADDITIONAL_SENSE: c(K.COPY_ABORTED, 0x00, 0x00),
  COPY_TARGET_DEVICE_NOT_REACHABLE: c(K.COPY_ABORTED, 0x0d, 0x02),
} as const satisfies Record<string, SenseCode>;
export type ReasonName = keyof typeof Reason;

/** Where in the CDB or parameter list the offending field is (SPC-4 4.5.2.4.2 sense key specific). */
export interface FieldPointer {
  /** true: the field is in the CDB (C/D bit = 1); false: in the parameter data. */
  inCdb: boolean;
  byte: number;
  /** Bit within the byte (0-7) when the field does not start at bit 7 (sets BPV). */
  bit?: number;
}

/** A SCSI failure as a handler returns it. */
export interface ScsiFailure {
  reason: ReasonName;
  field?: FieldPointer;
  /** INFORMATION field (e.g. the first failing LBA, or the miscompare offset). */
  information?: bigint;
  /** COMMAND-SPECIFIC INFORMATION field. */
  commandSpecific?: bigint;
  /** Progress indication (sense key specific, for NOT READY in progress). */
  progress?: number;
}

export const failure = (reason: ReasonName, extra: Omit<ScsiFailure, 'reason'> = {}): ScsiFailure => ({
  reason,
  ...extra,
});
export const invalidCdbField = (byte: number, bit?: number): ScsiFailure =>
  failure('INVALID_FIELD_IN_CDB', { field: { inCdb: true, byte, ...(bit === undefined ? {} : { bit }) } });
export const invalidParamField = (byte: number, bit?: number): ScsiFailure =>
  failure('INVALID_FIELD_IN_PARAMETER_LIST', { field: { inCdb: false, byte, ...(bit === undefined ? {} : { bit }) } });

export type SenseFormat = 'fixed' | 'descriptor';

/** Encode sense key specific bytes (3 bytes, SKSV set) for a field pointer or progress indication. */
function senseKeySpecific(f: ScsiFailure): Buffer | undefined {
  if (f.field) {
    const b = Buffer.alloc(3);
    b[0] = 0x80 | (f.field.inCdb ? 0x40 : 0) | (f.field.bit !== undefined ? 0x08 | (f.field.bit & 7) : 0);
    b.writeUInt16BE(f.field.byte & 0xffff, 1);
    return b;
  }
  if (f.progress !== undefined) {
    const b = Buffer.alloc(3);
    b[0] = 0x80;
    b.writeUInt16BE(f.progress & 0xffff, 1);
    return b;
  }
  return undefined;
}

/** Build sense data for a failure. Fixed format is 18 bytes; descriptor format grows with what it carries. */
export function buildSense(f: ScsiFailure, format: SenseFormat): Buffer {
  const code = Reason[f.reason];
  const sks = senseKeySpecific(f);
  if (format === 'fixed') {
    const b = Buffer.alloc(18);
    // SPC-4 4.5.3: VALID only when INFORMATION fits its 4 bytes (descriptor format carries 8).
    const infoFits = f.information !== undefined && f.information >= 0n && f.information <= 0xffffffffn;
    b[0] = 0x70 | (infoFits ? 0x80 : 0); // current error
    b[2] = code.key;
    if (infoFits) b.writeUInt32BE(Number(f.information), 3);
    b[7] = 10; // additional sense length
    if (f.commandSpecific !== undefined) b.writeUInt32BE(Number(BigInt.asUintN(32, f.commandSpecific)), 8);
    b[12] = code.asc;
    b[13] = code.ascq;
    if (sks) sks.copy(b, 15);
    return b;
  }
  const descriptors: Buffer[] = [];
  if (f.information !== undefined) {
    const d = Buffer.alloc(12);
    d[0] = 0x00; // Information descriptor
    d[1] = 0x0a;
    d[2] = 0x80; // VALID
    d.writeBigUInt64BE(BigInt.asUintN(64, f.information), 4);
    descriptors.push(d);
  }
  if (f.commandSpecific !== undefined) {
    const d = Buffer.alloc(12);
    d[0] = 0x01; // Command-specific information descriptor
    d[1] = 0x0a;
    d.writeBigUInt64BE(BigInt.asUintN(64, f.commandSpecific), 4);
    descriptors.push(d);
  }
  if (sks) {
    const d = Buffer.alloc(8);
    d[0] = 0x02; // Sense key specific descriptor
    d[1] = 0x06;
    sks.copy(d, 4);
    descriptors.push(d);
  }
  const body = Buffer.concat(descriptors);
  const b = Buffer.alloc(8 + body.length);
  b[0] = 0x72; // current error, descriptor format
  b[1] = code.key;
  b[2] = code.asc;
  b[3] = code.ascq;
  b[7] = body.length;
  body.copy(b, 8);
  return b;
}

/** Sense data decoded back (for fabrics and logs that need a field of it, never to build sense). */
export interface ParsedSense {
  format: SenseFormat;
  /** false for deferred errors (response codes 71h / 73h). */
  current: boolean;
  key: number;
  asc: number;
  ascq: number;
  information?: bigint;
  commandSpecific?: bigint;
  /** Sense key specific field pointer (ILLEGAL REQUEST). */
  field?: FieldPointer;
  /** Sense key specific progress indication (NOT READY / NO SENSE), 0..65535. */
  progress?: number;
}

function decodeSks(key: number, b: Buffer, o: number, into: ParsedSense): void {
  if (o + 3 > b.length || (b[o]! & 0x80) === 0) return; // SKSV
  if (key === SenseKey.ILLEGAL_REQUEST) {
    const f: FieldPointer = { inCdb: (b[o]! & 0x40) !== 0, byte: b.readUInt16BE(o + 1) };
    if (b[o]! & 0x08) f.bit = b[o]! & 0x07;
    into.field = f;
  } else if (key === SenseKey.NOT_READY || key === SenseKey.NO_SENSE) {
    into.progress = b.readUInt16BE(o + 1);
  }
}

/**
 * Decode fixed (SPC-4 4.5.3) or descriptor (4.5.2) sense data. Returns undefined for anything that is
 * not sense data (too short, unknown response code); never throws, whatever the bytes.
 */
export function parseSense(sense: Buffer): ParsedSense | undefined {
  if (!Buffer.isBuffer(sense) || sense.length < 1) return undefined;
  const code = sense[0]! & 0x7f;
  if (code === 0x72 || code === 0x73) {
    if (sense.length < 4) return undefined;
    const out: ParsedSense = { format: 'descriptor', current: code === 0x72, key: sense[1]! & 0x0f, asc: sense[2]!, ascq: sense[3]! };
    const end = Math.min(sense.length, 8 + (sense[7] ?? 0));
    for (let o = 8; o + 2 <= end; o += 2 + sense[o + 1]!) {
      const type = sense[o]!;
      const len = sense[o + 1]!;
      if (o + 2 + len > end) break;
      if (type === 0x00 && len >= 0x0a) out.information = sense.readBigUInt64BE(o + 4);
      else if (type === 0x01 && len >= 0x0a) out.commandSpecific = sense.readBigUInt64BE(o + 4);
      else if (type === 0x02 && len >= 0x06) decodeSks(out.key, sense, o + 4, out);
    }
    return out;
  }
  if (code !== 0x70 && code !== 0x71) return undefined;
  if (sense.length < 3) return undefined;
  const out: ParsedSense = {
    format: 'fixed',
    current: code === 0x70,
    key: sense[2]! & 0x0f,
    asc: sense[12] ?? 0,
    ascq: sense[13] ?? 0,
  };
  if (sense[0]! & 0x80 && sense.length >= 7) out.information = BigInt(sense.readUInt32BE(3));
  if (sense.length >= 12 && sense.readUInt32BE(8) !== 0) out.commandSpecific = BigInt(sense.readUInt32BE(8));
  decodeSks(out.key, sense, 15, out);
  return out;
}

/** The sense key of sense data in either format, or undefined when it is not sense data. */
export function senseKeyOf(sense: Buffer): number | undefined {
  return parseSense(sense)?.key;
}
