/**
 * NOP-Out/NOP-In, Task Management, Reject and Async Message PDUs (RFC 7143 §11.5, §11.6, §11.9,
 * §11.17, §11.18, §11.19).
 */
import { Buffer } from 'node:buffer';
import { BHS_LENGTH, FINAL_BIT, RESERVED_TAG, TargetOpcode } from './constants.js';
import { type OutPdu, type Pdu, newBhs, withData } from './pdu.js';
import type { SeqNumbers } from './pdu-scsi.js';

export interface NopOutPdu {
  immediate: boolean;
  lunField: Buffer;
  itt: number;
  ttt: number;
  cmdSn: number;
  expStatSn: number;
  data: Buffer;
}

/** RFC 7143 §11.18. */
export function parseNopOut(pdu: Pdu): NopOutPdu {
  const b = pdu.bhs;
  return {
    immediate: (b[0]! & 0x40) !== 0,
    lunField: b.subarray(8, 16),
    itt: b.readUInt32BE(16),
    ttt: b.readUInt32BE(20),
    cmdSn: b.readUInt32BE(24),
    expStatSn: b.readUInt32BE(28),
    data: pdu.data,
  };
}

/** RFC 7143 §11.19: NOP-In, either answering a NOP-Out (ttt = RESERVED) or a target ping (itt = RESERVED). */
export function buildNopIn(itt: number, ttt: number, lunField: Buffer | undefined, seq: SeqNumbers, data?: Buffer): OutPdu {
  const b = newBhs(TargetOpcode.NOP_IN, FINAL_BIT);
  if (lunField) lunField.copy(b, 8, 0, 8);
  b.writeUInt32BE(itt, 16);
  b.writeUInt32BE(ttt, 20);
  b.writeUInt32BE(seq.statSn, 24);
  b.writeUInt32BE(seq.expCmdSn, 28);
  b.writeUInt32BE(seq.maxCmdSn, 32);
  return withData(b, data);
}

export interface TmfRequestPdu {
  immediate: boolean;
  fn: number;
  lunField: Buffer;
  itt: number;
  referencedTaskTag: number;
  cmdSn: number;
  expStatSn: number;
  refCmdSn: number;
  expDataSn: number;
}

/** RFC 7143 §11.5. */
export function parseTmfRequest(pdu: Pdu): TmfRequestPdu {
  const b = pdu.bhs;
  return {
    immediate: (b[0]! & 0x40) !== 0,
    fn: b[1]! & 0x7f,
    lunField: b.subarray(8, 16),
    itt: b.readUInt32BE(16),
    referencedTaskTag: b.readUInt32BE(20),
    cmdSn: b.readUInt32BE(24),
    expStatSn: b.readUInt32BE(28),
    refCmdSn: b.readUInt32BE(32),
    expDataSn: b.readUInt32BE(36),
  };
}

/** RFC 7143 §11.6 (RFC 7144 §4.3.3 Additional Response Information in bytes 5-7 for QUERY ASYNC EVENT). */
export function buildTmfResponse(itt: number, response: number, seq: SeqNumbers, additional?: Buffer): OutPdu {
  const b = newBhs(TargetOpcode.TASK_MGMT_RESPONSE, FINAL_BIT);
  b[2] = response;
  if (additional) additional.copy(b, 9, 0, 3);
  b.writeUInt32BE(itt, 16);
  b.writeUInt32BE(seq.statSn, 24);
  b.writeUInt32BE(seq.expCmdSn, 28);
  b.writeUInt32BE(seq.maxCmdSn, 32);
  return withData(b);
}

/** RFC 7143 §11.17: Reject; the data segment is the rejected PDU's header. */
export function buildReject(reason: number, rejectedBhs: Buffer, seq: SeqNumbers, dataSnOrR2tSn = 0): OutPdu {
  const b = newBhs(TargetOpcode.REJECT, FINAL_BIT);
  b[2] = reason;
  b.writeUInt32BE(RESERVED_TAG, 16);
  b.writeUInt32BE(seq.statSn, 24);
  b.writeUInt32BE(seq.expCmdSn, 28);
  b.writeUInt32BE(seq.maxCmdSn, 32);
  b.writeUInt32BE(dataSnOrR2tSn, 36);
  const copy = Buffer.alloc(BHS_LENGTH);
  rejectedBhs.copy(copy, 0, 0, Math.min(BHS_LENGTH, rejectedBhs.length));
  return withData(b, copy);
}

export interface AsyncMessageFields {
  lunField?: Buffer;
  event: number;
  vcode?: number;
  parameter1?: number;
  parameter2?: number;
  parameter3?: number;
}

/** RFC 7143 §11.9: Asynchronous Message. */
export function buildAsyncMessage(f: AsyncMessageFields, seq: SeqNumbers, data?: Buffer): OutPdu {
  const b = newBhs(TargetOpcode.ASYNC_MESSAGE, FINAL_BIT);
  if (f.lunField) f.lunField.copy(b, 8, 0, 8);
  b.writeUInt32BE(RESERVED_TAG, 16);
  b.writeUInt32BE(seq.statSn, 24);
  b.writeUInt32BE(seq.expCmdSn, 28);
  b.writeUInt32BE(seq.maxCmdSn, 32);
  b[36] = f.event;
  b[37] = f.vcode ?? 0;
  b.writeUInt16BE(f.parameter1 ?? 0, 38);
  b.writeUInt16BE(f.parameter2 ?? 0, 40);
  b.writeUInt16BE(f.parameter3 ?? 0, 42);
  return withData(b, data);
}
