/**
 * Shared vocabulary of the SRP information-unit codecs (T10 SRP r16a as carried by Linux
 * include/scsi/srp.h). Every multi-byte field is big-endian; 8-byte tags are opaque initiator
 * cookies and are copied byte for byte, never interpreted.
 */
import { Buffer } from 'node:buffer';

/** SRP r16a table 5: IU opcodes (byte 0 of every IU). */
export const SrpOpcode = {
  LOGIN_REQ: 0x00,
  TSK_MGMT: 0x01,
  CMD: 0x02,
  I_LOGOUT: 0x03,
  LOGIN_RSP: 0xc0,
  RSP: 0xc1,
  LOGIN_REJ: 0xc2,
  T_LOGOUT: 0x80,
  CRED_REQ: 0x81,
  AER_REQ: 0x82,
  CRED_RSP: 0x41,
  AER_RSP: 0x42,
} as const;
export type SrpOpcode = (typeof SrpOpcode)[keyof typeof SrpOpcode];

/** Fixed sizes of the packed structs in srp.h. */
export const SrpIuLength = {
  LOGIN_REQ: 64,
  LOGIN_RSP: 52,
  LOGIN_REJ: 32,
  I_LOGOUT: 16,
  T_LOGOUT: 16,
  TSK_MGMT: 48,
  CMD_FIXED: 48,
  RSP_FIXED: 36,
  CRED_REQ: 16,
  CRED_RSP: 16,
  AER_REQ_FIXED: 36,
  AER_RSP: 16,
} as const;

/** SRP r16a: data-buffer descriptor format bits of req_buf_fmt / buf_fmt (LOGIN). */
export const SrpBufFormat = {
  DIRECT: 1 << 1,
  INDIRECT: 1 << 2,
} as const;

/** 8-byte opaque tag. Kept as bytes so it is echoed verbatim. */
export type SrpTag = Buffer;

export type SrpParseErrorCode =
  | 'SHORT_IU' // fewer bytes than the IU's fixed part
  | 'WRONG_OPCODE'
  | 'RESERVED_BITS' // a field the spec reserves carries bits we must refuse (add_cdb_len bits 1:0)
  | 'BAD_TASK_ATTRIBUTE'
  | 'BAD_DESCRIPTOR' // descriptor formats, counts or lengths that cannot be honoured
  | 'UNSUPPORTED';

export interface SrpParseError {
  code: SrpParseErrorCode;
  message: string;
  /** Tag of the IU when it could be read (so the answer can still be correlated). */
  tag?: SrpTag;
}

export type Decoded<T> = { ok: true; value: T } | { ok: false; error: SrpParseError };

export const ok = <T>(value: T): Decoded<T> => ({ ok: true, value });
export const bad = <T>(code: SrpParseErrorCode, message: string, tag?: SrpTag): Decoded<T> => ({
  ok: false,
  error: tag ? { code, message, tag } : { code, message },
});

/** Copy a tag out of an IU (tags live at bytes 8..15 in every SRP IU). */
export function tagAt(iu: Buffer, off = 8): SrpTag {
  return Buffer.from(iu.subarray(off, off + 8));
}

export function tagOrZero(tag: SrpTag | undefined): Buffer {
  const t = Buffer.alloc(8);
  if (tag) tag.copy(t, 0, 0, Math.min(8, tag.length));
  return t;
}

/** Read an 8-byte tag as a bigint (for the core's task tags; the bytes are still echoed verbatim). */
export function tagToBigInt(tag: SrpTag): bigint {
  return tag.length >= 8 ? tag.readBigUInt64BE(0) : 0n;
}

export function checkOpcode(iu: Buffer, minLen: number, opcode: number, name: string): SrpParseError | undefined {
  if (iu.length < minLen) {
    return { code: 'SHORT_IU', message: `${name}: IU is ${iu.length} bytes, needs at least ${minLen}` };
  }
  if (iu[0] !== opcode) {
    return { code: 'WRONG_OPCODE', message: `${name}: opcode 0x${iu[0]!.toString(16)} is not 0x${opcode.toString(16)}` };
  }
  return undefined;
}
