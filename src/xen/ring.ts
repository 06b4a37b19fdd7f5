/**
 * vscsiif shared-ring layout and the request/response codecs (Xen public/io/vscsiif.h and
 * public/io/ring.h; see /work/shared/protocols/xen-vscsiif.md §1–§3).
 *
 * Codecs are pure: `parseRequest` works on a private 252-byte copy that the caller took out of the
 * shared page exactly once (XSA-155), and never throws — every defect becomes a typed error that the
 * backend answers with the protocol's error result.
 */
import { Buffer } from 'node:buffer';

/** ring.h: page size the ring and every grant describe. */
export const XEN_PAGE_SIZE = 4096;
/** ring.h `struct vscsiif_sring`: req_prod, req_event, rsp_prod, rsp_event, pvt, pad[44]. */
export const SRING_REQ_PROD = 0;
export const SRING_REQ_EVENT = 4;
export const SRING_RSP_PROD = 8;
export const SRING_RSP_EVENT = 12;
export const SRING_HEADER_SIZE = 64;
/** sizeof(union vscsiif_sring_entry): both structs are 252 bytes. */
export const VSCSIIF_ENTRY_SIZE = 252;
/** __CONST_RING_SIZE(vscsiif, 4096) = round_down_pow2((4096 - 64) / 252) = 16 (= Linux VSCSIIF_MAX_REQS). */
export const VSCSIIF_RING_SIZE = 16;

/** vscsiif.h actions. */
export const VSCSIIF_ACT_SCSI_CDB = 1;
export const VSCSIIF_ACT_SCSI_ABORT = 2;
export const VSCSIIF_ACT_SCSI_RESET = 3;
/** Deprecated, reserved value; answered as an invalid request. */
export const VSCSIIF_ACT_SCSI_SG_PRESET = 4;

/** vscsiif.h limits. */
export const VSCSIIF_MAX_COMMAND_SIZE = 16;
export const VSCSIIF_SG_TABLESIZE = 26;
export const VSCSIIF_SENSE_BUFFERSIZE = 96;
/** nr_segments bit 7: seg[] describes pages holding segment arrays (feature-sg-grant). */
export const VSCSIIF_SG_GRANT = 0x80;
/** sizeof(struct scsiif_request_segment) = 8: gref u32, offset u16, length u16. */
export const VSCSIIF_SEGMENT_SIZE = 8;
export const VSCSIIF_SG_PER_PAGE = XEN_PAGE_SIZE / VSCSIIF_SEGMENT_SIZE;

/** Linux DMA directions carried in sc_data_direction. */
export const DMA_BIDIRECTIONAL = 0;
export const DMA_TO_DEVICE = 1;
export const DMA_FROM_DEVICE = 2;
export const DMA_NONE = 3;

/** vscsiif.h XEN_VSCSIIF_RSLT_HOST_* (numerically Linux DID_*), placed in rslt bits 23:16. */
export const XEN_VSCSIIF_RSLT_HOST = {
  OK: 0,
  NO_CONNECT: 1,
  BUS_BUSY: 2,
  TIME_OUT: 3,
  BAD_TARGET: 4,
  ABORT: 5,
  PARITY: 6,
  ERROR: 7,
  RESET: 8,
  BAD_INTR: 9,
  PASSTHROUGH: 10,
  SOFT_ERROR: 11,
  IMM_RETRY: 12,
  REQUEUE: 13,
  TRANSPORT_DISRUPTED: 14,
  TRANSPORT_FAILFAST: 15,
  TARGET_FAILURE: 16,
  NEXUS_FAILURE: 17,
  ALLOC_FAILURE: 18,
  MEDIUM_ERROR: 19,
  TRANSPORT_MARGINAL: 20,
} as const;
/** vscsiif.h: result of ABORT and RESET requests (the frontend compares for equality). */
export const XEN_VSCSIIF_RSLT_RESET_SUCCESS = 0x2002;
export const XEN_VSCSIIF_RSLT_RESET_FAILED = 0x2003;

