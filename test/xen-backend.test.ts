import { describe, expect, it } from 'vitest';
import { VscsiRing, LunTarget } from '../src/xen/backend.js';
import { BoundEventChannel, ForeignPage, GNTST, GrantRange, XenHypervisor } from '../src/xen/hypervisor.js';
import {
  SRING_REQ_EVENT,
  SRING_REQ_PROD,
  SRING_RSP_EVENT,
  SRING_RSP_PROD,
  VSCSIIF_ACT_SCSI_ABORT,
  VSCSIIF_ACT_SCSI_CDB,
  VSCSIIF_ACT_SCSI_RESET,
  decodeResponse,
  encodeRequest,
  slotOffset,
} from '../src/xen/ring.js';
import type { Nexus, ScsiCommandRequest, ScsiCompletion, TmfRequest, TmfResult } from '../src/vscsi/fabric.js';
import { Prng } from '../src/sim/prng.js';

/** A hypervisor whose "guest" is a few Buffers; grants are a table we control. */
class FakeHv implements XenHypervisor {
  readonly domid = 0;
  readonly xenstore = undefined as never;
  readonly ring = Buffer.alloc(4096);
  readonly pages = new Map<number, { page: Buffer; writable: boolean }>();
  notifies = 0;
  unmasks = 0;
  onEvent: () => void = () => undefined;
  touched: number[] = [];
  mapGrant(_d: number, ref: number): ForeignPage {
    if (ref !== 1) throw new Error('bad ring ref');
    const p = this.ring;
    return {
      read: (o, dst, dOff = 0, len = dst.length - dOff) => void p.copy(dst, dOff, o, o + len),
      write: (o, src) => void src.copy(p, o),
      load32: (o) => p.readUInt32LE(o),
      store32: (o, v) => p.writeUInt32LE(v >>> 0, o),
      fence: () => undefined,
      unmap: () => undefined,
    };
  }
  copyFromGuest(_d: number, ranges: readonly GrantRange[], dst: Buffer, at: number): number[] {
    return ranges.map((r) => {
      const g = this.pages.get(r.ref);
      if (!g) return GNTST.bad_gntref;
      this.touched.push(r.ref);
      g.page.copy(dst, at, r.offset, r.offset + r.length);
      at += r.length;
      return GNTST.okay;
    });
  }
  copyToGuest(_d: number, ranges: readonly GrantRange[], src: Buffer, at: number): number[] {
    return ranges.map((r) => {
      const g = this.pages.get(r.ref);
      if (!g || !g.writable) return g ? GNTST.permission_denied : GNTST.bad_gntref;
      this.touched.push(r.ref);
      src.copy(g.page, r.offset, at, at + r.length);
      at += r.length;
      return GNTST.okay;
    });
  }
  async bindInterdomain(_d: number, _p: number, onEvent: () => void): Promise<BoundEventChannel> {
    this.onEvent = onEvent;
    return { localPort: 1, notify: () => void this.notifies++, unmask: () => void this.unmasks++, close: () => undefined };
  }
  async close(): Promise<void> {}
  // frontend helpers
  prod = 0;
  publish(img: Buffer): void {
    img.copy(this.ring, slotOffset(this.prod));
    this.prod = (this.prod + 1) >>> 0;
    this.ring.writeUInt32LE(this.prod, SRING_REQ_PROD);
  }
  responses(): ReturnType<typeof decodeResponse>[] {
    const n = this.ring.readUInt32LE(SRING_RSP_PROD);
    const out = [];
    for (let i = 0; i < n; i++) out.push(decodeResponse(this.ring.subarray(slotOffset(i), slotOffset(i) + 252)));
    return out;
  }
}

