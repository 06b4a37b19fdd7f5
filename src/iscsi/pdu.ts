/**
 * Basic Header Segment codec shared by every PDU family (RFC 7143 §11.2). Parsing works on views of the
 * received bytes; building reserves a 48-byte header that the family builders fill in.
 */
import { Buffer } from 'node:buffer';
import { BHS_LENGTH, MAX_DATA_SEGMENT_LENGTH } from './constants.js';

/** A received PDU: views into the receive buffer, never copies. `data` excludes padding and digests. */
export interface Pdu {
  bhs: Buffer;
  ahs: Buffer;
  data: Buffer;
  /**
   * Set when the PDU spanned several TCP reads and was copied into a pooled buffer: the holder of its
   * data (the SCSI task it belongs to) gives the buffer back once nothing reads it any more.
   */
  release?: () => void;
}

/** A PDU to send: a 48-byte header with its lengths filled in, and an optional data segment. */
export interface OutPdu {
  bhs: Buffer;
  data?: Buffer;
}

export const opcodeOf = (bhs: Buffer): number => bhs[0]! & 0x3f;
export const isImmediate = (bhs: Buffer): boolean => (bhs[0]! & 0x40) !== 0;
export const flagsOf = (bhs: Buffer): number => bhs[1]!;
/** RFC 7143 §11.2.1.4: TotalAHSLength in 4-byte words. */
export const totalAhsLengthOf = (bhs: Buffer): number => bhs[4]! * 4;
/** RFC 7143 §11.2.1.5: DataSegmentLength in bytes, without padding. */
export const dataSegmentLengthOf = (bhs: Buffer): number => (bhs[5]! << 16) | (bhs[6]! << 8) | bhs[7]!;
export const ittOf = (bhs: Buffer): number => bhs.readUInt32BE(16);
export const lunFieldOf = (bhs: Buffer): Buffer => bhs.subarray(8, 16);

/** Bytes of padding after a segment of `len` bytes (segments end on 4-byte boundaries, §11.2.3). */
export const padLength = (len: number): number => (4 - (len & 3)) & 3;

/** A zeroed header for `opcode` with flags. */
export function newBhs(opcode: number, flags: number): Buffer {
  // allocUnsafe slices Node's shared pool (cheaper than a zeroed standalone allocation per PDU).
  const b = Buffer.allocUnsafe(BHS_LENGTH).fill(0);
  b[0] = opcode & 0x3f;
  b[1] = flags & 0xff;
  return b;
}

export function setDataSegmentLength(bhs: Buffer, len: number): void {
  if (len < 0 || len > MAX_DATA_SEGMENT_LENGTH) throw new RangeError(`iSCSI data segment of ${len} bytes does not fit 24 bits`);
  bhs[5] = (len >>> 16) & 0xff;
  bhs[6] = (len >>> 8) & 0xff;
  bhs[7] = len & 0xff;
}

/** Fill an outgoing PDU's data segment length from its data and return it. */
export function withData(bhs: Buffer, data?: Buffer): OutPdu {
  const len = data ? data.length : 0;
  setDataSegmentLength(bhs, len);
  return len ? { bhs, data: data! } : { bhs };
}

/** RFC 1982 serial number arithmetic on 32-bit sequence numbers (RFC 7143 §4.2.2.1). */
export function serialLt(a: number, b: number): boolean {
  return a !== b && ((b - a) >>> 0) < 0x80000000;
}
export const serialLe = (a: number, b: number): boolean => a === b || serialLt(a, b);
export const serialAdd = (a: number, n: number): number => (a + n) >>> 0;
