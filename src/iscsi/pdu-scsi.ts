/**
 * SCSI Command, SCSI Response, Data-Out, Data-In and R2T PDUs (RFC 7143 §11.3, §11.4, §11.7, §11.8).
 */
import { Buffer } from 'node:buffer';
import { AhsType, FINAL_BIT, RESERVED_TAG, TargetOpcode } from './constants.js';
import { type OutPdu, type Pdu, newBhs, withData } from './pdu.js';

/** RFC 7143 §11.3.1 flag bits of a SCSI Command. */
export const ScsiCmdFlag = { FINAL: 0x80, READ: 0x40, WRITE: 0x20, ATTR_MASK: 0x07 } as const;

export interface ScsiCommandPdu {
  immediate: boolean;
  final: boolean;
  read: boolean;
  write: boolean;
  attr: number;
  lunField: Buffer;
  itt: number;
  edtl: number;
  cmdSn: number;
  expStatSn: number;
  cdb: Buffer;
  /** Bidirectional commands: expected read length from the Bidirectional Read AHS (§11.3.5). */
  bidiReadLength?: number;
  immediateData: Buffer;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; error: string };

/** Parse a SCSI Command PDU including its AHS (extended CDB, bidi read length). Never throws. */
export function parseScsiCommand(pdu: Pdu): ParseResult<ScsiCommandPdu> {
  const b = pdu.bhs;
  const flags = b[1]!;
  let cdb: Buffer = b.subarray(32, 48);
  let bidiReadLength: number | undefined;
  // §11.2.2: each AHS is AHSLength(2) AHSType(1) specific(1) then AHSLength-1 more bytes, padded to 4.
  let off = 0;
  const ahs = pdu.ahs;
  while (off < ahs.length) {
    if (off + 4 > ahs.length) return { ok: false, error: 'truncated AHS header' };
    const len = ahs.readUInt16BE(off);
    const type = ahs[off + 2]! & 0x3f;
    const total = 3 + len;
    const padded = (total + 3) & ~3;
    if (off + padded > ahs.length || len === 0) return { ok: false, error: `AHS length ${len} overruns TotalAHSLength` };
    if (type === AhsType.EXTENDED_CDB) {
      // §11.2.2.3: AHSLength = CDB length - 16 + 1 (the reserved byte).
      const ext = ahs.subarray(off + 4, off + 3 + len);
      cdb = Buffer.concat([cdb, ext]);
    } else if (type === AhsType.BIDI_READ_DATA_LENGTH) {
      if (len !== 5) return { ok: false, error: `bidirectional read AHS length ${len} != 5` };
      bidiReadLength = ahs.readUInt32BE(off + 4);
    } else {
      return { ok: false, error: `unknown AHS type ${type}` };
    }
    off += padded;
  }
  const value: ScsiCommandPdu = {
    immediate: (b[0]! & 0x40) !== 0,
    final: (flags & ScsiCmdFlag.FINAL) !== 0,
    read: (flags & ScsiCmdFlag.READ) !== 0,
    write: (flags & ScsiCmdFlag.WRITE) !== 0,
    attr: flags & ScsiCmdFlag.ATTR_MASK,
    lunField: b.subarray(8, 16),
    itt: b.readUInt32BE(16),
    edtl: b.readUInt32BE(20),
    cmdSn: b.readUInt32BE(24),
    expStatSn: b.readUInt32BE(28),
    cdb,
    immediateData: pdu.data,
  };
  if (bidiReadLength !== undefined) value.bidiReadLength = bidiReadLength;
  return { ok: true, value };
}

export interface DataOutPdu {
  final: boolean;
  lunField: Buffer;
  itt: number;
  ttt: number;
  expStatSn: number;
  dataSn: number;
  bufferOffset: number;
  data: Buffer;
}

/** RFC 7143 §11.7: Data-Out. */
export function parseDataOut(pdu: Pdu): DataOutPdu {
  const b = pdu.bhs;
  return {
    final: (b[1]! & FINAL_BIT) !== 0,
    lunField: b.subarray(8, 16),
    itt: b.readUInt32BE(16),
    ttt: b.readUInt32BE(20),
    expStatSn: b.readUInt32BE(28),
    dataSn: b.readUInt32BE(36),
    bufferOffset: b.readUInt32BE(40),
    data: pdu.data,
  };
}

/** Residual flags and counts as carried by SCSI Response and the final Data-In (§11.4.5). */
export interface ResidualFields {
  overflow?: number;
  underflow?: number;
  bidiOverflow?: number;
  bidiUnderflow?: number;
}

