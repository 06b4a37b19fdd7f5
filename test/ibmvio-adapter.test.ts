import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { VioAdapter } from '../src/ibmvio/adapter.js';
import { H, type HReturn } from '../src/ibmvio/constants.js';
import { encodeCrq, INIT_ENTRY, ioba8, transportEventEntry } from '../src/ibmvio/crq-entry.js';
import type { VioHypervisor } from '../src/ibmvio/hypervisor.js';
import { decodeAdapterInfo, encodeClientCapabilities, encodeMad } from '../src/ibmvio/mad-codec.js';
import { decodeLoginRsp, decodeRsp, encodeCmd, encodeLoginReq } from '../src/srp/iu.js';
import { ScsiCore } from '../src/vscsi/core.js';
import { seededRandom } from '../src/sim/prng.js';
import { parseSense } from '../src/vscsi/sense.js';

/** In-process stand-in for PowerVM: one adapter pair, the client window is a flat buffer. */
class FakeHv implements VioHypervisor {
  readonly describe = 'fake';
  maxCopyLength = 4096;
  mem = Buffer.alloc(1 << 20);
  serverQ: Buffer[] = [];
  toClient: Buffer[] = [];
  interrupt: (() => void) | undefined;
  registered = false;
  clientRegistered = true;
  dropNext = 0;
  copies = 0;
  frees = 0;
  registerCrq(_u: number, irq: () => void): HReturn {
    if (this.registered) return H.RESOURCE;
    this.registered = true;
    this.interrupt = irq;
    return this.clientRegistered ? H.SUCCESS : H.CLOSED;
  }
  freeCrq(): HReturn {
    this.frees++;
    this.registered = false;
    this.toClient.push(transportEventEntry(2));
    return H.SUCCESS;
  }
  receiveCrq(): Buffer | undefined {
    return this.serverQ.shift();
  }
  sendCrq(_u: number, e: Buffer): HReturn {
    if (!this.clientRegistered) return H.CLOSED;
    if (this.dropNext > 0) {
      this.dropNext--;
      return H.DROPPED;
    }
    this.toClient.push(Buffer.from(e));
    return H.SUCCESS;
  }
  private span(ioba: bigint, len: number): number | undefined {
    if (len > this.maxCopyLength || ioba < 0n || ioba + BigInt(len) > BigInt(this.mem.length)) return undefined;
    return Number(ioba);
  }
  copyFromPartner(_u: number, ioba: bigint, dst: Buffer): HReturn {
    const a = this.span(ioba, dst.length);
    if (a === undefined) return H.PERMISSION;
    this.copies++;
    this.mem.copy(dst, 0, a, a + dst.length);
    return H.SUCCESS;
  }
  copyToPartner(_u: number, ioba: bigint, src: Buffer): HReturn {
    const a = this.span(ioba, src.length);
    if (a === undefined) return H.PERMISSION;
    this.copies++;
    src.copy(this.mem, a);
    return H.SUCCESS;
  }
  getPartnerInfo(): { rc: HReturn; partitionNumber: number } {
    return { rc: H.SUCCESS, partitionNumber: 42 };
  }
  /** Client side: put an IU at `ioba` and send its CRQ. */
  request(iu: Buffer, ioba: number, format = 1, len = 256): void {
    iu.copy(this.mem, ioba);
    this.serverQ.push(encodeCrq({ valid: 0x80, format, status: 0, timeout: 60, iuLength: len, word1: ioba8(BigInt(ioba)) }));
    this.interrupt?.();
  }
  post(e: Buffer): void {
    this.serverQ.push(e);
    this.interrupt?.();
  }
  /** Wait until the client queue holds an entry matching `pred`, remove and return it. */
  async take(pred: (e: Buffer) => boolean, ms = 2000): Promise<Buffer> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.toClient.findIndex(pred);
      if (i >= 0) return this.toClient.splice(i, 1)[0]!;
      if (Date.now() > end) throw new Error(`no matching CRQ entry; have ${this.toClient.map((x) => x.toString('hex')).join(' ')}`);
      await new Promise((r) => setTimeout(r, 2));
    }
  }
}

