/**
 * Target-initiated requests and the initiator's answers: SRP_CRED_REQ / SRP_CRED_RSP,
 * SRP_AER_REQ / SRP_AER_RSP (srp.h; SRP r16a 6.10-6.13).
 */
import { Buffer } from 'node:buffer';
import { bad, checkOpcode, type Decoded, ok, SrpIuLength, SrpOpcode, type SrpTag, tagAt, tagOrZero } from './iu-common.js';

export interface SrpCredReq {
  tag: SrpTag;
  solNot: number;
  reqLimDelta: number;
}

export function encodeCredReq(r: SrpCredReq): Buffer {
  const b = Buffer.alloc(SrpIuLength.CRED_REQ);
  b[0] = SrpOpcode.CRED_REQ;
  b[1] = r.solNot & 0x01;
  b.writeUInt32BE(r.reqLimDelta >>> 0, 4);
  tagOrZero(r.tag).copy(b, 8);
  return b;
}

export function decodeCredReq(iu: Buffer): Decoded<SrpCredReq> {
  const e = checkOpcode(iu, SrpIuLength.CRED_REQ, SrpOpcode.CRED_REQ, 'SRP_CRED_REQ');
  if (e) return bad(e.code, e.message);
  return ok({ tag: tagAt(iu), solNot: iu[1]! & 0x01, reqLimDelta: iu.readUInt32BE(4) });
}

export interface SrpCredRsp {
  tag: SrpTag;
}

export function encodeCredRsp(r: SrpCredRsp): Buffer {
  const b = Buffer.alloc(SrpIuLength.CRED_RSP);
  b[0] = SrpOpcode.CRED_RSP;
  tagOrZero(r.tag).copy(b, 8);
  return b;
}

export function decodeCredRsp(iu: Buffer): Decoded<SrpCredRsp> {
  const e = checkOpcode(iu, SrpIuLength.CRED_RSP, SrpOpcode.CRED_RSP, 'SRP_CRED_RSP');
  if (e) return bad(e.code, e.message);
  return ok({ tag: tagAt(iu) });
}

export interface SrpAerReq {
  tag: SrpTag;
  solNot: number;
  reqLimDelta: number;
  lun: Buffer; // 8 bytes
  sense: Buffer;
}

export function encodeAerReq(r: SrpAerReq): Buffer {
  const b = Buffer.alloc(SrpIuLength.AER_REQ_FIXED + r.sense.length);
  b[0] = SrpOpcode.AER_REQ;
  b[1] = r.solNot & 0x01;
  b.writeUInt32BE(r.reqLimDelta >>> 0, 4);
  tagOrZero(r.tag).copy(b, 8);
  r.lun.copy(b, 20, 0, 8);
  b.writeUInt32BE(r.sense.length, 28);
  r.sense.copy(b, 36);
  return b;
}

export function decodeAerReq(iu: Buffer): Decoded<SrpAerReq> {
  const e = checkOpcode(iu, SrpIuLength.AER_REQ_FIXED, SrpOpcode.AER_REQ, 'SRP_AER_REQ');
  if (e) return bad(e.code, e.message);
  const senseLen = iu.readUInt32BE(28);
  if (senseLen > iu.length - SrpIuLength.AER_REQ_FIXED) {
    return bad('SHORT_IU', `SRP_AER_REQ: sense_data_len ${senseLen} exceeds the ${iu.length}-byte IU`, tagAt(iu));
  }
  return ok({
    tag: tagAt(iu),
    solNot: iu[1]! & 0x01,
    reqLimDelta: iu.readUInt32BE(4),
    lun: Buffer.from(iu.subarray(20, 28)),
    sense: Buffer.from(iu.subarray(36, 36 + senseLen)),
  });
}

export interface SrpAerRsp {
  tag: SrpTag;
}

export function encodeAerRsp(r: SrpAerRsp): Buffer {
  const b = Buffer.alloc(SrpIuLength.AER_RSP);
  b[0] = SrpOpcode.AER_RSP;
  tagOrZero(r.tag).copy(b, 8);
  return b;
}

export function decodeAerRsp(iu: Buffer): Decoded<SrpAerRsp> {
  const e = checkOpcode(iu, SrpIuLength.AER_RSP, SrpOpcode.AER_RSP, 'SRP_AER_RSP');
  if (e) return bad(e.code, e.message);
  return ok({ tag: tagAt(iu) });
}
