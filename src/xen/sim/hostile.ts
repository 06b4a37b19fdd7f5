/**
 * The hostile frontend: tries what xen-vscsiif.md §7 warns about against the backend and reports
 * one line per attack (what was sent, how the backend answered). It also keeps canary pages that are
 * never granted and checks at the end that nothing wrote them.
 */
import { Buffer } from 'node:buffer';
import {
  DMA_BIDIRECTIONAL,
  DMA_FROM_DEVICE,
  DMA_TO_DEVICE,
  SRING_REQ_PROD,
  SRING_RSP_PROD,
  VSCSIIF_ACT_SCSI_CDB,
  VSCSIIF_ACT_SCSI_SG_PRESET,
  VSCSIIF_SG_GRANT,
  XEN_PAGE_SIZE,
  XEN_VSCSIIF_RSLT_HOST,
  encodeRequest,
  encodeSegment,
  resultHost,
} from '../ring.js';
import { XenbusState, parseState } from '../xenbus-nodes.js';
import { ScsiFront, FrontCommandResult } from './frontend.js';
import { GTF_permit_access, GuestMemoryFile } from './guest-memory.js';

export interface HostileResult {
  lines: string[];
  /** Attacks whose outcome was not what the protocol requires. */
  failures: number;
}

const ANSWER_TIMEOUT_MS = 1500;
const HALT_WAIT_MS = 300;
const CANARY_FRAMES = 4;

const fmt = (r: FrontCommandResult | undefined): string =>
  r === undefined ? 'no answer' : `rslt 0x${r.rslt.toString(16)} (host ${resultHost(r.rslt)})`;

