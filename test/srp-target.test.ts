import { describe, expect, it } from 'vitest';
import type { Nexus, ScsiCommandRequest, ScsiCompletion, TmfRequest, TmfResult } from '../src/vscsi/fabric.js';
import { buildSense, parseSense, type ReasonName, type ScsiFailure, type SenseFormat } from '../src/vscsi/sense.js';
import { decodeSamLun } from '../src/vscsi/lun-address.js';
import type { DirectDescriptor } from '../src/srp/descriptors.js';
import {
  decodeLoginRej,
  decodeLoginRsp,
  decodeRsp,
  encodeCmd,
  encodeILogout,
  encodeLoginReq,
  encodeTskMgmt,
  SrpRspFlag,
  type SrpRsp,
} from '../src/srp/iu.js';
import { SrpChannel, type SrpDataMover } from '../src/srp/target.js';
import { seededRandom } from '../src/sim/prng.js';

/** In-test SCSI core stand-in: READ(10)/WRITE(10) on a RAM disk; `hold` keeps commands pending. */
class FakeNexus implements Nexus {
  readonly id = 1;
  readonly initiator = { name: 'x', portSuffix: 'y', protocolId: 4, transportId: Buffer.alloc(24) };
  disk = Buffer.alloc(64 * 512);
  hold = false;
  pending = new Map<bigint, ScsiCommandRequest>();
  closed = false;
  tmfs: TmfRequest[] = [];
  /** Data-in buffers given back by the fabric (the core's pool), and whether each was already sent. */
  released: Array<{ tag: bigint; sent: boolean }> = [];
  onRelease: (tag: bigint) => boolean = () => true;
  submit(r: ScsiCommandRequest): void {
    if (this.hold) {
      this.pending.set(r.tag, r);
      return;
    }
    void this.run(r);
  }
  async run(r: ScsiCommandRequest): Promise<void> {
    const lba = r.cdb.readUInt32BE(2);
    const len = r.cdb.readUInt16BE(7) * 512;
    if (r.cdb[0] === 0x28) {
      const data = Buffer.from(this.disk.subarray(lba * 512, lba * 512 + len));
      const n = Math.min(len, r.expectedLength);
      r.port.complete({
        status: 0,
        dataIn: data.subarray(0, n),
        residual: len < r.expectedLength ? { kind: 'underflow', count: r.expectedLength - len } : { kind: 'none' },
        releaseDataIn: () => this.released.push({ tag: r.tag, sent: this.onRelease(r.tag) }),
      });
    } else if (r.cdb[0] === 0x2a) {
      try {
        const data = await r.port.fetchDataOut(0, len);
        data.copy(this.disk, lba * 512);
        r.port.complete({ status: 0, residual: { kind: 'none' } });
      } catch {
        r.port.complete({ status: 2, sense: Buffer.from('700004000000000a0000000008000000', 'hex'), residual: { kind: 'none' } });
      }
    } else {
      r.port.complete({ status: 2, sense: Buffer.alloc(200, 0x70), residual: { kind: 'none' } });
    }
  }
  async taskManagement(t: TmfRequest): Promise<TmfResult> {
    this.tmfs.push(t);
    if (t.fn === 'ABORT_TASK') this.pending.delete(t.referencedTag!);
    else this.pending.clear();
    return { response: 'FUNCTION_COMPLETE' };
  }
  lunNumbers(): number[] {
    return [0];
  }
  activeCommands(): number {
    return this.pending.size;
  }
  /** The LU's sense format as the core would pick it (D_SENSE). */
  senseFormat: SenseFormat = 'fixed';
  failed: Array<{ tag: bigint; lun: number; reason: ReasonName }> = [];
  failureCompletion(r: ScsiCommandRequest, reason: ReasonName, extra: Omit<ScsiFailure, 'reason'> = {}): ScsiCompletion {
    this.failed.push({ tag: r.tag, lun: r.lun, reason });
    return {
      status: 2,
      sense: buildSense({ ...extra, reason }, this.senseFormat),
      residual: r.expectedLength > 0 ? { kind: 'underflow', count: r.expectedLength } : { kind: 'none' },
    };
  }
  failCommand(r: ScsiCommandRequest, reason: ReasonName, extra?: Omit<ScsiFailure, 'reason'>): void {
    const c = this.failureCompletion(r, reason, extra);
    queueMicrotask(() => r.port.complete(c));
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

/** Initiator memory: a flat buffer addressed by va; any access outside fails like a bad TCE. */
class Memory implements SrpDataMover {
  mem = Buffer.alloc(1 << 20);
  copies = 0;
  /** When set, reads wait for it (a slow external-table fetch). */
  gate: Promise<void> | undefined;
  private check(s: DirectDescriptor) {
    if (s.va + BigInt(s.len) > BigInt(this.mem.length)) throw new Error('H_PERMISSION');
  }
  async readFromInitiator(segs: readonly DirectDescriptor[], dst: Buffer): Promise<void> {
    if (this.gate) await this.gate;
    let o = 0;
    for (const s of segs) {
      this.check(s);
      this.copies++;
      this.mem.copy(dst, o, Number(s.va), Number(s.va) + s.len);
      o += s.len;
    }
  }
  async writeToInitiator(segs: readonly DirectDescriptor[], src: Buffer): Promise<void> {
    let o = 0;
    for (const s of segs) {
      this.check(s);
      this.copies++;
      src.copy(this.mem, Number(s.va), o, o + s.len);
      o += s.len;
    }
  }
}

/** Memory with the synchronous copy a hypervisor mover has (H_COPY_RDMA is one call). */
class SyncMemory extends Memory {
  readFromInitiatorNow(segs: readonly DirectDescriptor[], dst: Buffer): void {
    let o = 0;
    for (const s of segs) {
      if (s.va + BigInt(s.len) > BigInt(this.mem.length)) throw new Error('H_PERMISSION');
      this.copies++;
      this.mem.copy(dst, o, Number(s.va), Number(s.va) + s.len);
      o += s.len;
    }
  }
}

function setup(limit = 8, mem: Memory = new Memory()) {
  const nexus = new FakeNexus();
  const sent: Buffer[] = [];
  const errors: string[] = [];
  const ch = new SrpChannel<number>({
    login: { maxItIuLen: 256, maxTiIuLen: 256, requestLimit: limit, bufFmt: 6, multiChannel: false, requireZeroIdExtension: true },
    creditPolicy: 'initiator-recredits',
    openNexus: async () => nexus,
    decodeLun: decodeSamLun,
    mover: mem,
    send: (iu) => void sent.push(iu),
    onProtocolError: (m) => void errors.push(m),
    residualStyle: 'overflow-only',
    maxSenseLength: 96,
  });
  return { nexus, mem, sent, errors, ch };
}
const tag = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeUInt32BE(n, 4);
  b[0] = 0xa5; // make sure tags are echoed as bytes, not numbers
  return b;
};
const login = (iuLen = 256) =>
  encodeLoginReq({ tag: tag(0), reqItIuLen: iuLen, reqBufFmt: 6, reqFlags: 0, immDataOffset: 0, initiatorPortId: Buffer.alloc(16), targetPortId: Buffer.alloc(16) });
const cdb10 = (op: number, lba: number, blocks: number) => {
  const c = Buffer.alloc(16);
  c[0] = op;
  c.writeUInt32BE(lba, 2);
  c.writeUInt16BE(blocks, 7);
  return c;
};
const d = (va: number, len: number): DirectDescriptor => ({ va: BigInt(va), key: 0, len });
const rsp = (b: Buffer): SrpRsp => {
  const r = decodeRsp(b);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
};
const flush = () => new Promise((r) => setTimeout(r, 5));
const tagBig = (n: number): bigint => tag(n).readBigUInt64BE(0);

describe('SrpChannel', () => {
  it('offers the core a synchronous data-out copy when its mover has one; a refused copy counts as a transfer error', async () => {
    const plain = setup();
    plain.nexus.hold = true;
    await plain.ch.handle(login(), 1);
    const w = (t: number, va: number) =>
      encodeCmd({ tag: tag(t), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x2a, 0, 2), dataOut: { format: 'direct', desc: d(va, 1024) }, dataIn: { format: 'none' } });
    await plain.ch.handle(w(1, 0x1000), 2);
    expect(plain.nexus.pending.get(tagBig(1))!.port.fetchDataOutInto).toBeUndefined();

    const { ch, mem, nexus } = setup(8, new SyncMemory());
    nexus.hold = true;
    await ch.handle(login(), 1);
    mem.mem.fill(0x5a, 0x1000, 0x1400);
    await ch.handle(w(1, 0x1000), 2);
    await ch.handle(w(2, mem.mem.length - 512), 3); // the second half is outside initiator memory
    const dst = Buffer.alloc(1024);
    expect(nexus.pending.get(tagBig(1))!.port.fetchDataOutInto!(0, dst)).toBe(true);
    expect(dst.every((v) => v === 0x5a)).toBe(true);
    const part = Buffer.alloc(512);
    expect(nexus.pending.get(tagBig(1))!.port.fetchDataOutInto!(512, part)).toBe(true);
    expect(part.every((v) => v === 0x5a)).toBe(true);
    expect(() => nexus.pending.get(tagBig(2))!.port.fetchDataOutInto!(0, Buffer.alloc(1024))).toThrow('H_PERMISSION');
    expect(ch.stats.transferErrors).toBe(1);
    expect(() => nexus.pending.get(tagBig(1))!.port.fetchDataOutInto!(512, Buffer.alloc(1024))).toThrow(/not covered by the descriptors/);
  });

  it('logs in, writes through an external indirect table, reads back through a direct descriptor', async () => {
    const { ch, mem, sent, nexus, errors } = setup();
    await ch.handle(login(), 1);
    const lr = decodeLoginRsp(sent[0]!);
    expect(lr.ok && lr.value.reqLimDelta).toBe(8);
    // 12 x 512-byte segments; only the first 10 in the IU (as the Linux VIO client does), table at 0x8000.
    const segs = Array.from({ length: 12 }, (_, i) => d(0x10000 + i * 0x1000, 512));
    segs.forEach((s, i) => {
      mem.mem.writeBigUInt64BE(s.va, 0x8000 + i * 16);
      mem.mem.writeUInt32BE(512, 0x8000 + i * 16 + 12);
      mem.mem.fill(i + 1, Number(s.va), Number(s.va) + 512);
    });
    await ch.handle(
      encodeCmd({ tag: tag(1), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x2a, 4, 12),
        dataOut: { format: 'indirect', table: d(0x8000, 16 * 12), totalLength: 12 * 512, inIu: segs.slice(0, 10) },
        dataIn: { format: 'none' } }),
      2,
    );
    await flush();
    const w = rsp(sent[1]!);
    expect(w.status).toBe(0);
    expect(w.reqLimDelta).toBe(1);
    expect(w.tag).toEqual(tag(1));
    expect(nexus.disk[4 * 512 + 11 * 512]).toBe(12);
    await ch.handle(
      encodeCmd({ tag: tag(2), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x28, 4, 12),
        dataOut: { format: 'none' }, dataIn: { format: 'direct', desc: d(0x40000, 12 * 512) } }),
      3,
    );
    nexus.onRelease = () => mem.mem[0x40000 + 512 * 12 - 1] === 12;
    await flush();
    expect(rsp(sent[2]!).status).toBe(0);
    expect(mem.mem.subarray(0x40000 + 512 * 11, 0x40000 + 512 * 12).every((x) => x === 12)).toBe(true);
    // The core's pooled data-in buffer came back once, after the RDMA copy reached the client.
    expect(nexus.released).toEqual([{ tag: tagBig(2), sent: true }]);
    expect(errors).toEqual([]);
    expect(ch.outstandingCredits).toBe(0);
  });

  it('reports a short read with DIOVER for the VIO client and caps sense at 96 bytes', async () => {
    const { ch, sent } = setup();
    await ch.handle(login(), 0);
    await ch.handle(
      encodeCmd({ tag: tag(3), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x28, 0, 1),
        dataOut: { format: 'none' }, dataIn: { format: 'direct', desc: d(0x1000, 4096) } }),
      0,
    );
    await ch.handle(
      encodeCmd({ tag: tag(4), solNot: 0x04, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x12, 0, 0),
        dataOut: { format: 'none' }, dataIn: { format: 'none' } }),
      0,
    );
    await flush();
    const short = rsp(sent[1]!);
    expect(short.residualFlags).toBe(SrpRspFlag.DIOVER);
    expect(short.dataInResidual).toBe(4096 - 512);
    const cc = rsp(sent[2]!);
    expect(cc.status).toBe(2);
    expect(cc.sense!.length).toBe(96);
    expect(cc.responseData).toBeUndefined();
    expect(cc.solNot).toBe(1); // UCSOLNT requested, command failed
  });

  it('answers descriptor errors with CHECK CONDITION and protocol errors by dropping the connection', async () => {
    const { ch, sent, errors } = setup(2);
    await ch.handle(
      encodeCmd({ tag: tag(9), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x28, 0, 1),
        dataOut: { format: 'none' }, dataIn: { format: 'direct', desc: d(0, 512) } }),
      0,
    );
    expect(errors).toEqual(['SRP_CMD before login']);
    await ch.handle(login(), 0);
    await ch.handle(
      encodeCmd({ tag: tag(5), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x28, 0, 1),
        dataOut: { format: 'none' }, dataIn: { format: 'indirect', table: d(0, 20), totalLength: 512, inIu: [] } }),
      0,
    );
    const r = rsp(sent[1]!);
    expect(r.status).toBe(2);
    expect(r.sense![2]).toBe(0x05); // ILLEGAL REQUEST
    expect(r.reqLimDelta).toBe(1);
    // A read whose buffer is outside initiator memory: HARDWARE ERROR, the service keeps going.
    await ch.handle(
      encodeCmd({ tag: tag(6), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x28, 0, 1),
        dataOut: { format: 'none' }, dataIn: { format: 'direct', desc: d(0xfffffff0, 512) } }),
      0,
    );
    await flush();
    const hw = rsp(sent[2]!);
    expect(hw.status).toBe(2);
    expect(hw.sense![2]).toBe(0x04);
    // Credit overrun: hold two commands, send a third.
    const { ch: ch2, nexus: n2, errors: e2 } = setup(2);
    await ch2.handle(login(), 0);
    n2.hold = true;
    for (const t of [10, 11, 12]) {
      await ch2.handle(
        encodeCmd({ tag: tag(t), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x28, 0, 1),
          dataOut: { format: 'none' }, dataIn: { format: 'direct', desc: d(0, 512) } }),
        0,
      );
    }
    expect(e2[0]).toMatch(/credit overrun/);
    // Unknown opcode and a second login.
    await ch.handle(Buffer.from('41000000000000000000000000000000', 'hex'), 0);
    expect(errors[1]).toMatch(/unexpected SRP opcode 0x41/);
    await ch.handle(login(), 0);
    const rej = decodeLoginRej(sent[3]!);
    expect(rej.ok && rej.value.reason).toBe(0x00010006);
  });

  it('leaves failures to the core: its reasons, its sense in the LU\'s format (D_SENSE), credits returned', async () => {
    const { ch, sent, nexus, errors } = setup(4);
    nexus.senseFormat = 'descriptor';
    await ch.handle(login(), 0);
    const lun1 = Buffer.from([0, 1, 0, 0, 0, 0, 0, 0]);
    nexus.hold = true;
    const read = (t: number, dataIn: Parameters<typeof encodeCmd>[0]['dataIn'], lun = lun1) =>
      encodeCmd({ tag: tag(t), solNot: 0, lun, taskAttr: 0, cdb: cdb10(0x28, 0, 1), dataOut: { format: 'none' }, dataIn });
    await ch.handle(read(1, { format: 'direct', desc: d(0, 512) }), 0);
    // Same tag while the first is active: overlapped command.
    await ch.handle(read(1, { format: 'direct', desc: d(0, 512) }), 0);
    // Indirect table length not a multiple of 16: malformed IU.
    await ch.handle(read(2, { format: 'indirect', table: d(0, 20), totalLength: 512, inIu: [] }), 0);
    await flush();
    nexus.hold = false;
    // Data-in that cannot be written to the initiator: the core's failure replaces the completion.
    await ch.handle(read(3, { format: 'direct', desc: d(0xfffffff0, 512) }), 0);
    await flush();
    expect(errors).toEqual([]);
    expect(nexus.failed).toEqual([
      { tag: tagBig(1), lun: 1, reason: 'OVERLAPPED_COMMANDS_ATTEMPTED' },
      { tag: tagBig(2), lun: 1, reason: 'INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT' },
      { tag: tagBig(3), lun: 1, reason: 'LOGICAL_UNIT_COMMUNICATION_FAILURE' },
    ]);
    const rsps = sent.slice(1).map(rsp);
    expect(rsps.map((r) => r.status)).toEqual([2, 2, 2]);
    expect(rsps.map((r) => r.sense![0])).toEqual([0x72, 0x72, 0x72]);
    expect(rsps.map((r) => parseSense(r.sense!)).map((p) => [p!.key, p!.asc, p!.ascq])).toEqual([
      [0x0b, 0x4e, 0x00],
      [0x05, 0x0e, 0x03],
      [0x04, 0x08, 0x00],
    ]);
    // The failed READ reports nothing transferred; every failure returned its credit.
    expect(rsps[2]!.dataInResidual).toBe(512);
    expect(rsps.every((r) => r.reqLimDelta === 1)).toBe(true);
    expect(ch.outstandingCredits).toBe(1); // the held tag 1 is still in the core
  });

  it('ABORT TASK: the aborted command gets no response and no credit; the TM response carries RSP_CODE 0', async () => {
    const { ch, sent, nexus } = setup(4);
    await ch.handle(login(), 0);
    nexus.hold = true;
    const read = (t: number) =>
      encodeCmd({ tag: tag(t), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x28, 0, 1),
        dataOut: { format: 'none' }, dataIn: { format: 'direct', desc: d(0, 512) } });
    await ch.handle(read(20), 0);
    await ch.handle(read(21), 0);
    expect(ch.outstandingCredits).toBe(2);
    await ch.handle(encodeTskMgmt({ tag: tag(30), solNot: 0, lun: Buffer.alloc(8), func: 0x01, taskTag: tag(20) }), 0);
    const tm = rsp(sent[1]!);
    expect(tm.tag).toEqual(tag(30));
    expect(tm.responseData).toEqual(Buffer.from([0, 0, 0, 0]));
    expect(tm.reqLimDelta).toBe(1);
    expect(nexus.tmfs[0]).toMatchObject({ fn: 'ABORT_TASK', lun: 0, referencedTag: tag(20).readBigUInt64BE(0) });
    expect(ch.outstandingCredits).toBe(1);
    // The remaining command completes normally with one credit.
    const r21 = nexus.pending.get(tag(21).readBigUInt64BE(0))!;
    nexus.pending.clear();
    await nexus.run(r21);
    await flush();
    expect(rsp(sent[2]!).reqLimDelta).toBe(1);
    expect(sent.length).toBe(3);
    // LUN RESET retires every held command; unknown functions are "not supported".
    await ch.handle(read(22), 0);
    await ch.handle(read(23), 0);
    await ch.handle(encodeTskMgmt({ tag: tag(31), solNot: 0, lun: Buffer.alloc(8), func: 0x08, taskTag: Buffer.alloc(8) }), 0);
    expect(ch.activeCount).toBe(0);
    expect(ch.outstandingCredits).toBe(0);
    await ch.handle(encodeTskMgmt({ tag: tag(32), solNot: 0, lun: Buffer.alloc(8), func: 0x10, taskTag: Buffer.alloc(8) }), 0);
    expect(rsp(sent[sent.length - 1]!).responseData).toEqual(Buffer.from([0, 0, 0, 4]));
  });

  it('a LUN RESET that overtakes a command still fetching its descriptor table drops it before the core sees it', async () => {
    const { ch, sent, nexus, mem } = setup(4);
    await ch.handle(login(), 0);
    let open!: () => void;
    mem.gate = new Promise((r) => (open = r));
    const submitted: bigint[] = [];
    const orig = nexus.submit.bind(nexus);
    nexus.submit = (r) => {
      submitted.push(r.tag);
      orig(r);
    };
    // 3 descriptors, none in the IU: the table must be fetched (and the fetch is held).
    const p = ch.handle(
      encodeCmd({ tag: tag(50), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x2a, 0, 3),
        dataOut: { format: 'indirect', table: d(0x8000, 48), totalLength: 1536, inIu: [] }, dataIn: { format: 'none' } }),
      0,
    );
    // The core takes its time over the reset; the table fetch finishes meanwhile.
    let finishTmf!: () => void;
    const tmfGate = new Promise<void>((r) => (finishTmf = r));
    const origTmf = nexus.taskManagement.bind(nexus);
    nexus.taskManagement = async (t) => {
      const r = await origTmf(t);
      await tmfGate;
      return r;
    };
    const tmf = ch.handle(encodeTskMgmt({ tag: tag(51), solNot: 0, lun: Buffer.alloc(8), func: 0x08, taskTag: Buffer.alloc(8) }), 0);
    await flush();
    open();
    await flush();
    expect(submitted).toEqual([]); // held while the reset is undecided
    finishTmf();
    await Promise.all([p, tmf]);
    await flush();
    expect(submitted).toEqual([]);
    expect(sent.length).toBe(2); // LOGIN_RSP and the TM response only
    expect(rsp(sent[1]!).responseData).toEqual(Buffer.from([0, 0, 0, 0]));
    expect(ch.activeCount).toBe(0);
    expect(ch.outstandingCredits).toBe(0);
  });

  it('a LUN RESET waits for a command already sending its data and response, then answers after it', async () => {
    const { ch, sent, nexus, mem } = setup(4);
    await ch.handle(login(), 0);
    // The core has completed the READ; its data-in copy to the initiator is still in progress.
    let copied!: () => void;
    const copyGate = new Promise<void>((r) => (copied = r));
    const write = mem.writeToInitiator.bind(mem);
    mem.writeToInitiator = async (segs, src) => {
      await copyGate;
      return write(segs, src);
    };
    nexus.disk.fill(0x5a, 0, 512);
    await ch.handle(
      encodeCmd({ tag: tag(60), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x28, 0, 1),
        dataOut: { format: 'none' }, dataIn: { format: 'direct', desc: d(0x1000, 512) } }),
      0,
    );
    await flush();
    const tmf = ch.handle(encodeTskMgmt({ tag: tag(61), solNot: 0, lun: Buffer.alloc(8), func: 0x08, taskTag: Buffer.alloc(8) }), 0);
    await flush();
    expect(sent.length).toBe(1); // LOGIN_RSP only: the reset waits for the command's response
    copied();
    await tmf;
    expect(sent.length).toBe(3);
    expect(rsp(sent[1]!)).toMatchObject({ tag: tag(60), status: 0 });
    expect(mem.mem.subarray(0x1000, 0x1200).every((x) => x === 0x5a)).toBe(true);
    expect(rsp(sent[2]!)).toMatchObject({ tag: tag(61), responseData: Buffer.from([0, 0, 0, 0]) });
    expect(ch.activeCount).toBe(0);
  });

  it('I_LOGOUT closes the nexus', async () => {
    const { ch, nexus } = setup();
    let loggedOut = false;
    await ch.handle(login(), 0);
    (ch as unknown as { opts: { onLogout: () => void } }).opts.onLogout = () => (loggedOut = true);
    await ch.handle(encodeILogout({ tag: tag(40) }), 0);
    expect(nexus.closed).toBe(true);
    expect(ch.loggedIn).toBe(false);
    expect(loggedOut).toBe(true);
  });
});