const settle = () => new Promise((r) => setTimeout(r, 20));

let adapters: VioAdapter[] = [];
afterEach(async () => {
  for (const a of adapters) await a.stop();
  adapters = [];
});

function setup(profile: 'linux' | 'aix' = 'linux') {
  const hv = new FakeHv();
  const core = new ScsiCore();
  const target = core.createTarget({ name: 't' });
  const port = target.addPort({ name: 'vhost0' });
  for (const n of [0, 1]) {
    const lu = core.addLogicalUnit({ id: `lu${n}`, backstore: new MemoryBackstore({ name: `m${n}`, size: 8 << 20 }) });
    target.luns.set(n, lu);
  }
  const a = new VioAdapter(hv, {
    unit: 0x30000000,
    deviceName: 'vhost0',
    partitionName: 'vios1',
    partitionNumber: 1,
    profile,
    requestLimit: 16,
    queueFullTimeoutMs: 300,
    openNexus: (initiator, prof) => core.openNexus({ target, targetPort: port, initiator, profile: prof }),
  });
  adapters.push(a);
  return { hv, a, core };
}

async function connect(hv: FakeHv, a: VioAdapter) {
  a.start();
  await hv.take((e) => e[0] === 0xc0 && e[1] === 0x01); // our INIT
  hv.post(INIT_ENTRY());
  await hv.take((e) => e[0] === 0xc0 && e[1] === 0x02);
}

async function login(hv: FakeHv) {
  hv.request(
    encodeLoginReq({ tag: Buffer.from('feedface00000001', 'hex'), reqItIuLen: 256, reqBufFmt: 6, reqFlags: 0, immDataOffset: 0, initiatorPortId: Buffer.alloc(16), targetPortId: Buffer.alloc(16) }),
    0x1000,
  );
  const e = await hv.take((x) => x[0] === 0x80);
  expect(e.subarray(8, 16).toString('hex')).toBe('feedface00000001');
  return decodeLoginRsp(hv.mem.subarray(0x1000, 0x1000 + e.readUInt16BE(6)));
}

