/**
 * Receive framing (RFC 7143 §11.2): an explicit state machine fed with TCP chunks. `next()` returns a
 * whole PDU (views into the received chunks where possible), "need more bytes", or a typed error. It
 * never throws on hostile input; lengths are validated from the header before any payload is awaited.
 */
import { Buffer } from 'node:buffer';
import { BHS_LENGTH, InitiatorOpcode } from './constants.js';
import { type Pdu, dataSegmentLengthOf, padLength, totalAhsLengthOf } from './pdu.js';
import { crc32c } from '../native/crc32c.js';
import { dataInPool } from '../vscsi/buffer-pool.js';

export interface FramingLimits {
  headerDigest: boolean;
  dataDigest: boolean;
  /** Our declared MaxRecvDataSegmentLength: a larger data segment is a protocol error. */
  maxRecvDataSegmentLength: number;
}

export type FramingErrorCode =
  | 'header-digest' // fatal: the lengths cannot be trusted (§7.8)
  | 'data-digest' // the PDU was consumed; answer with Reject (§7.8, §11.17.1)
  | 'data-segment-too-long' // fatal after a Reject
  | 'ahs-too-long'; // fatal after a Reject

export type FrameResult =
  | { kind: 'pdu'; pdu: Pdu }
  | { kind: 'need' }
  | { kind: 'error'; code: FramingErrorCode; bhs: Buffer; message: string };

/** The AHS or data segment of a PDU that has none (shared: nothing writes into a zero-length view). */
const NO_BYTES = Buffer.alloc(0);

/** AHS larger than this cannot be a SCSI command we support (extended CDB of at most 260 bytes + bidi). */
const MAX_AHS_LENGTH = 512;

/** iSCSI puts CRC32C on the wire least significant byte first (RFC 7143 §13.1, RFC 3720 B.4 vectors). */
export function digestOf(...parts: Buffer[]): number {
  let crc = 0;
  for (const p of parts) if (p.length) crc = crc32c(p, crc);
  return crc;
}

export class PduReceiver {
  private chunks: Buffer[] = [];
  private head = 0; // consumed bytes of chunks[0]
  private avail = 0;
  private bhs: Buffer | undefined;
  private bodyLength = 0;
  private lastRelease: (() => void) | undefined;

  /**
   * Chunks are reused by the transport after push() returns: every PDU is copied out (SCSI data into
   * pooled buffers) and detach() copies what is still buffered.
   */
  copyOut = false;
  /** The chunk detach() made (pooled) and how to give it back once it is consumed. */
  private owned: { chunk: Buffer; release: () => void } | undefined;

  constructor(public limits: FramingLimits) {}

  /** Copy the unconsumed received bytes into memory the receiver owns (call before the chunk is reused). */
  detach(): void {
    if (this.avail === 0) {
      this.chunks = [];
      this.head = 0;
      this.owned?.release();
      this.owned = undefined;
      return;
    }
    const lent = dataInPool.acquire(this.avail);
    const own = lent.data;
    let at = 0;
    for (let i = 0; i < this.chunks.length; i++) {
      const c = this.chunks[i]!;
      const from = i === 0 ? this.head : 0;
      c.copy(own, at, from);
      at += c.length - from;
    }
    this.owned?.release(); // its unconsumed bytes were just copied
    this.owned = { chunk: own, release: lent.release };
    this.chunks = [own];
    this.head = 0;
    if (this.bhs) this.bhs = Buffer.from(this.bhs);
  }

  /** Bytes received and not yet returned as PDUs. */
  get buffered(): number {
    return this.avail;
  }

  /**
   * Bytes still to arrive before the PDU being received is complete (0 at a PDU boundary). While only
   * part of a header is here, the rest of the header.
   */
  get missing(): number {
    if (this.bhs) return Math.max(0, BHS_LENGTH + this.bodyLength - this.avail);
    return this.avail > 0 ? Math.max(0, BHS_LENGTH - this.avail) : 0;
  }

  /** True between the first byte of a PDU and its last (a close here means a truncated PDU). */
  get midPdu(): boolean {
    return this.avail > 0 || this.bhs !== undefined;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.avail += chunk.length;
  }

