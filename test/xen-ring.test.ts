import { describe, expect, it } from 'vitest';
import {
  VSCSIIF_ENTRY_SIZE,
  VSCSIIF_RING_SIZE,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  encodeResult,
  ringDiff,
  senseLengthToSend,
  slotOffset,
  XEN_VSCSIIF_RSLT_HOST,
} from '../src/xen/ring.js';
import { checkDataSegments, decodeIndirectTables, planSegments, sliceSegments } from '../src/xen/segments.js';

/** A request as Linux scsifront builds it for READ(10) of 8 blocks into two pages (annotated bytes). */
const READ10_FIXTURE = (() => {
  const b = Buffer.alloc(252);
  b.writeUInt16LE(0x0005, 0); // rqid 5
  b[2] = 1; // act = VSCSIIF_ACT_SCSI_CDB
  b[3] = 10; // cmd_len
  Buffer.from([0x28, 0, 0, 0, 0x10, 0, 0, 0, 8, 0]).copy(b, 4); // READ(10) lba 16, 8 blocks
  b.writeUInt16LE(0, 20); // timeout_per_command
  b.writeUInt16LE(0, 22); // channel
  b.writeUInt16LE(1, 24); // id
  b.writeUInt16LE(2, 26); // lun
  b.writeUInt16LE(0, 28); // ref_rqid
  b[30] = 2; // DMA_FROM_DEVICE
  b[31] = 2; // nr_segments
  b.writeUInt32LE(100, 32); // seg[0].gref
  b.writeUInt16LE(0, 36); // seg[0].offset
  b.writeUInt16LE(4096, 38); // seg[0].length... (page-aligned buffer)
  b.writeUInt32LE(101, 40); // seg[1].gref
  b.writeUInt16LE(0, 44);
  b.writeUInt16LE(0, 46); // zero-length second segment: allowed, harmless
  return b;
})();

describe('xen ring layout', () => {
  it('has 16 slots of 252 bytes after the 64-byte header', () => {
    expect(VSCSIIF_RING_SIZE).toBe(16);
    expect(VSCSIIF_ENTRY_SIZE).toBe(252);
    expect(slotOffset(0)).toBe(64);
    expect(slotOffset(15)).toBe(64 + 15 * 252);
    expect(slotOffset(16)).toBe(64);
    expect(slotOffset(0xffffffff)).toBe(64 + 15 * 252);
    expect(64 + 16 * 252).toBeLessThanOrEqual(4096);
  });
  it('compares free-running indices modulo 2^32', () => {
    expect(ringDiff(3, 0xfffffffe)).toBe(5);
    expect(ringDiff(0, 1)).toBe(0xffffffff);
  });
});

describe('xen request codec', () => {
  it('decodes the annotated READ(10) fixture', () => {
    const r = decodeRequest(READ10_FIXTURE);
    expect(r).toMatchObject({ rqid: 5, act: 1, cmdLen: 10, channel: 0, id: 1, lun: 2, refRqid: 0, direction: 2, nrSegmentsRaw: 2 });
    expect(r.cmnd.subarray(0, 10)).toEqual(Buffer.from([0x28, 0, 0, 0, 0x10, 0, 0, 0, 8, 0]));
    expect(r.segments).toEqual([
      { gref: 100, offset: 0, length: 4096 },
      { gref: 101, offset: 0, length: 0 },
    ]);
  });
  it('encodes back to the same bytes', () => {
    const r = decodeRequest(READ10_FIXTURE);
    const again = encodeRequest({ rqid: r.rqid, act: r.act, cdb: r.cmnd.subarray(0, 10), channel: 0, id: 1, lun: 2, direction: 2, segments: r.segments });
    expect(again).toEqual(READ10_FIXTURE);
  });
  it('copies: later changes to the source do not change the decoded request', () => {
    const src = Buffer.from(READ10_FIXTURE);
    const r = decodeRequest(src);
    src.fill(0xff);
    expect(r.cmnd[0]).toBe(0x28);
    expect(r.segments[0]!.gref).toBe(100);
  });
  it('never throws on random bytes and keeps fields in range', () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 2000; i++) {
      const b = Buffer.alloc(252);
      for (let j = 0; j < 252; j++) b[j] = rnd();
      const r = decodeRequest(b);
      expect(r.segments.length).toBeLessThanOrEqual(26);
      expect(r.cmnd.length).toBe(16);
      const plan = planSegments(r, 128);
      expect(plan).toBeDefined();
    }
  });
  it('ignores seg[] when nr_segments claims more than 26', () => {
    const b = Buffer.from(READ10_FIXTURE);
    b[31] = 27;
    expect(decodeRequest(b).segments).toEqual([]);
    expect(planSegments(decodeRequest(b), 128)).toMatchObject({ kind: 'too-many-segments' });
  });
});