export async function runHostile(front: ScsiFront, memory: GuestMemoryFile, addr: { channel: number; id: number; lun: number }): Promise<HostileResult> {
  const lines: string[] = [];
  let failures = 0;
  const dom = front.domid;
  const report = (attack: string, sent: string, answer: string, ok: boolean): void => {
    lines.push(`hostile dom ${dom}: ${attack}: sent ${sent} -> ${answer}${ok ? '' : '  [UNEXPECTED]'}`);
    if (!ok) failures++;
  };
  const a = addr;
  const read10 = (blocks: number): Buffer => Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, blocks, 0]);
  const write10 = (blocks: number): Buffer => Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, blocks, 0]);
  const isHost = (r: FrontCommandResult | undefined, h: number): boolean => r !== undefined && resultHost(r.rslt) === h;

  // Consume the power-on unit attention first, so a CHECK CONDITION cannot hide a data-path answer.
  for (let i = 0; i < 4; i++) {
    const r = await front.command(a, Buffer.alloc(6));
    if (r.rslt === 0) break;
  }
  // Canary pages: filled, never granted; the backend must never write them.
  const canaries: number[] = [];
  for (let i = 0; i < CANARY_FRAMES; i++) {
    const f = front.allocFrame();
    memory.writeFrame(f, 0, Buffer.alloc(XEN_PAGE_SIZE, 0xc5), 0, XEN_PAGE_SIZE);
    canaries.push(f);
  }

  const dataPage = (readOnly: boolean): { frame: number; ref: number } => {
    const frame = front.allocFrame();
    return { frame, ref: front.grant(frame, readOnly) };
  };

  // 1. nr_segments over VSCSIIF_SG_TABLESIZE.
  {
    const p = dataPage(false);
    const r = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(1), ...a, direction: DMA_FROM_DEVICE, nrSegmentsRaw: 27, segments: [{ gref: p.ref, offset: 0, length: 512 }] }),
      ANSWER_TIMEOUT_MS,
    );
    report('segment count over limit', 'nr_segments=27 (limit 26)', fmt(r), isHost(r, XEN_VSCSIIF_RSLT_HOST.ERROR));
  }
  // 2. Indirect descriptor count over the advertised feature-sg-grant, and a length not a multiple of 8.
  {
    const table = dataPage(true);
    const descs = Buffer.alloc(XEN_PAGE_SIZE);
    for (let i = 0; i < 512; i++) encodeSegment(descs, i * 8, { gref: canaries.length, offset: 0, length: 512 });
    memory.writeFrame(table.frame, 0, descs, 0, XEN_PAGE_SIZE);
    const r1 = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(8), ...a, direction: DMA_FROM_DEVICE, nrSegmentsRaw: VSCSIIF_SG_GRANT | 1, segments: [{ gref: table.ref, offset: 0, length: 4096 }] }),
      ANSWER_TIMEOUT_MS,
    );
    report('indirect count over limit', '1 indirect page with 512 descriptors (advertised 128)', fmt(r1), isHost(r1, XEN_VSCSIIF_RSLT_HOST.ERROR));
    const r2 = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(1), ...a, direction: DMA_FROM_DEVICE, nrSegmentsRaw: VSCSIIF_SG_GRANT | 1, segments: [{ gref: table.ref, offset: 0, length: 12 }] }),
      ANSWER_TIMEOUT_MS,
    );
    report('indirect table length', 'indirect length 12 (not a multiple of 8)', fmt(r2), isHost(r2, XEN_VSCSIIF_RSLT_HOST.ERROR));
  }
  // 3. Grant references: never granted, granted to another domain, revoked, read-only for a read.
  {
    const r1 = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(1), ...a, direction: DMA_FROM_DEVICE, segments: [{ gref: 4000, offset: 0, length: 512 }] }),
      ANSWER_TIMEOUT_MS,
    );
    report('bad grant reference', 'gref 4000 (never granted)', fmt(r1), isHost(r1, XEN_VSCSIIF_RSLT_HOST.ERROR));
    const other = front.allocFrame();
    const ref = front.grant(other, false);
    memory.writeGrant(ref, { flags: GTF_permit_access, domid: 999, frame: canaries[0]! });
    const r2 = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(1), ...a, direction: DMA_FROM_DEVICE, segments: [{ gref: ref, offset: 0, length: 512 }] }),
      ANSWER_TIMEOUT_MS,
    );
    report('grant for another domain', `gref ${ref} granted to dom 999 (a canary page)`, fmt(r2), isHost(r2, XEN_VSCSIIF_RSLT_HOST.ERROR));
    const p = dataPage(false);
    front.endGrant(p.ref);
    const r3 = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(1), ...a, direction: DMA_FROM_DEVICE, segments: [{ gref: p.ref, offset: 0, length: 512 }] }),
      ANSWER_TIMEOUT_MS,
    );
    report('revoked grant', `gref ${p.ref} revoked before publishing`, fmt(r3), isHost(r3, XEN_VSCSIIF_RSLT_HOST.ERROR));
    const ro = dataPage(true);
    const r4 = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(1), ...a, direction: DMA_FROM_DEVICE, segments: [{ gref: ro.ref, offset: 0, length: 512 }] }),
      ANSWER_TIMEOUT_MS,
    );
    report('read into a read-only grant', `READ into read-only gref ${ro.ref}`, fmt(r4), isHost(r4, XEN_VSCSIIF_RSLT_HOST.ERROR));
  }
  // 3b. Grants revoked while the request is in flight (after publishing, before the answer).
  {
    const pages = Array.from({ length: 8 }, () => dataPage(false));
    const r = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(64), ...a, direction: DMA_FROM_DEVICE, segments: pages.map((p) => ({ gref: p.ref, offset: 0, length: 4096 })) }),
      ANSWER_TIMEOUT_MS,
      () => pages.forEach((p) => memory.writeGrant(p.ref, { flags: 0, domid: 0, frame: 0 })),
    );
    // Either the backend finished before the revocation or its copy was refused: never a crash.
    const ok = r !== undefined && (r.rslt === 0 || resultHost(r.rslt) === XEN_VSCSIIF_RSLT_HOST.ERROR);
    report('grants revoked in flight', '8 write grants revoked right after publishing a READ', fmt(r), ok);
  }
  // 3c. Indirect table rewritten after publishing (must be read once).
  {
    const table = dataPage(true);
    const datas = Array.from({ length: 30 }, () => dataPage(false));
    const descs = Buffer.alloc(30 * 8);
    datas.forEach((d, i) => encodeSegment(descs, i * 8, { gref: d.ref, offset: 0, length: 4096 }));
    memory.writeFrame(table.frame, 0, descs, 0, descs.length);
    const evil = Buffer.alloc(30 * 8);
    for (let i = 0; i < 30; i++) encodeSegment(evil, i * 8, { gref: 4090, offset: 4000, length: 4096 });
    const r = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(240), ...a, direction: DMA_FROM_DEVICE, nrSegmentsRaw: VSCSIIF_SG_GRANT | 1, segments: [{ gref: table.ref, offset: 0, length: 240 }] }),
      ANSWER_TIMEOUT_MS,
      () => {
        for (let i = 0; i < 50; i++) memory.writeFrame(table.frame, 0, evil, 0, evil.length);
      },
    );
    const ok = r !== undefined && (r.rslt === 0 || resultHost(r.rslt) === XEN_VSCSIIF_RSLT_HOST.ERROR);
    report('indirect table double fetch', '30-entry indirect table rewritten with out-of-page descriptors after publishing', fmt(r), ok);
  }
  // 4. offset + length past the page.
  {
    const p = dataPage(false);
    const r = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(1), ...a, direction: DMA_FROM_DEVICE, segments: [{ gref: p.ref, offset: 3900, length: 512 }] }),
      ANSWER_TIMEOUT_MS,
    );
    report('segment past its page', 'offset 3900 + length 512', fmt(r), isHost(r, XEN_VSCSIIF_RSLT_HOST.ERROR));
  }
  // 5. Header fields: cmd_len, act, direction, unknown LUN.
  {
    const cases: Array<[string, (rqid: number) => Buffer, number]> = [
      ['cmd_len 17', (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(0), cmdLen: 17, ...a, direction: 3 }), XEN_VSCSIIF_RSLT_HOST.ERROR],
      ['act SG_PRESET (4)', (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_SG_PRESET, cdb: read10(0), ...a, direction: 3 }), XEN_VSCSIIF_RSLT_HOST.ERROR],
      ['act 0xff', (rqid) => encodeRequest({ rqid, act: 0xff, cdb: read10(0), ...a, direction: 3 }), XEN_VSCSIIF_RSLT_HOST.ERROR],
      ['direction 7', (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(0), ...a, direction: 7 }), XEN_VSCSIIF_RSLT_HOST.ERROR],
      ['direction BIDIRECTIONAL', (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(0), ...a, direction: DMA_BIDIRECTIONAL }), XEN_VSCSIIF_RSLT_HOST.ERROR],
      ['unconfigured LUN 0:9:9', (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(0), channel: 0, id: 9, lun: 9, direction: 3 }), XEN_VSCSIIF_RSLT_HOST.NO_CONNECT],
    ];
    for (const [what, build, host] of cases) {
      const r = await front.raw(build, ANSWER_TIMEOUT_MS);
      report('bad request header', what, fmt(r), isHost(r, host));
    }
  }
  // 6. Double fetch: publish a valid WRITE, then keep rewriting the slot with garbage.
  {
    const p = dataPage(true);
    memory.writeFrame(p.frame, 0, Buffer.alloc(512, 0x77), 0, 512);
    const ring = front.ring;
    let rewrites = 0;
    const r = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: write10(1), ...a, direction: DMA_TO_DEVICE, segments: [{ gref: p.ref, offset: 0, length: 512 }] }),
      ANSWER_TIMEOUT_MS,
      (slot) => {
        // Everything but the rqid (kept so our own bookkeeping can match the answer).
        const junk = Buffer.alloc(250, 0xff);
        for (let i = 0; i < 200; i++, rewrites++) ring.memory.writeFrame(ring.frame, slot + 2, junk, 0, 250);
      },
    );
    // Whatever the backend copied is one consistent request: a good write or one error answer.
    const ok = r !== undefined && (r.rslt === 0 || resultHost(r.rslt) !== 0);
    report('double fetch', `valid WRITE, slot rewritten ${rewrites} times after publishing`, fmt(r), ok);
  }
  // 7. Event storm with nothing published; the ring must still answer afterwards.
  {
    for (let i = 0; i < 3000; i++) front.notifyBackend();
    const p = dataPage(false);
    const r = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(1), ...a, direction: DMA_FROM_DEVICE, segments: [{ gref: p.ref, offset: 0, length: 512 }] }),
      ANSWER_TIMEOUT_MS * 4,
    );
    report('event storm', '3000 notifications with an empty ring, then one READ', fmt(r), r !== undefined && r.rslt === 0);
  }
  // 8. Responses never consumed: publish 16 requests and do not read the answers; the backend may
  //    only ever produce one response per request (rsp_prod must stop at req_prod).
  {
    const ring = front.ring;
    const m = ring.memory;
    const p = dataPage(false);
    const base = m.load32(ring.frame, SRING_RSP_PROD);
    front.ignoreEvents = true;
    const start = ring.reqProdPvt();
    for (let i = 0; i < 16; i++) {
      const img = encodeRequest({ rqid: 100 + i, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(1), ...a, direction: DMA_FROM_DEVICE, segments: [{ gref: p.ref, offset: 0, length: 512 }] });
      m.writeFrame(ring.frame, 64 + ((start + i) & 15) * 252, img, 0, 252);
    }
    ring.setReqProdPvt(start + 16);
    m.store32(ring.frame, SRING_REQ_PROD, (start + 16) >>> 0);
    front.notifyBackend();
    await new Promise((r) => setTimeout(r, HALT_WAIT_MS));
    const produced = (m.load32(ring.frame, SRING_RSP_PROD) - base) >>> 0;
    report('responses never consumed', '16 requests, answers never read', `backend produced ${produced} responses for 16 requests`, produced <= 16);
  }
  // 9. Producer index jump: the ring must be halted (no answer), then the guest reconnects.
  {
    const ring = front.ring;
    const m = ring.memory;
    const rsp = m.load32(ring.frame, SRING_RSP_PROD);
    const bogus = (rsp + 1000) >>> 0;
    m.store32(ring.frame, SRING_REQ_PROD, bogus);
    front.notifyBackend();
    await new Promise((r) => setTimeout(r, HALT_WAIT_MS));
    const after = m.load32(ring.frame, SRING_RSP_PROD);
    report('producer index jump', `req_prod ${bogus} with rsp_prod ${rsp}`, after === rsp ? 'ring halted, nothing answered' : `backend answered ${(after - rsp) >>> 0} slots`, after === rsp);
    await front.reconnect();
    const p = dataPage(false);
    const r = await front.raw(
      (rqid) => encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: read10(1), ...a, direction: DMA_FROM_DEVICE, segments: [{ gref: p.ref, offset: 0, length: 512 }] }),
      ANSWER_TIMEOUT_MS,
    );
    report('reconnect after halt', 'new ring after Initialising', fmt(r), r !== undefined && r.rslt === 0);
  }
  // 10. Bogus xenstore nodes: ring-ref that is not a number, then one that is not granted.
  {
    const xs = front.xs;
    for (const [what, ringRef] of [
      ['ring-ref "12abc"', '12abc'],
      ['ring-ref 4095 (not granted)', '4095'],
    ] as const) {
      front.paused = true;
      await xs.write(`${front.fePath}/state`, String(XenbusState.Initialising));
      await waitState(front, XenbusState.InitWait);
      await xs.write(`${front.fePath}/ring-ref`, ringRef);
      await xs.write(`${front.fePath}/state`, String(XenbusState.Initialised));
      const st = await waitState(front, XenbusState.Closing);
      const err = await xs.read(`${front.bePath}/error`);
      report('bogus xenstore node', what, `backend state ${st}, error "${err ?? ''}"`, st === XenbusState.Closing);
      await front.reconnect();
    }
  }
  // 11. Writing the backend's own nodes (xenstored refuses: they belong to dom0).
  {
    let answer: string;
    try {
      await front.xs.write(`${front.bePath}/feature-sg-grant`, '65535');
      answer = 'accepted';
    } catch (e) {
      answer = `refused (${(e as Error).message.slice(0, 60)})`;
    }
    report('write backend nodes', 'feature-sg-grant=65535 in the backend directory', answer, answer !== 'accepted');
  }
  // Canary pages untouched?
  let touched = 0;
  for (const f of canaries) {
    const b = Buffer.alloc(XEN_PAGE_SIZE);
    memory.readFrame(f, 0, b, 0, XEN_PAGE_SIZE);
    if (!b.equals(Buffer.alloc(XEN_PAGE_SIZE, 0xc5))) touched++;
  }
  report('ungranted memory', `${CANARY_FRAMES} canary pages never granted`, touched === 0 ? 'untouched' : `${touched} modified`, touched === 0);
  return { lines, failures };
}

async function waitState(front: ScsiFront, want: number, timeoutMs = 3000): Promise<number | undefined> {
  const end = Date.now() + timeoutMs;
  let st: number | undefined;
  while (Date.now() < end) {
    st = parseState(await front.xs.read(`${front.bePath}/state`));
    if (st === want) return st;
    await new Promise((r) => setTimeout(r, 5));
  }
  return st;
}
