/**
 * Login, Text and Logout PDUs (RFC 7143 §11.10–§11.15).
 */
import { FINAL_BIT, RESERVED_TAG, TargetOpcode } from './constants.js';
import { type OutPdu, type Pdu, newBhs, withData } from './pdu.js';
import type { SeqNumbers } from './pdu-scsi.js';

/** RFC 7143 §11.12.1 flag bits. */
export const LoginFlag = { TRANSIT: 0x80, CONTINUE: 0x40 } as const;

export interface LoginRequestPdu {
  immediate: boolean;
  transit: boolean;
  cont: boolean;
  csg: number;
  nsg: number;
  versionMax: number;
  versionMin: number;
  /** 6-byte ISID (§11.12.5) as a view. */
  isid: Buffer;
  tsih: number;
  itt: number;
  cid: number;
  cmdSn: number;
  expStatSn: number;
  data: Buffer;
}

export function parseLoginRequest(pdu: Pdu): LoginRequestPdu {
  const b = pdu.bhs;
  const flags = b[1]!;
  return {
    immediate: (b[0]! & 0x40) !== 0,
    transit: (flags & LoginFlag.TRANSIT) !== 0,
    cont: (flags & LoginFlag.CONTINUE) !== 0,
    csg: (flags >> 2) & 3,
    nsg: flags & 3,
    versionMax: b[2]!,
    versionMin: b[3]!,
    isid: b.subarray(8, 14),
    tsih: b.readUInt16BE(14),
    itt: b.readUInt32BE(16),
    cid: b.readUInt16BE(20),
    cmdSn: b.readUInt32BE(24),
    expStatSn: b.readUInt32BE(28),
    data: pdu.data,
  };
}

export interface LoginResponseFields {
  transit: boolean;
  cont: boolean;
  csg: number;
  nsg: number;
  isid: Buffer;
  tsih: number;
  itt: number;
  seq: SeqNumbers;
  /** (class << 8) | detail, see LoginStatus. */
  status: number;
}

/** RFC 7143 §11.13: Login Response. VersionMax/VersionActive are 0 (the only version). */
export function buildLoginResponse(f: LoginResponseFields, data?: Buffer): OutPdu {
  let flags = (f.csg & 3) << 2;
  if (f.transit) flags |= LoginFlag.TRANSIT | (f.nsg & 3);
  if (f.cont) flags |= LoginFlag.CONTINUE;
  const b = newBhs(TargetOpcode.LOGIN_RESPONSE, flags);
  f.isid.copy(b, 8, 0, 6);
  b.writeUInt16BE(f.tsih, 14);
  b.writeUInt32BE(f.itt, 16);
  b.writeUInt32BE(f.seq.statSn, 24);
  b.writeUInt32BE(f.seq.expCmdSn, 28);
  b.writeUInt32BE(f.seq.maxCmdSn, 32);
  b[36] = (f.status >> 8) & 0xff;
  b[37] = f.status & 0xff;
  return withData(b, data);
}

export interface TextRequestPdu {
  immediate: boolean;
  final: boolean;
  cont: boolean;
  lunField: Buffer;
  itt: number;
  ttt: number;
  cmdSn: number;
  expStatSn: number;
  data: Buffer;
}

/** RFC 7143 §11.10. */
export function parseTextRequest(pdu: Pdu): TextRequestPdu {
  const b = pdu.bhs;
  return {
    immediate: (b[0]! & 0x40) !== 0,
    final: (b[1]! & FINAL_BIT) !== 0,
    cont: (b[1]! & 0x40) !== 0,
    lunField: b.subarray(8, 16),
    itt: b.readUInt32BE(16),
    ttt: b.readUInt32BE(20),
    cmdSn: b.readUInt32BE(24),
    expStatSn: b.readUInt32BE(28),
    data: pdu.data,
  };
}

/** RFC 7143 §11.11: Text Response. `ttt` is RESERVED_TAG on the final response. */
export function buildTextResponse(itt: number, ttt: number, final: boolean, cont: boolean, seq: SeqNumbers, data: Buffer): OutPdu {
  const b = newBhs(TargetOpcode.TEXT_RESPONSE, (final ? FINAL_BIT : 0) | (cont ? 0x40 : 0));
  b.writeUInt32BE(itt, 16);
  b.writeUInt32BE(final ? RESERVED_TAG : ttt, 20);
  b.writeUInt32BE(seq.statSn, 24);
  b.writeUInt32BE(seq.expCmdSn, 28);
  b.writeUInt32BE(seq.maxCmdSn, 32);
  return withData(b, data);
}

export interface LogoutRequestPdu {
  immediate: boolean;
  reason: number;
  itt: number;
  cid: number;
  cmdSn: number;
  expStatSn: number;
}

/** RFC 7143 §11.14. */
export function parseLogoutRequest(pdu: Pdu): LogoutRequestPdu {
  const b = pdu.bhs;
  return {
    immediate: (b[0]! & 0x40) !== 0,
    reason: b[1]! & 0x7f,
    itt: b.readUInt32BE(16),
    cid: b.readUInt16BE(20),
    cmdSn: b.readUInt32BE(24),
    expStatSn: b.readUInt32BE(28),
  };
}

/** RFC 7143 §11.15. */
export function buildLogoutResponse(itt: number, response: number, seq: SeqNumbers, time2Wait: number, time2Retain: number): OutPdu {
  const b = newBhs(TargetOpcode.LOGOUT_RESPONSE, FINAL_BIT);
  b[2] = response;
  b.writeUInt32BE(itt, 16);
  b.writeUInt32BE(seq.statSn, 24);
  b.writeUInt32BE(seq.expCmdSn, 28);
  b.writeUInt32BE(seq.maxCmdSn, 32);
  b.writeUInt16BE(time2Wait, 40);
  b.writeUInt16BE(time2Retain, 42);
  return withData(b);
}