describe('xen response codec', () => {
  it('writes every byte: zeroed sense tail and reserved words', () => {
    const sense = Buffer.from([0x70, 0, 5, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0x24, 0, 0, 0, 0, 0]);
    const r = encodeResponse({ rqid: 7, rslt: encodeResult(0, 2), sense, residual: 512 });
    expect(r.length).toBe(252);
    expect(r.readUInt16LE(0)).toBe(7);
    expect(r[2]).toBe(0); // act: deprecated, left 0
    expect(r[3]).toBe(18);
    expect(r.subarray(4, 22)).toEqual(sense);
    expect(r.subarray(22, 100).every((x) => x === 0)).toBe(true);
    expect(r.readInt32LE(100)).toBe(0x02);
    expect(r.readUInt32LE(104)).toBe(512);
    expect(r.subarray(108).every((x) => x === 0)).toBe(true);
  });
  it('truncates sense to 96 bytes', () => {
    const r = encodeResponse({ rqid: 1, rslt: 2, sense: Buffer.alloc(200, 0x11), residual: 0 });
    expect(r[3]).toBe(96);
    expect(decodeResponse(r).sense!.length).toBe(96);
  });
  it('encodes host byte in bits 23:16', () => {
    expect(encodeResult(XEN_VSCSIIF_RSLT_HOST.NO_CONNECT, 0)).toBe(0x10000);
    expect(encodeResult(XEN_VSCSIIF_RSLT_HOST.ERROR, 0)).toBe(0x70000);
    expect(encodeResult(0, 0x18)).toBe(0x18);
  });
  it('sends only sense that parses, min(8 + additional length, 96)', () => {
    expect(senseLengthToSend(undefined)).toBe(0);
    expect(senseLengthToSend(Buffer.from([0x00, 0, 0, 0, 0, 0, 0, 10]))).toBe(0);
    const fixed = Buffer.alloc(18);
    fixed[0] = 0x70;
    fixed[7] = 10;
    expect(senseLengthToSend(fixed)).toBe(18);
    const desc = Buffer.alloc(120);
    desc[0] = 0x72;
    desc[7] = 200;
    expect(senseLengthToSend(desc)).toBe(96);
  });
});

describe('xen segments', () => {
  const req = (nr: number, segs: Array<{ gref: number; offset: number; length: number }>) =>
    decodeRequest(encodeRequest({ rqid: 1, act: 1, cdb: Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]), direction: 2, nrSegmentsRaw: nr, segments: segs }));
  it('accepts segments inside their page', () => {
    expect(checkDataSegments([{ gref: 1, offset: 0, length: 4096 }, { gref: 2, offset: 4095, length: 1 }])).toEqual({ total: 4097 });
  });
  it('rejects offset + length past the page, offset 4096, length 4097', () => {
    for (const s of [{ offset: 3900, length: 512 }, { offset: 4096, length: 0 }, { offset: 0, length: 4097 }]) {
      expect(checkDataSegments([{ gref: 1, ...s }])).toMatchObject({ kind: 'segment-outside-page' });
    }
  });
  it('indirect: needs feature-sg-grant, lengths multiple of 8, total within the advertised limit', () => {
    expect(planSegments(req(0x81, [{ gref: 9, offset: 0, length: 64 }]), 0)).toMatchObject({ kind: 'indirect-not-negotiated' });
    expect(planSegments(req(0x81, [{ gref: 9, offset: 0, length: 12 }]), 128)).toMatchObject({ kind: 'bad-indirect-descriptor' });
    expect(planSegments(req(0x81, [{ gref: 9, offset: 4000, length: 200 }]), 128)).toMatchObject({ kind: 'bad-indirect-descriptor' });
    expect(planSegments(req(0x81, [{ gref: 9, offset: 0, length: 129 * 8 }]), 128)).toMatchObject({ kind: 'too-many-data-segments' });
    expect(planSegments(req(0x82, [{ gref: 9, offset: 3968, length: 128 }, { gref: 10, offset: 0, length: 64 }]), 128)).toEqual({
      kind: 'indirect',
      tables: [{ gref: 9, offset: 3968, length: 128 }, { gref: 10, offset: 0, length: 64 }],
      descriptorCount: 24,
    });
  });
  it('decodes indirect tables and checks each data segment', () => {
    const t = Buffer.alloc(16);
    t.writeUInt32LE(5, 0);
    t.writeUInt16LE(0, 4);
    t.writeUInt16LE(4096, 6);
    t.writeUInt32LE(6, 8);
    t.writeUInt16LE(100, 12);
    t.writeUInt16LE(4000, 14);
    expect(decodeIndirectTables(t, 2)).toMatchObject({ kind: 'segment-outside-page' });
    t.writeUInt16LE(3996, 14);
    expect(decodeIndirectTables(t, 2)).toEqual({ segments: [{ gref: 5, offset: 0, length: 4096 }, { gref: 6, offset: 100, length: 3996 }], total: 8092 });
  });
  it('slices the concatenated buffer into per-page ranges', () => {
    const segs = [
      { gref: 1, offset: 512, length: 3584 },
      { gref: 2, offset: 0, length: 4096 },
      { gref: 3, offset: 0, length: 1000 },
    ];
    expect(sliceSegments(segs, 0, 8680)).toEqual(segs);
    expect(sliceSegments(segs, 3000, 2000)).toEqual([
      { gref: 1, offset: 3512, length: 584 },
      { gref: 2, offset: 0, length: 1416 },
    ]);
    expect(sliceSegments(segs, 7680, 1000)).toEqual([{ gref: 3, offset: 0, length: 1000 }]);
  });
});
