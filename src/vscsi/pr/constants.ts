/**
 * Persistent reservation protocol constants, named as in SPC-4 (T10/BSR INCITS 513, r37).
 */

/** SPC-4 6.16 / 6.17 operation codes. */
export const Opcode = {
  PERSISTENT_RESERVE_IN: 0x5e,
  PERSISTENT_RESERVE_OUT: 0x5f,
  /** SPC-2 7.21 / 7.22 (obsolete in SPC-4 but still sent by clusters and by libiscsi). */
  RESERVE_6: 0x16,
  RELEASE_6: 0x17,
  RESERVE_10: 0x56,
  RELEASE_10: 0x57,
} as const;

/** SPC-4 6.16.1 table 167, PERSISTENT RESERVE IN service actions. */
export const PrInServiceAction = {
  READ_KEYS: 0x00,
  READ_RESERVATION: 0x01,
  REPORT_CAPABILITIES: 0x02,
  READ_FULL_STATUS: 0x03,
} as const;

/** SPC-4 6.17.2 table 177, PERSISTENT RESERVE OUT service actions. */
export const PrOutServiceAction = {
  REGISTER: 0x00,
  RESERVE: 0x01,
  RELEASE: 0x02,
  CLEAR: 0x03,
  PREEMPT: 0x04,
  PREEMPT_AND_ABORT: 0x05,
  REGISTER_AND_IGNORE_EXISTING_KEY: 0x06,
  REGISTER_AND_MOVE: 0x07,
  /** SPC-5; not supported here (RLR_C = 0). */
  REPLACE_LOST_RESERVATION: 0x08,
} as const;

/** SPC-4 6.16.3.3 table 171, persistent reservation TYPE codes. */
export const PrType = {
  WRITE_EXCLUSIVE: 0x1,
  EXCLUSIVE_ACCESS: 0x3,
  WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 0x5,
  EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 0x6,
  WRITE_EXCLUSIVE_ALL_REGISTRANTS: 0x7,
  EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 0x8,
} as const;
export type PrType = (typeof PrType)[keyof typeof PrType];

/** SPC-4 6.16.3.2: the only SCOPE value SPC-4 defines. */
export const LU_SCOPE = 0x0;

export function isPrType(t: number): t is PrType {
  return t === 1 || t === 3 || t === 5 || t === 6 || t === 7 || t === 8;
}
export const isAllRegistrants = (t: number): boolean =>
  t === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS || t === PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS;
export const isRegistrantsOnly = (t: number): boolean =>
  t === PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY || t === PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY;
/** Write exclusive family: non-holders may still read. */
export const isWriteExclusive = (t: number): boolean =>
  t === PrType.WRITE_EXCLUSIVE ||
  t === PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY ||
  t === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS;

/** SPC-4 6.16.4 table 173, PERSISTENT RESERVATION TYPE MASK bits (bytes 4-5 as a big-endian word). */
export const PrTypeMask = {
  WR_EX_AR: 0x8000,
  EX_AC_RO: 0x4000,
  WR_EX_RO: 0x2000,
  EX_AC: 0x0800,
  WR_EX: 0x0200,
  EX_AC_AR: 0x0001,
} as const;

/** SPC-4 7.6.4.1 table 508, PROTOCOL IDENTIFIER values that have a TransportID format. */
export const ProtocolId = {
  FCP: 0x0,
  SPI: 0x1,
  SSA: 0x2,
  IEEE_1394: 0x3,
  SRP: 0x4,
  ISCSI: 0x5,
  SAS: 0x6,
  ADT: 0x7,
  ATA: 0x8,
  UAS: 0x9,
  SOP: 0xa,
} as const;

/** PR OUT basic parameter list length (SPC-4 6.17.3). */
export const PROUT_BASIC_PARAMETER_LENGTH = 24;
/** Upper bound on registrations per logical unit; beyond it: INSUFFICIENT REGISTRATION RESOURCES. */
export const MAX_REGISTRATIONS = 4096;