/** A nexus that records what it got and lets the test complete commands. */
class FakeNexus implements Nexus {
  readonly id = 1;
  readonly initiator = { name: 'x', portSuffix: 'y', protocolId: 6, transportId: Buffer.alloc(24) };
  submitted: ScsiCommandRequest[] = [];
  tmfs: TmfRequest[] = [];
  tmfAnswer: TmfResult['response'] = 'FUNCTION_COMPLETE';
  submit(r: ScsiCommandRequest): void {
    this.submitted.push(r);
  }
  async taskManagement(r: TmfRequest): Promise<TmfResult> {
    this.tmfs.push(r);
    return { response: this.tmfAnswer };
  }
  lunNumbers(): number[] {
    return [0];
  }
  activeCommands(): number {
    return 0;
  }
  // The vscsiif backend answers transport failures with host bytes; it never asks the core for sense.
  failCommand(): void {
    throw new Error('the Xen backend must not fail commands through the core');
  }
  failureCompletion(): ScsiCompletion {
    throw new Error('the Xen backend must not fail commands through the core');
  }
  async close(): Promise<void> {}
}

const tick = () => new Promise((r) => setImmediate(r));
const settle = async () => {
  for (let i = 0; i < 5; i++) await tick();
};

async function setup(maxIndirect = 128) {
  const hv = new FakeHv();
  hv.ring.writeUInt32LE(1, SRING_REQ_EVENT);
  hv.ring.writeUInt32LE(1, SRING_RSP_EVENT);
  const nexus = new FakeNexus();
  const target: LunTarget = { nexus, lun: 0 };
  const ring = new VscsiRing({ hv, frontendDomid: 1, ringRef: 1, eventChannel: 5, resolve: (c, t, l) => (c === 0 && t === 0 && l === 0 ? target : undefined), maxIndirectSegments: maxIndirect, name: 'dom 1 vhost 0' });
  let halted = '';
  ring.onHalt = (r) => (halted = r);
  await ring.start();
  await settle();
  return { hv, nexus, ring, halted: () => halted };
}

const read10 = (rqid: number, segs: Array<{ gref: number; offset: number; length: number }>) =>
  encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]), direction: 2, segments: segs });

