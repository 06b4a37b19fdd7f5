/**
 * SRP login and logout IUs (srp.h struct srp_login_req / srp_login_rsp / srp_login_rej /
 * srp_i_logout / srp_t_logout; SRP r16a 6.2-6.6). Pure, synchronous codecs.
 */
import { Buffer } from 'node:buffer';
import {
  bad,
  checkOpcode,
  type Decoded,
  ok,
  SrpIuLength,
  SrpOpcode,
  type SrpTag,
  tagAt,
  tagOrZero,
} from './iu-common.js';

/** SRP r16a table 9: req_flags bits 1:0 MULTI-CHANNEL ACTION. */
export const MultiChannelAction = { SINGLE: 0, MULTI: 1 } as const;
/** SRP r16a table 11: rsp_flags bits 1:0 MULTI-CHANNEL RESULT. */
export const MultiChannelResult = { NO_EXISTING: 0, TERMINATED: 1, MAINTAINED: 2 } as const;
/** SRP-2: req_flags / rsp_flags bit 7, immediate data. */
export const SRP_LOGIN_IMMED = 0x80;

/** srp.h enum srp_login_rej_reason (SRP r16a table 13). */
export const LoginRejectReason = {
  UNABLE_ESTABLISH_CHANNEL: 0x00010000,
  INSUFFICIENT_RESOURCES: 0x00010001,
  REQ_IT_IU_LENGTH_TOO_LARGE: 0x00010002,
  UNABLE_ASSOCIATE_CHANNEL: 0x00010003,
  UNSUPPORTED_DESCRIPTOR_FMT: 0x00010004,
  MULTI_CHANNEL_UNSUPPORTED: 0x00010005,
  CHANNEL_LIMIT_REACHED: 0x00010006,
} as const;
export type LoginRejectReason = (typeof LoginRejectReason)[keyof typeof LoginRejectReason];

export interface SrpLoginReq {
  tag: SrpTag;
  reqItIuLen: number;
  reqBufFmt: number;
  reqFlags: number;
  immDataOffset: number;
  initiatorPortId: Buffer; // 16 bytes
  targetPortId: Buffer; // 16 bytes
}

export function decodeLoginReq(iu: Buffer): Decoded<SrpLoginReq> {
  const e = checkOpcode(iu, SrpIuLength.LOGIN_REQ, SrpOpcode.LOGIN_REQ, 'SRP_LOGIN_REQ');
  if (e) return bad(e.code, e.message, iu.length >= 16 ? tagAt(iu) : undefined);
  return ok({
    tag: tagAt(iu),
    reqItIuLen: iu.readUInt32BE(16),
    reqBufFmt: iu.readUInt16BE(24),
    reqFlags: iu[26]!,
    immDataOffset: iu.readUInt16BE(28),
    initiatorPortId: Buffer.from(iu.subarray(32, 48)),
    targetPortId: Buffer.from(iu.subarray(48, 64)),
  });
}

export function encodeLoginReq(r: SrpLoginReq): Buffer {
  const b = Buffer.alloc(SrpIuLength.LOGIN_REQ);
  b[0] = SrpOpcode.LOGIN_REQ;
  tagOrZero(r.tag).copy(b, 8);
  b.writeUInt32BE(r.reqItIuLen >>> 0, 16);
  b.writeUInt16BE(r.reqBufFmt & 0xffff, 24);
  b[26] = r.reqFlags & 0xff;
  b.writeUInt16BE(r.immDataOffset & 0xffff, 28);
  r.initiatorPortId.copy(b, 32, 0, 16);
  r.targetPortId.copy(b, 48, 0, 16);
  return b;
}

export interface SrpLoginRsp {
  tag: SrpTag;
  reqLimDelta: number;
  maxItIuLen: number;
  maxTiIuLen: number;
  bufFmt: number;
  rspFlags: number;
}

