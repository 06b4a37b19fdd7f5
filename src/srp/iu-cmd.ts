/**
 * SRP_CMD, SRP_TSK_MGMT and SRP_RSP (srp.h struct srp_cmd / srp_tsk_mgmt / srp_rsp; SRP r16a
 * 6.7-6.9). Pure, synchronous codecs; hostile input yields a typed error, never an exception.
 */
import { Buffer } from 'node:buffer';
import {
  type DataBufferDescriptor,
  decodeDataDescriptor,
  descriptorFormatCode,
  encodeDataDescriptor,
} from './descriptors.js';
import { bad, checkOpcode, type Decoded, ok, SrpIuLength, SrpOpcode, type SrpTag, tagAt, tagOrZero } from './iu-common.js';

/** SRP r16a table 19 / srp.h: SRP_CMD sol_not bits. */
export const SRP_SCSOLNT = 0x02;
export const SRP_UCSOLNT = 0x04;
/** SRP_RSP sol_not bit 0. */
export const SRP_SOLNT = 0x01;

/** SRP r16a table 20: TASK ATTRIBUTE (srpt.h SRP_CMD_*_Q). */
export const SrpTaskAttr = { SIMPLE: 0, HEAD_OF_QUEUE: 1, ORDERED: 2, ACA: 4 } as const;

/** srp.h SRP_TSK_*: task management functions (SRP r16a table 17). */
export const SrpTaskMgmtFunction = {
  ABORT_TASK: 0x01,
  ABORT_TASK_SET: 0x02,
  CLEAR_TASK_SET: 0x04,
  LUN_RESET: 0x08,
  CLEAR_ACA: 0x40,
} as const;

/** srp.h SRP_RSP flags (SRP r16a table 24). */
export const SrpRspFlag = {
  RSPVALID: 1 << 0,
  SNSVALID: 1 << 1,
  DOOVER: 1 << 2,
  DOUNDER: 1 << 3,
  DIOVER: 1 << 4,
  DIUNDER: 1 << 5,
} as const;

/** SRP r16a table 25: RSP_CODE in response data byte 3. */
export const SrpRspCode = {
  COMPLETE: 0x00,
  INVALID_FIELDS: 0x02,
  NOT_SUPPORTED: 0x04,
  FAILED: 0x05,
} as const;

export interface SrpCmd {
  tag: SrpTag;
  solNot: number;
  lun: Buffer; // 8 bytes, as sent
  taskAttr: number;
  /** 16 + additional CDB bytes. */
  cdb: Buffer;
  dataOut: DataBufferDescriptor;
  dataIn: DataBufferDescriptor;
}

export function decodeCmd(iu: Buffer): Decoded<SrpCmd> {
  const e = checkOpcode(iu, SrpIuLength.CMD_FIXED, SrpOpcode.CMD, 'SRP_CMD');
  if (e) return bad(e.code, e.message, iu.length >= 16 ? tagAt(iu) : undefined);
  const tag = tagAt(iu);
  const bufFmt = iu[5]!;
  const addCdb = iu[31]!;
  if ((addCdb & 0x03) !== 0) {
    return bad('RESERVED_BITS', `SRP_CMD: reserved bits 1:0 of add_cdb_len are set (0x${addCdb.toString(16)})`, tag);
  }
  const taskAttr = iu[29]!;
  if (!(taskAttr in ATTRS)) return bad('BAD_TASK_ATTRIBUTE', `SRP_CMD: task attribute ${taskAttr} is reserved`, tag);
  const addLen = addCdb & ~0x03;
  const cdbEnd = 48 + addLen;
  if (cdbEnd > iu.length) {
    return bad('SHORT_IU', `SRP_CMD: additional CDB of ${addLen} bytes runs past the ${iu.length}-byte IU`, tag);
  }
  const out = decodeDataDescriptor(iu, cdbEnd, bufFmt >> 4, iu[6]!);
  if (!out.ok) return bad(out.error.code, `SRP_CMD data-out: ${out.error.message}`, tag);
  const inp = decodeDataDescriptor(iu, cdbEnd + out.value.size, bufFmt & 0x0f, iu[7]!);
  if (!inp.ok) return bad(inp.error.code, `SRP_CMD data-in: ${inp.error.message}`, tag);
  return ok({
    tag,
    solNot: iu[1]!,
    lun: Buffer.from(iu.subarray(20, 28)),
    taskAttr,
    cdb: Buffer.concat([iu.subarray(32, 48), iu.subarray(48, cdbEnd)]),
    dataOut: out.value.descriptor,
    dataIn: inp.value.descriptor,
  });
}
const ATTRS: Record<number, true> = { 0: true, 1: true, 2: true, 4: true };

export function encodeCmd(c: SrpCmd): Buffer {
  const cdb = c.cdb.length >= 16 ? c.cdb : Buffer.concat([c.cdb, Buffer.alloc(16 - c.cdb.length)]);
  const add = cdb.subarray(16);
  const addPadded = Buffer.concat([add, Buffer.alloc((4 - (add.length % 4)) % 4)]);
  const outD = encodeDataDescriptor(c.dataOut);
  const inD = encodeDataDescriptor(c.dataIn);
  const b = Buffer.alloc(48 + addPadded.length + outD.length + inD.length);
  b[0] = SrpOpcode.CMD;
  b[1] = c.solNot & 0xff;
  b[5] = (descriptorFormatCode(c.dataOut) << 4) | descriptorFormatCode(c.dataIn);
  b[6] = c.dataOut.format === 'indirect' ? c.dataOut.inIu.length : 0;
  b[7] = c.dataIn.format === 'indirect' ? c.dataIn.inIu.length : 0;
  tagOrZero(c.tag).copy(b, 8);
  c.lun.copy(b, 20, 0, 8);
  b[29] = c.taskAttr & 0xff;
  b[31] = addPadded.length & 0xfc;
  cdb.copy(b, 32, 0, 16);
  addPadded.copy(b, 48);
  outD.copy(b, 48 + addPadded.length);
  inD.copy(b, 48 + addPadded.length + outD.length);
  return b;
}