/** RFC 7143 §11.4.1 flag bits. */
const RESP_BIDI_OVERFLOW = 0x10;
const RESP_BIDI_UNDERFLOW = 0x08;
const RESP_OVERFLOW = 0x04;
const RESP_UNDERFLOW = 0x02;

export interface SeqNumbers {
  statSn: number;
  expCmdSn: number;
  maxCmdSn: number;
}

/** RFC 7143 §11.4: SCSI Response; `sense` goes in the data segment behind a 2-byte SenseLength. */
export function buildScsiResponse(
  itt: number,
  status: number,
  seq: SeqNumbers,
  expDataSn: number,
  res: ResidualFields,
  sense?: Buffer,
  response = 0,
): OutPdu {
  let flags = FINAL_BIT;
  if (res.bidiOverflow) flags |= RESP_BIDI_OVERFLOW;
  if (res.bidiUnderflow) flags |= RESP_BIDI_UNDERFLOW;
  if (res.overflow) flags |= RESP_OVERFLOW;
  if (res.underflow) flags |= RESP_UNDERFLOW;
  const b = newBhs(TargetOpcode.SCSI_RESPONSE, flags);
  b[2] = response;
  b[3] = status;
  b.writeUInt32BE(itt, 16);
  b.writeUInt32BE(seq.statSn, 24);
  b.writeUInt32BE(seq.expCmdSn, 28);
  b.writeUInt32BE(seq.maxCmdSn, 32);
  b.writeUInt32BE(expDataSn, 36);
  b.writeUInt32BE(res.bidiOverflow ?? res.bidiUnderflow ?? 0, 40);
  b.writeUInt32BE(res.overflow ?? res.underflow ?? 0, 44);
  let data: Buffer | undefined;
  if (sense && sense.length) {
    data = Buffer.allocUnsafe(2 + sense.length);
    data.writeUInt16BE(sense.length, 0);
    sense.copy(data, 2);
  }
  return withData(b, data);
}

/** RFC 7143 §11.7.1 Data-In flag bits. */
export const DataInFlag = { FINAL: 0x80, ACK: 0x40, OVERFLOW: 0x04, UNDERFLOW: 0x02, STATUS: 0x01 } as const;

export interface DataInFields {
  itt: number;
  final: boolean;
  dataSn: number;
  bufferOffset: number;
  expCmdSn: number;
  maxCmdSn: number;
  /** Present on the last Data-In when it carries status (S bit, §11.7.3). */
  status?: { scsiStatus: number; statSn: number; residual: ResidualFields };
}

export function buildDataIn(f: DataInFields, data: Buffer): OutPdu {
  let flags = f.final ? DataInFlag.FINAL : 0;
  if (f.status) {
    flags |= DataInFlag.STATUS;
    if (f.status.residual.overflow) flags |= DataInFlag.OVERFLOW;
    if (f.status.residual.underflow) flags |= DataInFlag.UNDERFLOW;
  }
  const b = newBhs(TargetOpcode.DATA_IN, flags);
  b.writeUInt32BE(f.itt, 16);
  b.writeUInt32BE(RESERVED_TAG, 20);
  b.writeUInt32BE(f.expCmdSn, 28);
  b.writeUInt32BE(f.maxCmdSn, 32);
  b.writeUInt32BE(f.dataSn, 36);
  b.writeUInt32BE(f.bufferOffset, 40);
  if (f.status) {
    b[3] = f.status.scsiStatus;
    b.writeUInt32BE(f.status.statSn, 24);
    b.writeUInt32BE(f.status.residual.overflow ?? f.status.residual.underflow ?? 0, 44);
  }
  return withData(b, data);
}

export interface R2tFields {
  lunField: Buffer;
  itt: number;
  ttt: number;
  statSn: number;
  expCmdSn: number;
  maxCmdSn: number;
  r2tSn: number;
  bufferOffset: number;
  desiredLength: number;
}

/** RFC 7143 §11.8: Ready To Transfer. */
export function buildR2t(f: R2tFields): OutPdu {
  const b = newBhs(TargetOpcode.R2T, FINAL_BIT);
  f.lunField.copy(b, 8, 0, 8);
  b.writeUInt32BE(f.itt, 16);
  b.writeUInt32BE(f.ttt, 20);
  b.writeUInt32BE(f.statSn, 24);
  b.writeUInt32BE(f.expCmdSn, 28);
  b.writeUInt32BE(f.maxCmdSn, 32);
  b.writeUInt32BE(f.r2tSn, 36);
  b.writeUInt32BE(f.bufferOffset, 40);
  b.writeUInt32BE(f.desiredLength, 44);
  return withData(b);
}