  next(): FrameResult {
    if (!this.bhs) {
      if (this.avail < BHS_LENGTH + (this.limits.headerDigest ? 4 : 0) && this.avail < BHS_LENGTH) return { kind: 'need' };
      const bhs = this.peek(BHS_LENGTH);
      const ahsLen = totalAhsLengthOf(bhs);
      const dataLen = dataSegmentLengthOf(bhs);
      if (ahsLen > MAX_AHS_LENGTH) {
        return { kind: 'error', code: 'ahs-too-long', bhs, message: `TotalAHSLength ${ahsLen} exceeds ${MAX_AHS_LENGTH}` };
      }
      if (dataLen > this.limits.maxRecvDataSegmentLength) {
        return {
          kind: 'error',
          code: 'data-segment-too-long',
          bhs,
          message: `DataSegmentLength ${dataLen} exceeds MaxRecvDataSegmentLength ${this.limits.maxRecvDataSegmentLength}`,
        };
      }
      this.bhs = bhs;
      this.bodyLength =
        ahsLen + (this.limits.headerDigest ? 4 : 0) + dataLen + padLength(dataLen) + (this.limits.dataDigest && dataLen ? 4 : 0);
    }
    const total = BHS_LENGTH + this.bodyLength;
    if (this.avail < total) return { kind: 'need' };
    const bhsPeek = this.bhs;
    this.bhs = undefined;
    this.lastRelease = undefined;
    const ahsLen = totalAhsLengthOf(bhsPeek);
    const dataLen = dataSegmentLengthOf(bhsPeek);
    const headLen = BHS_LENGTH + ahsLen + (this.limits.headerDigest ? 4 : 0);
    // Only SCSI Command and Data-Out data is held by a task that gives a pooled copy back. It is taken
    // apart from the header so that it starts where a pooled buffer starts: aligned, when an O_DIRECT
    // backstore asked the pool for that, the write goes to the kernel without a bounce copy.
    const op = bhsPeek[0]! & 0x3f;
    const split = dataLen > 0 && (op === InitiatorOpcode.SCSI_COMMAND || op === InitiatorOpcode.DATA_OUT);
    const head = this.take(split ? headLen : total);
    // No view is made where the PDU has nothing after its header or the head is the BHS alone: most
    // PDUs (commands without data, Data-Out headers) are just that, and each view is an object.
    const body = split ? this.take(total - headLen, true) : total === headLen ? NO_BYTES : head.subarray(headLen);
    // take() set it when the data went into a pooled buffer (TypeScript cannot see that).
    const release = this.lastRelease as (() => void) | undefined;
    const bhs = head.length === BHS_LENGTH ? head : head.subarray(0, BHS_LENGTH);
    const ahs = ahsLen === 0 ? NO_BYTES : head.subarray(BHS_LENGTH, BHS_LENGTH + ahsLen);
    if (this.limits.headerDigest) {
      const want = head.readUInt32LE(BHS_LENGTH + ahsLen);
      if (digestOf(bhs, ahs) !== want) {
        release?.();
        return { kind: 'error', code: 'header-digest', bhs, message: 'header digest (CRC32C) mismatch' };
      }
    }
    const data = dataLen === 0 ? NO_BYTES : body.subarray(0, dataLen);
    if (this.limits.dataDigest && dataLen) {
      const padded = body.subarray(0, dataLen + padLength(dataLen));
      const want = body.readUInt32LE(padded.length);
      if (digestOf(padded) !== want) {
        release?.();
        return { kind: 'error', code: 'data-digest', bhs, message: 'data digest (CRC32C) mismatch' };
      }
    }
    return { kind: 'pdu', pdu: release ? { bhs, ahs, data, release } : { bhs, ahs, data } };
  }

  /** The first chunk is consumed. In copyOut mode nothing points into it any more (take copies). */
  private dropFirst(): void {
    const c = this.chunks.shift();
    this.head = 0;
    if (this.owned && c === this.owned.chunk) {
      this.owned.release();
      this.owned = undefined;
    }
  }

  /** Copy of the first n bytes without consuming them (n <= avail). */
  private peek(n: number): Buffer {
    const first = this.chunks[0]!;
    if (first.length - this.head >= n) {
      const view = first.subarray(this.head, this.head + n);
      return this.copyOut ? Buffer.from(view) : view;
    }
    const out = Buffer.allocUnsafe(n);
    let got = 0;
    let i = 0;
    let start = this.head;
    while (got < n) {
      const c = this.chunks[i++]!;
      const k = Math.min(n - got, c.length - start);
      c.copy(out, got, start, start + k);
      got += k;
      start = 0;
    }
    return out;
  }

  /** Consume n bytes: a view when they sit in one chunk, else one copy. */
  private take(n: number, pooled = false): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length - this.head >= n && !this.copyOut) {
      out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) {
        this.dropFirst();
      }
    } else {
      // Spans reads (or the chunk is reused): one copy, into a pooled buffer for SCSI data.
      if (pooled && n > 512) {
        const lent = dataInPool.acquire(n);
        out = lent.data;
        this.lastRelease = lent.release;
      } else {
        out = Buffer.allocUnsafe(n);
      }
      let got = 0;
      while (got < n) {
        const c = this.chunks[0]!;
        const k = Math.min(n - got, c.length - this.head);
        c.copy(out, got, this.head, this.head + k);
        got += k;
        this.head += k;
        if (this.head === c.length) this.dropFirst();
      }
    }
    this.avail -= n;
    return out;
  }
}

/** Serialize an outgoing PDU into wire chunks (header, optional digest, data, padding, digest). */
export function frameOut(bhs: Buffer, data: Buffer | undefined, headerDigest: boolean, dataDigest: boolean): Buffer[] {
  const out: Buffer[] = [];
  if (headerDigest) {
    const withDigest = Buffer.allocUnsafe(bhs.length + 4);
    bhs.copy(withDigest, 0);
    withDigest.writeUInt32LE(digestOf(bhs), bhs.length);
    out.push(withDigest);
  } else {
    out.push(bhs);
  }
  if (data && data.length) {
    out.push(data);
    const pad = padLength(data.length);
    const padBuf = pad ? ZERO_PAD.subarray(0, pad) : undefined;
    if (padBuf) out.push(padBuf);
    if (dataDigest) {
      const d = Buffer.allocUnsafe(4);
      d.writeUInt32LE(padBuf ? digestOf(data, padBuf) : digestOf(data), 0);
      out.push(d);
    }
  }
  return out;
}

const ZERO_PAD = Buffer.alloc(4);