describe('SrpChannel fuzz (bounded)', () => {
  it('answers or rejects every random / mutated IU without throwing, and keeps credits consistent', async () => {
    const rnd = seededRandom(0x2545f491);
    const seeds = [
      login(),
      encodeCmd({ tag: tag(1), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x28, 0, 1), dataOut: { format: 'none' }, dataIn: { format: 'indirect', table: d(0x8000, 32), totalLength: 1024, inIu: [d(0x1000, 512), d(0x2000, 512)] } }),
      encodeCmd({ tag: tag(2), solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: cdb10(0x2a, 0, 1), dataOut: { format: 'direct', desc: d(0x3000, 512) }, dataIn: { format: 'none' } }),
      encodeTskMgmt({ tag: tag(3), solNot: 0, lun: Buffer.alloc(8), func: 0x01, taskTag: tag(1) }),
      encodeILogout({ tag: tag(4) }),
    ];
    let protocolErrors = 0;
    let answered = 0;
    for (let round = 0; round < 40; round++) {
      const { ch, sent, errors } = setup(4);
      await ch.handle(login(), 0);
      for (let i = 0; i < 50; i++) {
        const iu = Buffer.from(seeds[Math.floor(rnd() * seeds.length)]!);
        const flips = Math.floor(rnd() * 5);
        for (let f = 0; f < flips; f++) iu[Math.floor(rnd() * iu.length)] = Math.floor(rnd() * 256);
        const cut = rnd() < 0.1 ? iu.subarray(0, Math.floor(rnd() * iu.length)) : iu;
        await ch.handle(Buffer.from(cut), i);
      }
      await flush();
      protocolErrors += errors.length;
      answered += sent.length;
      // Every answered SRP_RSP carries at most one credit.
      for (const b of sent) {
        const r = decodeRsp(b);
        if (r.ok) expect(r.value.reqLimDelta).toBeLessThanOrEqual(1);
      }
      await ch.close();
    }
    expect(answered).toBeGreaterThan(100);
    expect(protocolErrors).toBeGreaterThan(0);
  });
});
