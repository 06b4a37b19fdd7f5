/**
 * Text Request/Response exchanges in Full Feature Phase (RFC 7143 §6.1.1, §11.10, §11.11): assembling
 * initiator continuations (C bit), splitting long answers across responses with a Target Transfer Tag,
 * and handing complete key sets to a responder (SendTargets, declarations).
 */
import { Buffer } from 'node:buffer';
import { RESERVED_TAG, RejectReason } from './constants.js';
import { buildTextResponse, type TextRequestPdu } from './pdu-login.js';
import type { SeqNumbers } from './pdu-scsi.js';
import type { OutPdu } from './pdu.js';
import { type KeyValues, decodeTextKeys, encodeTextKeys } from './text-keys.js';

export interface TextResponder {
  /** Answer a complete set of keys from the initiator. */
  respond(pairs: KeyValues): KeyValues;
}

export type TextOutcome = { ok: true; pdu: OutPdu } | { ok: false; reason: number };

/** Bound on one text exchange in either direction. */
const MAX_TEXT = 1 << 20;

export class TextExchange {
  private inbound: { itt: number; ttt: number; parts: Buffer[]; length: number } | undefined;
  private outbound: { itt: number; ttt: number; data: Buffer; offset: number } | undefined;
  private nextTtt = 0x40000000;

  constructor(private readonly responder: TextResponder) {}

  handle(req: TextRequestPdu, takeSeq: () => SeqNumbers, maxSegment: number): TextOutcome {
    if (req.ttt !== RESERVED_TAG) {
      if (this.outbound && this.outbound.ttt === req.ttt && this.outbound.itt === req.itt) return { ok: true, pdu: this.nextChunk(takeSeq, maxSegment) };
      if (!(this.inbound && this.inbound.ttt === req.ttt && this.inbound.itt === req.itt)) return { ok: false, reason: RejectReason.INVALID_PDU_FIELD };
    } else {
      // A new exchange replaces an unfinished one (§6.1.1: the initiator may reset by starting over).
      this.outbound = undefined;
      this.inbound = undefined;
    }
    const inb = this.inbound ?? { itt: req.itt, ttt: this.allocTtt(), parts: [], length: 0 };
    if (inb.length + req.data.length > MAX_TEXT) {
      this.inbound = undefined;
      return { ok: false, reason: RejectReason.PROTOCOL_ERROR };
    }
    inb.parts.push(req.data);
    inb.length += req.data.length;
    if (req.cont) {
      this.inbound = inb;
      return { ok: true, pdu: buildTextResponse(req.itt, inb.ttt, false, false, takeSeq(), Buffer.alloc(0)) };
    }
    this.inbound = undefined;
    const decoded = decodeTextKeys(Buffer.concat(inb.parts));
    if (!decoded.ok) return { ok: false, reason: RejectReason.PROTOCOL_ERROR };
    const answer = encodeTextKeys(this.responder.respond(decoded.pairs));
    this.outbound = { itt: req.itt, ttt: this.allocTtt(), data: answer, offset: 0 };
    return { ok: true, pdu: this.nextChunk(takeSeq, maxSegment) };
  }

  private nextChunk(takeSeq: () => SeqNumbers, maxSegment: number): OutPdu {
    const o = this.outbound!;
    const n = Math.min(maxSegment, o.data.length - o.offset);
    const chunk = o.data.subarray(o.offset, o.offset + n);
    o.offset += n;
    const done = o.offset >= o.data.length;
    if (done) this.outbound = undefined;
    // §11.11.1: C=1 with F=0 while more text follows; the final response has F=1 and a reserved TTT.
    return buildTextResponse(o.itt, o.ttt, done, !done, takeSeq(), chunk);
  }

  private allocTtt(): number {
    this.nextTtt = this.nextTtt >= 0x7fffffff ? 0x40000000 : this.nextTtt + 1;
    return this.nextTtt;
  }
}