export interface SrpTskMgmt {
  tag: SrpTag;
  solNot: number;
  lun: Buffer;
  func: number;
  /** Tag of the SRP_CMD an ABORT TASK refers to. */
  taskTag: SrpTag;
}

export function decodeTskMgmt(iu: Buffer): Decoded<SrpTskMgmt> {
  const e = checkOpcode(iu, SrpIuLength.TSK_MGMT, SrpOpcode.TSK_MGMT, 'SRP_TSK_MGMT');
  if (e) return bad(e.code, e.message, iu.length >= 16 ? tagAt(iu) : undefined);
  return ok({
    tag: tagAt(iu),
    solNot: iu[1]!,
    lun: Buffer.from(iu.subarray(20, 28)),
    func: iu[30]!,
    taskTag: tagAt(iu, 32),
  });
}

export function encodeTskMgmt(t: SrpTskMgmt): Buffer {
  const b = Buffer.alloc(SrpIuLength.TSK_MGMT);
  b[0] = SrpOpcode.TSK_MGMT;
  b[1] = t.solNot & 0xff;
  tagOrZero(t.tag).copy(b, 8);
  t.lun.copy(b, 20, 0, 8);
  b[30] = t.func & 0xff;
  tagOrZero(t.taskTag).copy(b, 32);
  return b;
}

export interface SrpRsp {
  tag: SrpTag;
  solNot: number;
  reqLimDelta: number;
  /** Residual flag bits only (DOOVER..DIUNDER); RSPVALID/SNSVALID follow from the data present. */
  residualFlags: number;
  status: number;
  dataOutResidual: number;
  dataInResidual: number;
  responseData?: Buffer;
  sense?: Buffer;
}

const RESIDUAL_MASK = SrpRspFlag.DOOVER | SrpRspFlag.DOUNDER | SrpRspFlag.DIOVER | SrpRspFlag.DIUNDER;

/** Response data goes first, then sense ([ib_srp.c] reads sense at data + resp_data_len). */
export function encodeRsp(r: SrpRsp): Buffer {
  const resp = r.responseData ?? Buffer.alloc(0);
  const sense = r.sense ?? Buffer.alloc(0);
  const b = Buffer.alloc(SrpIuLength.RSP_FIXED + resp.length + sense.length);
  b[0] = SrpOpcode.RSP;
  b[1] = r.solNot & SRP_SOLNT;
  b.writeUInt32BE(r.reqLimDelta >>> 0, 4);
  tagOrZero(r.tag).copy(b, 8);
  b[18] =
    (r.residualFlags & RESIDUAL_MASK) |
    (resp.length ? SrpRspFlag.RSPVALID : 0) |
    (sense.length ? SrpRspFlag.SNSVALID : 0);
  b[19] = r.status & 0xff;
  b.writeUInt32BE(r.dataOutResidual >>> 0, 20);
  b.writeUInt32BE(r.dataInResidual >>> 0, 24);
  b.writeUInt32BE(sense.length, 28);
  b.writeUInt32BE(resp.length, 32);
  resp.copy(b, 36);
  sense.copy(b, 36 + resp.length);
  return b;
}

export function decodeRsp(iu: Buffer): Decoded<SrpRsp> {
  const e = checkOpcode(iu, SrpIuLength.RSP_FIXED, SrpOpcode.RSP, 'SRP_RSP');
  if (e) return bad(e.code, e.message);
  const flags = iu[18]!;
  const senseLen = flags & SrpRspFlag.SNSVALID ? iu.readUInt32BE(28) : 0;
  const respLen = flags & SrpRspFlag.RSPVALID ? iu.readUInt32BE(32) : 0;
  if (SrpIuLength.RSP_FIXED + respLen + senseLen > iu.length) {
    return bad('SHORT_IU', `SRP_RSP: ${respLen} response + ${senseLen} sense bytes exceed the ${iu.length}-byte IU`, tagAt(iu));
  }
  const r: SrpRsp = {
    tag: tagAt(iu),
    solNot: iu[1]! & SRP_SOLNT,
    reqLimDelta: iu.readUInt32BE(4),
    residualFlags: flags & RESIDUAL_MASK,
    status: iu[19]!,
    dataOutResidual: iu.readUInt32BE(20),
    dataInResidual: iu.readUInt32BE(24),
  };
  if (respLen) r.responseData = Buffer.from(iu.subarray(36, 36 + respLen));
  if (senseLen) r.sense = Buffer.from(iu.subarray(36 + respLen, 36 + respLen + senseLen));
  return ok(r);
}

/** 4-byte response data carrying RSP_CODE in byte 3 (bytes 0..2 zero). */
export function rspCodeData(code: number): Buffer {
  const b = Buffer.alloc(4);
  b[3] = code;
  return b;
}