describe('VioAdapter over a fake hypervisor', () => {
  it('ignores MADs before INIT, then serves ADAPTER_INFO, login and a chunked indirect READ with the tag echoed', async () => {
    const { hv, a } = setup();
    a.start();
    await hv.take((e) => e[0] === 0xc0 && e[1] === 0x01);
    const info = Buffer.alloc(148);
    info.write('lpar9', 8);
    info.writeUInt32BE(2, 112);
    info.copy(hv.mem, 0x9000);
    const mad = encodeMad({ type: 3, status: 0, length: 148, tag: Buffer.from('0102030405060708', 'hex'), buffer: 0x9000n });
    hv.request(mad, 0x2000, 2);
    await settle();
    expect(hv.toClient.length).toBe(0);
    hv.post(INIT_ENTRY());
    await hv.take((e) => e[0] === 0xc0 && e[1] === 0x02);
    expect(a.state).toBe('connected');
    hv.request(mad, 0x2000, 2);
    const r = await hv.take((e) => e[0] === 0x80);
    expect(r.subarray(8, 16)).toEqual(Buffer.from('0102030405060708', 'hex'));
    expect(r[1]).toBe(2);
    expect(r.readUInt16BE(6)).toBe(16);
    expect(hv.mem.readUInt16BE(0x2000 + 4)).toBe(0); // MAD status SUCCESS
    const ours = decodeAdapterInfo(hv.mem.subarray(0x9000, 0x9000 + 148));
    expect(ours).toMatchObject({ srpVersion: '16.a', partitionName: 'vios1', osType: 2, maxTransfer: 1 << 20 });
    expect(a.client?.partitionName).toBe('lpar9');
    const lr = await login(hv);
    expect(lr.ok && lr.value.reqLimDelta).toBe(16);
    // Write a pattern to LUN 1 through the core, then READ it back through 3 segments (external table).
    const pattern = Buffer.alloc(12 * 1024);
    for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7) & 0xff;
    pattern.copy(hv.mem, 0x40000);
    const wcdb = Buffer.alloc(16);
    wcdb[0] = 0x2a;
    wcdb.writeUInt16BE(24, 7);
    const lun1 = Buffer.from('8001000000000000', 'hex');
    hv.request(encodeCmd({ tag: Buffer.from('00000000000000aa', 'hex'), solNot: 0, lun: lun1, taskAttr: 0, cdb: wcdb, dataOut: { format: 'direct', desc: { va: 0x40000n, key: 0, len: 12288 } }, dataIn: { format: 'none' } }), 0x1100);
    const w = await hv.take((e) => e[0] === 0x80);
    expect(decodeRsp(hv.mem.subarray(0x1100, 0x1100 + w.readUInt16BE(6)))).toMatchObject({ ok: true, value: { status: 0, reqLimDelta: 1 } });
    const segs = [ [0x80000, 4096], [0x60000, 6144], [0x70000, 2048] ] as const;
    const table = Buffer.alloc(48);
    segs.forEach(([va, len], i) => {
      table.writeBigUInt64BE(BigInt(va), i * 16);
      table.writeUInt32BE(len, i * 16 + 12);
    });
    table.copy(hv.mem, 0x50000);
    const rcdb = Buffer.from(wcdb);
    rcdb[0] = 0x28;
    const copiesBefore = hv.copies;
    hv.request(encodeCmd({ tag: Buffer.from('ffeeddccbbaa9988', 'hex'), solNot: 0, lun: lun1, taskAttr: 0, cdb: rcdb, dataOut: { format: 'none' },
      dataIn: { format: 'indirect', table: { va: 0x50000n, key: 0, len: 48 }, totalLength: 12288, inIu: [{ va: 0x80000n, key: 0, len: 4096 }] } }), 0x1200);
    const rr = await hv.take((e) => e[0] === 0x80);
    expect(rr.subarray(8, 16).toString('hex')).toBe('ffeeddccbbaa9988');
    expect(decodeRsp(hv.mem.subarray(0x1200, 0x1200 + rr.readUInt16BE(6)))).toMatchObject({ ok: true, value: { status: 0 } });
    const got = Buffer.concat(segs.map(([va, len]) => hv.mem.subarray(va, va + len)));
    expect(got).toEqual(pattern);
    // IU + table + 4 data chunks (4096 + 4096+2048 + 2048 at 4 KiB max) + response IU.
    expect(hv.copies - copiesBefore).toBeGreaterThanOrEqual(6);
  });

  it('rides out a full client queue (H_DROPPED) and keeps response order', async () => {
    const { hv, a } = setup();
    await connect(hv, a);
    hv.dropNext = 5;
    const tags = ['1111111111111111', '2222222222222222', '3333333333333333'];
    tags.forEach((t, i) => hv.request(encodeMad({ type: 1, status: 0, length: 28, tag: Buffer.from(t, 'hex'), buffer: 0n }), 0x3000 + i * 256, 2));
    for (const t of tags) {
      const e = await hv.take((x) => x[0] === 0x80);
      expect(e.subarray(8, 16).toString('hex')).toBe(t);
    }
    // A queue that stays full makes the server drop the connection, not spin forever.
    hv.dropNext = 1_000_000;
    hv.request(encodeMad({ type: 1, status: 0, length: 28, tag: Buffer.alloc(8, 9), buffer: 0n }), 0x3000, 2);
    await new Promise((r) => setTimeout(r, 600));
    expect(a.linkStats.protocolResets).toBe(1);
    expect(hv.frees).toBe(1);
  });

  it('INIT while connected resets the session without re-registering; partner events wait for INIT', async () => {
    const { hv, a } = setup();
    await connect(hv, a);
    expect((await login(hv)).ok).toBe(true);
    expect(a.loggedIn).toBe(true);
    hv.post(INIT_ENTRY());
    await hv.take((e) => e[0] === 0xc0 && e[1] === 0x02);
    expect(a.loggedIn).toBe(false);
    expect(hv.frees).toBe(0);
    expect((await login(hv)).ok).toBe(true);
    hv.post(transportEventEntry(0x01));
    await settle();
    expect(a.state).toBe('wait-connection');
    expect(a.loggedIn).toBe(false);
    expect(hv.frees).toBe(0);
    // Before the client's INIT, commands are ignored, not answered.
    hv.request(Buffer.alloc(64, 2), 0x1000);
    await settle();
    expect(hv.toClient.filter((e) => e[0] === 0x80)).toEqual([]);
    hv.post(INIT_ENTRY());
    await hv.take((e) => e[0] === 0xc0 && e[1] === 0x02);
    expect(a.state).toBe('connected');
  });

  it('drops the connection on protocol errors (ERR_DISCONNECT_RECONNECT): bad IU length, IU outside the window', async () => {
    const { hv, a } = setup();
    await connect(hv, a);
    hv.request(Buffer.alloc(16), 0x1000, 1, 0);
    await hv.take((e) => e[0] === 0xff && e[1] === 0x02);
    await hv.take((e) => e[0] === 0xc0 && e[1] === 0x01);
    expect(a.linkStats.protocolResets).toBe(1);
    hv.post(INIT_ENTRY());
    await hv.take((e) => e[0] === 0xc0 && e[1] === 0x02);
    hv.serverQ.push(encodeCrq({ valid: 0x80, format: 1, status: 0, timeout: 0, iuLength: 256, word1: ioba8(1n << 40n) }));
    hv.interrupt?.();
    await hv.take((e) => e[0] === 0xff && e[1] === 0x02);
    expect(a.linkStats.protocolResets).toBe(2);
  });

  it('AIX profile: os_type 3, fast fail and capabilities, IBM VDASD inquiry, LUN 0x81 = LUN 1', async () => {
    const { hv, a } = setup('aix');
    await connect(hv, a);
    hv.request(encodeMad({ type: 3, status: 0, length: 148, tag: Buffer.alloc(8, 1), buffer: 0x9000n }), 0x2000, 2);
    await hv.take((e) => e[0] === 0x80);
    expect(decodeAdapterInfo(hv.mem.subarray(0x9000, 0x9000 + 148)).osType).toBe(3);
    hv.request(encodeMad({ type: 8, status: 0, length: 16, tag: Buffer.alloc(8, 2) }), 0x2000, 2);
    await hv.take((e) => e[0] === 0x80);
    expect(hv.mem.readUInt16BE(0x2004)).toBe(0);
    encodeClientCapabilities({ flags: 4, name: 'host0', loc: 'x', reserve: true }).copy(hv.mem, 0x9400);
    hv.request(encodeMad({ type: 5, status: 0, length: 92, tag: Buffer.alloc(8, 3), buffer: 0x9400n }), 0x2000, 2);
    await hv.take((e) => e[0] === 0x80);
    expect(hv.mem.readUInt16BE(0x2004)).toBe(0);
    expect(hv.mem.readUInt16BE(0x9400 + 74)).toBe(0); // migration: not supported
    expect(hv.mem.readUInt16BE(0x9400 + 86)).toBe(0); // reserve: not supported
    expect(hv.mem.subarray(0x9404, 0x940a).toString()).toBe('vhost0');
    expect((await login(hv)).ok).toBe(true);
    const inq = Buffer.alloc(16);
    inq[0] = 0x12;
    inq.writeUInt16BE(96, 3);
    hv.request(encodeCmd({ tag: Buffer.alloc(8, 4), solNot: 0, lun: Buffer.from('8100000000000000', 'hex'), taskAttr: 0, cdb: inq, dataOut: { format: 'none' }, dataIn: { format: 'direct', desc: { va: 0x60000n, key: 0, len: 96 } } }), 0x1000);
    const e = await hv.take((x) => x[0] === 0x80);
    expect(decodeRsp(hv.mem.subarray(0x1000, 0x1000 + e.readUInt16BE(6)))).toMatchObject({ ok: true, value: { status: 0 } });
    expect(hv.mem.subarray(0x60000 + 8, 0x60000 + 36).toString('latin1')).toBe('IBM     VDASD blkdev    0001');
  });
});