describe('xen ring backend', () => {
  it('submits a READ with the segment total as expected length and copies data-in to the granted page', async () => {
    const s = await setup();
    s.hv.pages.set(7, { page: Buffer.alloc(4096), writable: true });
    s.hv.publish(read10(3, [{ gref: 7, offset: 100, length: 512 }]));
    s.hv.onEvent();
    await settle();
    expect(s.nexus.submitted).toHaveLength(1);
    const cmd = s.nexus.submitted[0]!;
    expect(cmd).toMatchObject({ lun: 0, tag: 3n, direction: 'read', expectedLength: 512 });
    expect(cmd.cdb).toEqual(Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]));
    // The core's pooled buffer comes back once, and only after the guest page holds the data.
    const released: boolean[] = [];
    cmd.port.complete({
      status: 0,
      dataIn: Buffer.alloc(500, 0xab),
      residual: { kind: 'underflow', count: 12 },
      releaseDataIn: () => released.push(s.hv.pages.get(7)!.page[599] === 0xab),
    });
    await settle();
    expect(released).toEqual([true]);
    expect(s.hv.pages.get(7)!.page.subarray(100, 600)).toEqual(Buffer.alloc(500, 0xab));
    expect(s.hv.pages.get(7)!.page[600]).toBe(0);
    expect(s.hv.responses()).toEqual([expect.objectContaining({ rqid: 3, rslt: 0, residual: 12, senseLen: 0 })]);
    expect(s.hv.notifies).toBe(1); // rsp_event was 1: in (0, 1]
    expect(s.hv.ring.readUInt32LE(SRING_REQ_EVENT)).toBe(2); // final check asked for the next request
    expect(s.hv.unmasks).toBeGreaterThan(0);
  });

  it('reports the residual the core computed (underflow only: vscsiif cannot express overflow)', async () => {
    const s = await setup();
    s.hv.pages.set(7, { page: Buffer.alloc(4096), writable: true });
    const write10 = (rqid: number) =>
      encodeRequest({ rqid, act: VSCSIIF_ACT_SCSI_CDB, cdb: Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]), direction: 1, segments: [{ gref: 7, offset: 0, length: 512 }] });
    s.hv.publish(write10(4));
    s.hv.publish(read10(5, [{ gref: 7, offset: 0, length: 512 }]));
    s.hv.publish(read10(6, [{ gref: 7, offset: 0, length: 512 }]));
    s.hv.onEvent();
    await settle();
    expect(s.nexus.submitted).toHaveLength(3);
    // A write whose data-out the core only partly used: no data-in, the core's count is the answer.
    s.nexus.submitted[0]!.port.complete({ status: 0, residual: { kind: 'underflow', count: 100 } });
    // The core said overflow (the CDB wanted more than the guest's buffer): residual_len stays 0.
    s.nexus.submitted[1]!.port.complete({ status: 0, dataIn: Buffer.alloc(512, 1), residual: { kind: 'overflow', count: 512 } });
    // Short data-in with the core's underflow count: taken as given, not recomputed.
    s.nexus.submitted[2]!.port.complete({ status: 0, dataIn: Buffer.alloc(256, 2), residual: { kind: 'underflow', count: 256 } });
    await settle();
    const byRqid = new Map(s.hv.responses().map((r) => [r.rqid, r]));
    expect(byRqid.get(4)).toMatchObject({ rslt: 0, residual: 100 });
    expect(byRqid.get(5)).toMatchObject({ rslt: 0, residual: 0 });
    expect(byRqid.get(6)).toMatchObject({ rslt: 0, residual: 256 });
  });

  it('passes CHECK CONDITION sense through, and does not notify when rsp_event is beyond the new responses', async () => {
    const s = await setup();
    s.hv.ring.writeUInt32LE(10, SRING_RSP_EVENT);
    s.hv.publish(encodeRequest({ rqid: 1, act: 1, cdb: Buffer.alloc(6), direction: 3 }));
    s.hv.onEvent();
    await settle();
    const sense = Buffer.alloc(18);
    sense[0] = 0x70;
    sense[2] = 6;
    sense[7] = 10;
    sense[12] = 0x29;
    s.nexus.submitted[0]!.port.complete({ status: 2, sense, residual: { kind: 'none' } });
    await settle();
    const [r] = s.hv.responses();
    expect(r).toMatchObject({ rqid: 1, rslt: 2, senseLen: 18 });
    expect(r!.sense).toEqual(sense);
    expect(s.hv.notifies).toBe(0);
  });

  it('fetches data-out through grant copy and fails the command (host ERROR) when a grant is refused', async () => {
    const s = await setup();
    s.hv.pages.set(8, { page: Buffer.alloc(4096, 0x5a), writable: false });
    s.hv.publish(encodeRequest({ rqid: 2, act: 1, cdb: Buffer.from([0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0]), direction: 1, segments: [{ gref: 8, offset: 0, length: 512 }] }));
    s.hv.onEvent();
    await settle();
    const cmd = s.nexus.submitted[0]!;
    expect(cmd.direction).toBe('write');
    expect(await cmd.port.fetchDataOut(0, 512)).toEqual(Buffer.alloc(512, 0x5a));
    await expect(cmd.port.fetchDataOut(256, 512)).rejects.toThrow(/outside/);
    // The grant copy is synchronous: the core may have it copy straight into a store's bytes.
    const into = Buffer.alloc(256);
    expect(cmd.port.fetchDataOutInto!(256, into)).toBe(true);
    expect(into).toEqual(Buffer.alloc(256, 0x5a));
    expect(() => cmd.port.fetchDataOutInto!(256, Buffer.alloc(512))).toThrow(/outside/);
    const grant = s.hv.pages.get(8)!;
    s.hv.pages.delete(8); // the guest revoked the grant meanwhile
    expect(() => cmd.port.fetchDataOutInto!(0, Buffer.alloc(512))).toThrow(/grant copy from dom \d+ failed/);
    s.hv.pages.set(8, grant);
    // A READ into a read-only grant: the copy to the guest is refused -> host ERROR, no data.
    s.hv.publish(read10(4, [{ gref: 8, offset: 0, length: 512 }]));
    s.hv.onEvent();
    await settle();
    s.nexus.submitted[1]!.port.complete({ status: 0, dataIn: Buffer.alloc(512, 1), residual: { kind: 'none' } });
    await settle();
    expect(s.hv.responses().find((r) => r.rqid === 4)!.rslt).toBe(0x70000);
    expect(s.hv.pages.get(8)!.page[0]).toBe(0x5a);
  });

  it('answers bad requests without reaching the core', async () => {
    const s = await setup(0);
    const cases = [
      encodeRequest({ rqid: 1, act: 9, direction: 3 }),
      encodeRequest({ rqid: 2, act: 1, cdb: Buffer.alloc(6), cmdLen: 17, direction: 3 }),
      encodeRequest({ rqid: 3, act: 1, cdb: Buffer.alloc(6), direction: 0 }),
      encodeRequest({ rqid: 4, act: 1, cdb: Buffer.alloc(6), direction: 3, lun: 5 }),
      encodeRequest({ rqid: 5, act: 1, cdb: Buffer.alloc(6), direction: 2, nrSegmentsRaw: 0x81, segments: [{ gref: 1, offset: 0, length: 8 }] }),
      encodeRequest({ rqid: 6, act: 1, cdb: Buffer.alloc(6), direction: 2, segments: [{ gref: 1, offset: 4000, length: 200 }] }),
    ];
    for (const c of cases) s.hv.publish(c);
    s.hv.onEvent();
    await settle();
    expect(s.nexus.submitted).toHaveLength(0);
    expect(s.hv.responses().map((r) => [r.rqid, r.rslt])).toEqual([
      [1, 0x70000],
      [2, 0x70000],
      [3, 0x70000],
      [4, 0x10000],
      [5, 0x70000],
      [6, 0x70000],
    ]);
    expect(s.hv.touched).toEqual([]);
  });

  it('halts the ring on a producer index more than 16 ahead and leaves the event channel masked', async () => {
    const s = await setup();
    const unmasksBefore = s.hv.unmasks;
    s.hv.ring.writeUInt32LE(17, SRING_REQ_PROD);
    s.hv.onEvent();
    await settle();
    expect(s.halted()).toMatch(/bogus ring/);
    expect(s.ring.halted).toMatch(/req_prod 17/);
    expect(s.hv.unmasks).toBe(unmasksBefore);
    expect(s.nexus.submitted).toHaveLength(0);
    s.hv.onEvent();
    await settle();
    expect(s.hv.ring.readUInt32LE(SRING_RSP_PROD)).toBe(0);
  });

  it('stops consuming when all 16 slots hold unanswered requests, resumes after a completion', async () => {
    const s = await setup();
    for (let i = 0; i < 16; i++) s.hv.publish(encodeRequest({ rqid: i, act: 1, cdb: Buffer.alloc(6), direction: 3 }));
    s.hv.onEvent();
    await settle();
    expect(s.nexus.submitted).toHaveLength(16);
    // The frontend may reuse consumed slots once it saw responses; here it publishes one more early
    // (legal index-wise: 17 - 0 > 16 would be bogus, so only after a response).
    s.nexus.submitted[0]!.port.complete({ status: 0, residual: { kind: 'none' } });
    await settle();
    s.hv.publish(encodeRequest({ rqid: 0, act: 1, cdb: Buffer.alloc(6), direction: 3 }));
    s.hv.onEvent();
    await settle();
    expect(s.nexus.submitted).toHaveLength(17);
    expect(s.ring.halted).toBeUndefined();
  });

  it('takes a few requests per turn, so the first responses reach the frontend while the rest wait', async () => {
    const s = await setup();
    // Answer as the core does for a command it can answer at once: in a microtask.
    s.nexus.submit = (r) => {
      s.nexus.submitted.push(r);
      queueMicrotask(() => r.port.complete({ status: 0, residual: { kind: 'none' } }));
    };
    for (let i = 0; i < 16; i++) s.hv.publish(encodeRequest({ rqid: i, act: 1, cdb: Buffer.alloc(6), direction: 3 }));
    const unmasks = s.hv.unmasks;
    s.hv.onEvent();
    await tick();
    const first = s.nexus.submitted.length;
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(16);
    expect(s.hv.ring.readUInt32LE(SRING_RSP_PROD)).toBe(first); // pushed before the rest were taken
    expect(s.hv.notifies).toBe(1);
    expect(s.hv.unmasks).toBe(unmasks); // still masked: the ring is not empty yet
    for (let i = 0; i < 16 && s.nexus.submitted.length < 16; i++) await tick();
    await settle();
    expect(s.hv.responses().map((r) => r.rqid)).toEqual([...Array(16).keys()]);
    expect(s.hv.unmasks).toBe(unmasks + 1);
    expect(s.ring.halted).toBeUndefined();
  });

  it('maps ABORT to ABORT TASK (tag = ref_rqid), answers the aborted command with host ABORT, then 0x2002', async () => {
    const s = await setup();
    s.hv.publish(encodeRequest({ rqid: 4, act: 1, cdb: Buffer.alloc(6), direction: 3 }));
    s.hv.publish(encodeRequest({ rqid: 5, act: VSCSIIF_ACT_SCSI_ABORT, refRqid: 4, direction: 3 }));
    s.hv.onEvent();
    await settle();
    expect(s.nexus.tmfs).toEqual([{ fn: 'ABORT_TASK', lun: 0, referencedTag: 4n }]);
    expect(s.hv.responses().map((r) => [r.rqid, r.rslt])).toEqual([
      [4, 0x50000],
      [5, 0x2002],
    ]);
    // A late completion of the aborted command is ignored (one response per request).
    s.nexus.submitted[0]!.port.complete({ status: 0, residual: { kind: 'none' } });
    await settle();
    expect(s.hv.responses()).toHaveLength(2);
  });

  it('maps RESET to LOGICAL UNIT RESET and answers 0x2003 when the core rejects it', async () => {
    const s = await setup();
    s.nexus.tmfAnswer = 'FUNCTION_REJECTED';
    s.hv.publish(encodeRequest({ rqid: 9, act: VSCSIIF_ACT_SCSI_RESET, direction: 3 }));
    s.hv.onEvent();
    await settle();
    expect(s.nexus.tmfs).toEqual([{ fn: 'LOGICAL_UNIT_RESET', lun: 0 }]);
    expect(s.hv.responses().map((r) => [r.rqid, r.rslt])).toEqual([[9, 0x2003]]);
  });

  it('copies indirect descriptor tables once and moves data through the segments they describe', async () => {
    const s = await setup();
    const table = Buffer.alloc(4096);
    for (let i = 0; i < 30; i++) {
      table.writeUInt32LE(100 + i, i * 8);
      table.writeUInt16LE(0, i * 8 + 4);
      table.writeUInt16LE(4096, i * 8 + 6);
      s.hv.pages.set(100 + i, { page: Buffer.alloc(4096), writable: true });
    }
    s.hv.pages.set(50, { page: table, writable: false });
    s.hv.publish(encodeRequest({ rqid: 1, act: 1, cdb: Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 240, 0]), direction: 2, nrSegmentsRaw: 0x81, segments: [{ gref: 50, offset: 0, length: 240 }] }));
    s.hv.onEvent();
    await settle();
    const cmd = s.nexus.submitted[0]!;
    expect(cmd.expectedLength).toBe(30 * 4096);
    table.fill(0xff); // rewriting the table after the backend copied it changes nothing
    const data = Buffer.alloc(30 * 4096);
    for (let i = 0; i < 30; i++) data.fill(i, i * 4096, (i + 1) * 4096);
    cmd.port.complete({ status: 0, dataIn: data, residual: { kind: 'none' } });
    await settle();
    expect(s.hv.responses()[0]).toMatchObject({ rqid: 1, rslt: 0 });
    expect(s.hv.pages.get(129)!.page[4095]).toBe(29);
  });

  it('answers a command another initiator aborted (core aborted() callback) with host RESET at once', async () => {
    const s = await setup();
    s.hv.publish(encodeRequest({ rqid: 6, act: 1, cdb: Buffer.alloc(6), direction: 3 }));
    s.hv.onEvent();
    await settle();
    s.nexus.submitted[0]!.port.aborted!();
    await settle();
    expect(s.hv.responses().map((r) => [r.rqid, r.rslt])).toEqual([[6, 0x80000]]);
    s.nexus.submitted[0]!.port.complete({ status: 0, residual: { kind: 'none' } });
    await settle();
    expect(s.hv.responses()).toHaveLength(1);
  });

  it('fuzz: random request images are each answered exactly once, never touching ungranted refs', async () => {
    const s = await setup();
    for (const ref of [7, 8, 9]) s.hv.pages.set(ref, { page: Buffer.alloc(4096), writable: ref !== 9 });
    // The core answers everything at once (with data for reads), and TMFs succeed.
    s.nexus.submit = (r) => {
      s.nexus.submitted.push(r);
      queueMicrotask(async () => {
        if (r.direction === 'write') await r.port.fetchDataOut(0, r.expectedLength).catch(() => undefined);
        r.port.complete({ status: 0, ...(r.direction === 'read' ? { dataIn: Buffer.alloc(r.expectedLength, 1) } : {}), residual: { kind: 'none' } });
      });
    };
    const prng = new Prng(99);
    const rnd = (n: number) => prng.int(n);
    let published = 0;
    const refs = [7, 8, 9, 4000, 0, 0xffffffff];
    for (let round = 0; round < 150; round++) {
      const inFlight = published - s.hv.ring.readUInt32LE(SRING_RSP_PROD);
      for (let i = 0; i < 16 - inFlight; i++) {
        const img = Buffer.alloc(252);
        for (let j = 0; j < 252; j++) img[j] = rnd(256);
        // Bias towards plausible requests so the deeper paths run too.
        img[2] = [1, 1, 1, 2, 3, rnd(256)][rnd(6)]!;
        img[3] = rnd(20);
        img[30] = rnd(5);
        img[31] = [0, 1, 2, 0x81, rnd(256)][rnd(5)]!;
        img.writeUInt16LE(0, 22);
        img.writeUInt16LE(0, 24);
        img.writeUInt16LE(rnd(4) === 0 ? 1 : 0, 26);
        for (let k = 0; k < 3; k++) {
          img.writeUInt32LE(refs[rnd(refs.length)]!, 32 + k * 8);
          img.writeUInt16LE(rnd(5000), 36 + k * 8);
          img.writeUInt16LE([512, 4096, 8, 16, rnd(70000)][rnd(5)]! & 0xffff, 38 + k * 8);
        }
        s.hv.publish(img);
        published++;
      }
      s.hv.onEvent();
      await settle();
    }
    for (let i = 0; i < 20 && s.hv.ring.readUInt32LE(SRING_RSP_PROD) !== published; i++) await settle();
    expect(s.ring.halted).toBeUndefined();
    expect(s.hv.ring.readUInt32LE(SRING_RSP_PROD)).toBe(published);
    expect(published).toBeGreaterThan(1000);
    expect(new Set(s.hv.touched).size).toBeLessThanOrEqual(3);
    for (const t of s.hv.touched) expect([7, 8, 9]).toContain(t);
  });
});