/** rslt = host << 16 | status (vscsiif.h XEN_VSCSIIF_RSLT_HOST / XEN_VSCSIIF_RSLT_STATUS). */
export function encodeResult(host: number, status: number): number {
  return (((host & 0xff) << 16) | (status & 0xff)) >>> 0;
}
export const resultHost = (rslt: number): number => (rslt >>> 16) & 0xff;
export const resultStatus = (rslt: number): number => rslt & 0xff;

/** Offset of ring slot `idx` (free-running index) in the shared page. */
export function slotOffset(idx: number): number {
  return SRING_HEADER_SIZE + (idx & (VSCSIIF_RING_SIZE - 1)) * VSCSIIF_ENTRY_SIZE;
}

/** Modular difference of two free-running ring indices (ring.h RING_IDX is unsigned 32-bit). */
export const ringDiff = (a: number, b: number): number => (a - b) >>> 0;

export interface Segment {
  gref: number;
  offset: number;
  length: number;
}

/** A request as the frontend sent it: every field copied, nothing validated beyond its width. */
export interface VscsiifRequest {
  rqid: number;
  act: number;
  cmdLen: number;
  /** All 16 CDB bytes as sent; only the first `cmdLen` are meaningful. */
  cmnd: Buffer;
  timeoutPerCommand: number;
  channel: number;
  id: number;
  lun: number;
  refRqid: number;
  direction: number;
  /** Raw nr_segments byte (bit 7 = VSCSIIF_SG_GRANT). */
  nrSegmentsRaw: number;
  /** seg[0 .. nr_segments & 0x7f) when that count is ≤ 26; otherwise empty (the request is invalid). */
  segments: Segment[];
}

/** Decode one request from a private 252-byte copy. Never throws on content; only on a short buffer. */
export function decodeRequest(b: Buffer): VscsiifRequest {
  if (b.length < VSCSIIF_ENTRY_SIZE) throw new RangeError(`vscsiif request copy is ${b.length} bytes, need 252`);
  const nrRaw = b[31]!;
  const n = nrRaw & 0x7f;
  const segments: Segment[] = [];
  if (n <= VSCSIIF_SG_TABLESIZE) {
    for (let i = 0; i < n; i++) {
      const o = 32 + i * VSCSIIF_SEGMENT_SIZE;
      segments.push({ gref: b.readUInt32LE(o), offset: b.readUInt16LE(o + 4), length: b.readUInt16LE(o + 6) });
    }
  }
  return {
    rqid: b.readUInt16LE(0),
    act: b[2]!,
    cmdLen: b[3]!,
    cmnd: Buffer.from(b.subarray(4, 4 + VSCSIIF_MAX_COMMAND_SIZE)),
    timeoutPerCommand: b.readUInt16LE(20),
    channel: b.readUInt16LE(22),
    id: b.readUInt16LE(24),
    lun: b.readUInt16LE(26),
    refRqid: b.readUInt16LE(28),
    direction: b[30]!,
    nrSegmentsRaw: nrRaw,
    segments,
  };
}