describe('VioAdapter transport details', () => {
  it('answers PING with PING_RESPONSE and reports fast-fail hardware errors as ADAPTER_FAIL', async () => {
    const { hv, a } = setup();
    await connect(hv, a);
    hv.post(encodeCrq({ valid: 0x80, format: 0x06, status: 0xf5, timeout: 0, iuLength: 0, word1: Buffer.alloc(8, 7) }));
    const pong = await hv.take((e) => e[0] === 0x80 && e[1] === 0x06);
    expect(pong[3]).toBe(0xf6);
    hv.request(encodeMad({ type: 8, status: 0, length: 16, tag: Buffer.alloc(8, 1) }), 0x2000, 2);
    await hv.take((e) => e[0] === 0x80);
    expect(hv.mem.readUInt16BE(0x2004)).toBe(0);
    expect((await login(hv)).ok).toBe(true);
    const rcdb = Buffer.alloc(16);
    rcdb[0] = 0x28;
    rcdb.writeUInt16BE(1, 7);
    // The data-in buffer lies outside the client window: HARDWARE ERROR, and with fast fail the CRQ
    // status tells the client's multipath layer to fail over.
    hv.request(encodeCmd({ tag: Buffer.alloc(8, 2), solNot: 0, lun: Buffer.from('8000000000000000', 'hex'), taskAttr: 0, cdb: rcdb, dataOut: { format: 'none' }, dataIn: { format: 'direct', desc: { va: 1n << 40n, key: 0, len: 512 } } }), 0x1000);
    const e = await hv.take((x) => x[0] === 0x80);
    expect(e[3]).toBe(0x10);
    const r = decodeRsp(hv.mem.subarray(0x1000, 0x1000 + e.readUInt16BE(6)));
    expect(r.ok && r.value.sense![2]).toBe(0x04);
    expect(a.channelStats.transferErrors).toBe(1);
  });

  it('transport failures carry the core\'s sense in the LU\'s format (D_SENSE=1: descriptor)', async () => {
    const { hv, a, core } = setup();
    core.getTarget('t')!.luns.get(0)!.mode.dSense = true;
    await connect(hv, a);
    expect((await login(hv)).ok).toBe(true);
    const rcdb = Buffer.alloc(16);
    rcdb[0] = 0x28;
    rcdb.writeUInt16BE(1, 7);
    const lun0 = Buffer.from('8000000000000000', 'hex');
    const answer = async (iu: Buffer) => {
      hv.request(iu, 0x1000);
      const e = await hv.take((x) => x[0] === 0x80);
      const r = decodeRsp(hv.mem.subarray(0x1000, 0x1000 + e.readUInt16BE(6)));
      return r.ok ? parseSense(r.value.sense!) : undefined;
    };
    // Data-in the hypervisor refuses to copy (outside the window).
    const io = await answer(encodeCmd({ tag: Buffer.alloc(8, 2), solNot: 0, lun: lun0, taskAttr: 0, cdb: rcdb, dataOut: { format: 'none' }, dataIn: { format: 'direct', desc: { va: 1n << 40n, key: 0, len: 512 } } }));
    expect(io).toMatchObject({ format: 'descriptor', key: 0x04, asc: 0x08, ascq: 0x00 });
    // A malformed indirect table (length not a multiple of 16).
    const iu = await answer(encodeCmd({ tag: Buffer.alloc(8, 3), solNot: 0, lun: lun0, taskAttr: 0, cdb: rcdb, dataOut: { format: 'none' }, dataIn: { format: 'indirect', table: { va: 0x5000n, key: 0, len: 20 }, totalLength: 512, inIu: [] } }));
    expect(iu).toMatchObject({ format: 'descriptor', key: 0x05, asc: 0x0e, ascq: 0x03 });
  });
});