export function encodeLoginRsp(r: SrpLoginRsp): Buffer {
  const b = Buffer.alloc(SrpIuLength.LOGIN_RSP);
  b[0] = SrpOpcode.LOGIN_RSP;
  b.writeUInt32BE(r.reqLimDelta >>> 0, 4);
  tagOrZero(r.tag).copy(b, 8);
  b.writeUInt32BE(r.maxItIuLen >>> 0, 16);
  b.writeUInt32BE(r.maxTiIuLen >>> 0, 20);
  b.writeUInt16BE(r.bufFmt & 0xffff, 24);
  b[26] = r.rspFlags & 0xff;
  return b;
}

export function decodeLoginRsp(iu: Buffer): Decoded<SrpLoginRsp> {
  const e = checkOpcode(iu, SrpIuLength.LOGIN_RSP, SrpOpcode.LOGIN_RSP, 'SRP_LOGIN_RSP');
  if (e) return bad(e.code, e.message);
  return ok({
    tag: tagAt(iu),
    reqLimDelta: iu.readUInt32BE(4),
    maxItIuLen: iu.readUInt32BE(16),
    maxTiIuLen: iu.readUInt32BE(20),
    bufFmt: iu.readUInt16BE(24),
    rspFlags: iu[26]!,
  });
}

export interface SrpLoginRej {
  tag: SrpTag;
  reason: number;
  bufFmt: number;
}

export function encodeLoginRej(r: SrpLoginRej): Buffer {
  const b = Buffer.alloc(SrpIuLength.LOGIN_REJ);
  b[0] = SrpOpcode.LOGIN_REJ;
  b.writeUInt32BE(r.reason >>> 0, 4);
  tagOrZero(r.tag).copy(b, 8);
  b.writeUInt16BE(r.bufFmt & 0xffff, 24);
  return b;
}

export function decodeLoginRej(iu: Buffer): Decoded<SrpLoginRej> {
  const e = checkOpcode(iu, SrpIuLength.LOGIN_REJ, SrpOpcode.LOGIN_REJ, 'SRP_LOGIN_REJ');
  if (e) return bad(e.code, e.message);
  return ok({ tag: tagAt(iu), reason: iu.readUInt32BE(4), bufFmt: iu.readUInt16BE(24) });
}

export interface SrpILogout {
  tag: SrpTag;
}

export function encodeILogout(r: SrpILogout): Buffer {
  const b = Buffer.alloc(SrpIuLength.I_LOGOUT);
  b[0] = SrpOpcode.I_LOGOUT;
  tagOrZero(r.tag).copy(b, 8);
  return b;
}

export function decodeILogout(iu: Buffer): Decoded<SrpILogout> {
  const e = checkOpcode(iu, SrpIuLength.I_LOGOUT, SrpOpcode.I_LOGOUT, 'SRP_I_LOGOUT');
  if (e) return bad(e.code, e.message);
  return ok({ tag: tagAt(iu) });
}

export interface SrpTLogout {
  tag: SrpTag;
  /** sol_not bit 0, SOLNT. */
  solNot: number;
  reason: number;
}

export function encodeTLogout(r: SrpTLogout): Buffer {
  const b = Buffer.alloc(SrpIuLength.T_LOGOUT);
  b[0] = SrpOpcode.T_LOGOUT;
  b[1] = r.solNot & 0x01;
  b.writeUInt32BE(r.reason >>> 0, 4);
  tagOrZero(r.tag).copy(b, 8);
  return b;
}

export function decodeTLogout(iu: Buffer): Decoded<SrpTLogout> {
  const e = checkOpcode(iu, SrpIuLength.T_LOGOUT, SrpOpcode.T_LOGOUT, 'SRP_T_LOGOUT');
  if (e) return bad(e.code, e.message);
  return ok({ tag: tagAt(iu), solNot: iu[1]! & 0x01, reason: iu.readUInt32BE(4) });
}