/** Encode a request into a 252-byte slot image (frontend side; also used by tests and the emulator). */
export function encodeRequest(r: {
  rqid: number;
  act: number;
  cdb?: Buffer;
  cmdLen?: number;
  channel?: number;
  id?: number;
  lun?: number;
  refRqid?: number;
  direction: number;
  nrSegmentsRaw?: number;
  segments?: Segment[];
  timeoutPerCommand?: number;
}): Buffer {
  const b = Buffer.alloc(VSCSIIF_ENTRY_SIZE);
  const cdb = r.cdb ?? Buffer.alloc(0);
  b.writeUInt16LE(r.rqid & 0xffff, 0);
  b[2] = r.act & 0xff;
  b[3] = (r.cmdLen ?? cdb.length) & 0xff;
  cdb.copy(b, 4, 0, Math.min(cdb.length, VSCSIIF_MAX_COMMAND_SIZE));
  b.writeUInt16LE((r.timeoutPerCommand ?? 0) & 0xffff, 20);
  b.writeUInt16LE((r.channel ?? 0) & 0xffff, 22);
  b.writeUInt16LE((r.id ?? 0) & 0xffff, 24);
  b.writeUInt16LE((r.lun ?? 0) & 0xffff, 26);
  b.writeUInt16LE((r.refRqid ?? 0) & 0xffff, 28);
  b[30] = r.direction & 0xff;
  const segs = r.segments ?? [];
  b[31] = (r.nrSegmentsRaw ?? segs.length) & 0xff;
  segs.slice(0, VSCSIIF_SG_TABLESIZE).forEach((s, i) => encodeSegment(b, 32 + i * VSCSIIF_SEGMENT_SIZE, s));
  return b;
}

export function encodeSegment(b: Buffer, off: number, s: Segment): void {
  b.writeUInt32LE(s.gref >>> 0, off);
  b.writeUInt16LE(s.offset & 0xffff, off + 4);
  b.writeUInt16LE(s.length & 0xffff, off + 6);
}

export function decodeSegments(b: Buffer, count: number): Segment[] {
  const out: Segment[] = [];
  const n = Math.min(count, Math.floor(b.length / VSCSIIF_SEGMENT_SIZE));
  for (let i = 0; i < n; i++) {
    const o = i * VSCSIIF_SEGMENT_SIZE;
    out.push({ gref: b.readUInt32LE(o), offset: b.readUInt16LE(o + 4), length: b.readUInt16LE(o + 6) });
  }
  return out;
}

export interface VscsiifResponse {
  rqid: number;
  rslt: number;
  sense?: Buffer;
  residual: number;
}

/**
 * Encode a response slot image. Every byte of the 252 is written (zero padding, zero sense beyond
 * sense_len): leaking backend memory through response padding is CVE-2017-10911's lesson.
 * Sense longer than 96 bytes is truncated to VSCSIIF_SENSE_BUFFERSIZE.
 */
export function encodeResponse(r: VscsiifResponse): Buffer {
  const b = Buffer.alloc(VSCSIIF_ENTRY_SIZE);
  b.writeUInt16LE(r.rqid & 0xffff, 0);
  // act (offset 2) is deprecated and left 0, as the Linux backend does.
  const senseLen = r.sense ? Math.min(r.sense.length, VSCSIIF_SENSE_BUFFERSIZE) : 0;
  b[3] = senseLen;
  if (r.sense && senseLen > 0) r.sense.copy(b, 4, 0, senseLen);
  b.writeInt32LE(r.rslt | 0, 100);
  b.writeUInt32LE(Math.max(0, Math.min(r.residual, 0xffffffff)) >>> 0, 104);
  return b;
}

/** Decode a response (frontend side). */
export function decodeResponse(b: Buffer): VscsiifResponse & { senseLen: number } {
  const senseLen = b[3]!;
  return {
    rqid: b.readUInt16LE(0),
    senseLen,
    sense: Buffer.from(b.subarray(4, 4 + Math.min(senseLen, VSCSIIF_SENSE_BUFFERSIZE))),
    rslt: b.readUInt32LE(100),
    residual: b.readUInt32LE(104),
  };
}

/**
 * Length of sense data worth sending, as the Linux backend decides: only sense that parses as SCSI
 * sense (response code 0x70–0x73), `min(8 + additional length, 96)`, never more than we have.
 */
export function senseLengthToSend(sense: Buffer | undefined): number {
  if (!sense || sense.length < 8) return 0;
  const code = sense[0]! & 0x7f;
  if (code < 0x70 || code > 0x73) return 0;
  return Math.min(8 + sense[7]!, VSCSIIF_SENSE_BUFFERSIZE, sense.length);
}
