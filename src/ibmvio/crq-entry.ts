/**
 * The 16-byte CRQ entry (viosrp.h struct viosrp_crq; ibmvio.md §3.2). Bytes 8..15 are the IU
 * address in requests and the client's tag, copied verbatim, in responses.
 */
import { Buffer } from 'node:buffer';
import { CRQ_ENTRY_LEN, CrqInitFormat, CrqValid } from './constants.js';

export interface CrqEntry {
  valid: number;
  format: number;
  status: number;
  timeout: number;
  iuLength: number;
  /** Bytes 8..15: IU IOBA (request) or tag (response), kept as raw bytes. */
  word1: Buffer;
}

export function decodeCrq(b: Buffer): CrqEntry | undefined {
  if (b.length < CRQ_ENTRY_LEN) return undefined;
  return {
    valid: b[0]!,
    format: b[1]!,
    status: b[3]!,
    timeout: b.readUInt16BE(4),
    iuLength: b.readUInt16BE(6),
    word1: Buffer.from(b.subarray(8, 16)),
  };
}

export function encodeCrq(e: CrqEntry): Buffer {
  const b = Buffer.alloc(CRQ_ENTRY_LEN);
  b[0] = e.valid;
  b[1] = e.format;
  b[3] = e.status;
  b.writeUInt16BE(e.timeout & 0xffff, 4);
  b.writeUInt16BE(e.iuLength & 0xffff, 6);
  e.word1.copy(b, 8, 0, 8);
  return b;
}

export const crqIoba = (e: CrqEntry): bigint => e.word1.readBigUInt64BE(0);

export function ioba8(v: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt.asUintN(64, v));
  return b;
}

export const INIT_ENTRY = (): Buffer =>
  encodeCrq({ valid: CrqValid.INIT, format: CrqInitFormat.INIT, status: 0, timeout: 0, iuLength: 0, word1: Buffer.alloc(8) });
export const INIT_COMPLETE_ENTRY = (): Buffer =>
  encodeCrq({ valid: CrqValid.INIT, format: CrqInitFormat.INIT_COMPLETE, status: 0, timeout: 0, iuLength: 0, word1: Buffer.alloc(8) });
export const transportEventEntry = (format: number, status = 0): Buffer =>
  encodeCrq({ valid: CrqValid.TRANSPORT_EVENT, format, status, timeout: 0, iuLength: 0, word1: Buffer.alloc(8) });

/** Consumer side of a CRQ page: reads the slot at `cur` if its valid byte is set, then frees it. */
export class CrqConsumer {
  private cur = 0;
  constructor(
    private readonly readSlot: (offset: number, dst: Buffer) => void,
    private readonly freeSlot: (offset: number) => void,
    private readonly bytes: number,
  ) {}

  next(): Buffer | undefined {
    const slot = Buffer.alloc(CRQ_ENTRY_LEN);
    this.readSlot(this.cur, slot);
    if (slot[0] === CrqValid.FREE) return undefined;
    this.freeSlot(this.cur);
    this.cur = (this.cur + CRQ_ENTRY_LEN) % this.bytes;
    return slot;
  }

  reset(): void {
    this.cur = 0;
  }
}