describe('VioAdapter fuzz (bounded)', () => {
  it('survives random and mutated CRQ entries and IUs while a neighbour keeps working', async () => {
    const victim = setup();
    const neighbour = setup();
    await connect(victim.hv, victim.a);
    await connect(neighbour.hv, neighbour.a);
    expect((await login(neighbour.hv)).ok).toBe(true);
    const rnd = seededRandom(0x9e3779b9);
    const rcdb = Buffer.alloc(16);
    rcdb[0] = 0x28;
    rcdb.writeUInt16BE(8, 7);
    const seeds = [
      encodeLoginReq({ tag: Buffer.alloc(8, 1), reqItIuLen: 256, reqBufFmt: 6, reqFlags: 0, immDataOffset: 0, initiatorPortId: Buffer.alloc(16), targetPortId: Buffer.alloc(16) }),
      encodeCmd({ tag: Buffer.alloc(8, 2), solNot: 0, lun: Buffer.from('8000000000000000', 'hex'), taskAttr: 0, cdb: rcdb, dataOut: { format: 'none' }, dataIn: { format: 'indirect', table: { va: 0x5000n, key: 0, len: 32 }, totalLength: 4096, inIu: [{ va: 0x60000n, key: 0, len: 2048 }, { va: 0x70000n, key: 0, len: 2048 }] } }),
      encodeMad({ type: 3, status: 0, length: 148, tag: Buffer.alloc(8, 3), buffer: 0x9000n }),
      encodeMad({ type: 5, status: 0, length: 92, tag: Buffer.alloc(8, 4), buffer: 0x9400n }),
    ];
    let neighbourReads = 0;
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 100; i++) {
        const iu = Buffer.alloc(256);
        if (rnd() < 0.7) seeds[Math.floor(rnd() * seeds.length)]!.copy(iu);
        const flips = 1 + Math.floor(rnd() * 6);
        for (let f = 0; f < flips; f++) iu[Math.floor(rnd() * (rnd() < 0.6 ? 48 : 256))] = Math.floor(rnd() * 256);
        const ioba = rnd() < 0.95 ? 0x1000 + Math.floor(rnd() * 64) * 256 : Math.floor(rnd() * 2 ** 32);
        if (ioba + 256 <= victim.hv.mem.length) iu.copy(victim.hv.mem, ioba);
        const valid = rnd() < 0.85 ? 0x80 : [0xc0, 0xff, 0x00, 0x13][Math.floor(rnd() * 4)]!;
        const format = rnd() < 0.85 ? [1, 1, 2, 6][Math.floor(rnd() * 4)]! : Math.floor(rnd() * 256);
        victim.hv.serverQ.push(encodeCrq({ valid, format, status: Math.floor(rnd() * 256), timeout: 0, iuLength: rnd() < 0.9 ? 256 : Math.floor(rnd() * 65536), word1: ioba8(BigInt(ioba)) }));
      }
      victim.hv.interrupt?.();
      if (!victim.hv.registered) victim.a.start();
      victim.hv.post(INIT_ENTRY());
      // The neighbour partition reads throughout and must never notice.
      neighbour.hv.request(encodeCmd({ tag: ioba8(BigInt(round + 1)), solNot: 0, lun: Buffer.from('8000000000000000', 'hex'), taskAttr: 0, cdb: rcdb, dataOut: { format: 'none' }, dataIn: { format: 'direct', desc: { va: 0x60000n, key: 0, len: 4096 } } }), 0x1000);
      const e = await neighbour.hv.take((y) => y[0] === 0x80 && y.readBigUInt64BE(8) === BigInt(round + 1));
      const r = decodeRsp(neighbour.hv.mem.subarray(0x1000, 0x1000 + e.readUInt16BE(6)));
      if (r.ok && r.value.status === 0) neighbourReads++;
      await new Promise((res) => setTimeout(res, 5));
    }
    expect(neighbourReads).toBe(20);
    expect(neighbour.a.linkStats.protocolResets).toBe(0);
    expect(victim.a.linkStats.entries).toBeGreaterThan(100);
    // The victim still serves after a clean handshake.
    await new Promise((res) => setTimeout(res, 50));
    victim.hv.serverQ.length = 0;
    victim.hv.toClient.length = 0;
    if (!victim.hv.registered) victim.a.start();
    victim.hv.post(INIT_ENTRY());
    await victim.hv.take((e) => e[0] === 0xc0 && e[1] === 0x02);
    const lr = await login(victim.hv);
    expect(lr.ok).toBe(true);
  });
});
