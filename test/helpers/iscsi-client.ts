/**
 * A small iSCSI initiator for tests: raw PDU send/receive plus login, SCSI commands (immediate data,
 * unsolicited Data-Out, R2T) and logout. It deliberately lets tests write any bytes they like.
 */
import { connect, type Socket } from 'node:net';
import { PduReceiver, frameOut } from '../../src/iscsi/receiver.js';
import type { Pdu } from '../../src/iscsi/pdu.js';
import { encodeTextKeys, decodeTextKeys, type KeyValues } from '../../src/iscsi/text-keys.js';
import { chapResponse, decodeBinary } from '../../src/iscsi/chap.js';

export interface LoginOptions {
  initiator: string;
  target?: string;
  discovery?: boolean;
  isid?: Buffer;
  tsih?: number;
  cid?: number;
  keys?: KeyValues;
  chap?: { user: string; secret: string; algorithms?: string };
  mutual?: { user: string; secret: string };
}

export interface ScsiResult {
  status: number;
  data: Buffer;
  sense?: Buffer;
  residualFlags: number;
  residual: number;
  dataInPdus: number;
  r2ts: number;
}

export class IscsiTestClient {
  private readonly rx = new PduReceiver({ headerDigest: false, dataDigest: false, maxRecvDataSegmentLength: 1 << 24 });
  private waiters: Array<() => void> = [];
  private queue: Pdu[] = [];
  closed = false;
  cmdSn = 1;
  expStatSn = 0;
  itt = 1;
  headerDigest = false;
  dataDigest = false;
  negotiated = new Map<string, string>();
  tsih = 0;
  cid = 0;

  private constructor(readonly socket: Socket) {
    socket.on('data', (c) => {
      this.rx.push(c);
      for (;;) {
        const r = this.rx.next();
        if (r.kind !== 'pdu') break;
        this.queue.push({ bhs: Buffer.from(r.pdu.bhs), ahs: Buffer.from(r.pdu.ahs), data: Buffer.from(r.pdu.data) });
      }
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static connect(port: number, host = '127.0.0.1'): Promise<IscsiTestClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host }, () => resolve(new IscsiTestClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Wait for the next PDU; undefined if the connection closed or `timeoutMs` passed. */
  async next(timeoutMs = 5000): Promise<Pdu | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (!this.queue.length) {
      if (this.closed) return undefined;
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
    const p = this.queue.shift()!;
    this.rx.limits = { headerDigest: this.headerDigest, dataDigest: this.dataDigest, maxRecvDataSegmentLength: 1 << 24 };
    return p;
  }

  /** Resolves once the peer closes (or after timeoutMs with false). */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) {
      this.queue = [];
      await this.next(Math.max(1, deadline - Date.now()));
    }
    return this.closed;
  }

  sendRaw(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  sendPdu(bhs: Buffer, data?: Buffer): void {
    const len = data?.length ?? 0;
    bhs[5] = (len >> 16) & 0xff;
    bhs[6] = (len >> 8) & 0xff;
    bhs[7] = len & 0xff;
    for (const c of frameOut(bhs, data, this.headerDigest, this.dataDigest)) this.socket.write(c);
  }

  close(): void {
    this.socket.destroy();
  }

  loginPdu(o: LoginOptions, csg: number, nsg: number, transit: boolean, keys: KeyValues): void {
    const b = Buffer.alloc(48);
    b[0] = 0x43;
    b[1] = (transit ? 0x80 : 0) | (csg << 2) | (transit ? nsg : 0);
    (o.isid ?? Buffer.from([0x80, 0, 0, 0, 0, 1])).copy(b, 8);
    b.writeUInt16BE(o.tsih ?? 0, 14);
    b.writeUInt32BE(this.itt, 16);
    b.writeUInt16BE(o.cid ?? 0, 20);
    b.writeUInt32BE(this.cmdSn, 24);
    b.writeUInt32BE(this.expStatSn, 28);
    this.sendPdu(b, encodeTextKeys(keys));
  }

  /** Full login; returns the final status (class<<8|detail) and the target's keys. */
  async login(o: LoginOptions): Promise<{ status: number; keys: Map<string, string> }> {
    const all = new Map<string, string>();
    const first: KeyValues = [['InitiatorName', o.initiator], ['SessionType', o.discovery ? 'Discovery' : 'Normal']];
    if (o.target) first.push(['TargetName', o.target]);
    const exchange = async (csg: number, nsg: number, transit: boolean, keys: KeyValues) => {
      this.loginPdu(o, csg, nsg, transit, keys);
      const r = await this.next();
      if (!r) throw new Error('connection closed during login');
      if ((r.bhs[0]! & 0x3f) !== 0x23) throw new Error(`unexpected opcode 0x${r.bhs[0]!.toString(16)} during login`);
      const status = (r.bhs[36]! << 8) | r.bhs[37]!;
      this.expStatSn = (r.bhs.readUInt32BE(24) + 1) >>> 0;
      const dec = decodeTextKeys(r.data);
      const keysOut = new Map(dec.ok ? dec.pairs : []);
      for (const [k, v] of keysOut) all.set(k, v);
      return { status, transit: (r.bhs[1]! & 0x80) !== 0, nsg: r.bhs[1]! & 3, tsih: r.bhs.readUInt16BE(14), keys: keysOut };
    };
    let stage = 1;
    if (o.chap) {
      stage = 0;
      let r = await exchange(0, 1, false, [...first, ['AuthMethod', 'CHAP,None']]);
      if (r.status) return { status: r.status, keys: all };
      r = await exchange(0, 1, false, [['CHAP_A', o.chap.algorithms ?? '5']]);
      if (r.status) return { status: r.status, keys: all };
      const alg = Number(r.keys.get('CHAP_A'));
      const id = Number(r.keys.get('CHAP_I'));
      const ch = decodeBinary(r.keys.get('CHAP_C') ?? '')!;
      const resp: KeyValues = [['CHAP_N', o.chap.user], ['CHAP_R', '0x' + chapResponse(alg, id, o.chap.secret, ch).toString('hex')]];
      const myChallenge = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
      if (o.mutual) resp.push(['CHAP_I', '7'], ['CHAP_C', '0x' + myChallenge.toString('hex')]);
      r = await exchange(0, 1, true, resp);
      if (r.status) return { status: r.status, keys: all };
      if (o.mutual) {
        const want = chapResponse(alg, 7, o.mutual.secret, myChallenge).toString('hex');
        const got = decodeBinary(r.keys.get('CHAP_R') ?? '')?.toString('hex');
        if (got !== want || r.keys.get('CHAP_N') !== o.mutual.user) throw new Error('target failed mutual CHAP');
      }
      stage = 1;
      first.length = 0;
    }
    const op: KeyValues = [...first];
    if (stage === 1 && !o.chap) op.push(['AuthMethod', 'None']);
    op.push(...(o.keys ?? []));
    if (!o.chap) {
      // Security stage without authentication, then operational.
      const r0 = await exchange(0, 1, true, [...first, ['AuthMethod', 'None']]);
      if (r0.status) return { status: r0.status, keys: all };
      op.length = 0;
      op.push(...(o.keys ?? []));
    }
    const r = await exchange(1, 3, true, op);
    if (r.status) return { status: r.status, keys: all };
    if (!r.transit || r.nsg !== 3) throw new Error('target did not transit to full feature phase');
    this.tsih = r.tsih;
    this.cid = o.cid ?? 0;
    this.negotiated = all;
    this.headerDigest = all.get('HeaderDigest') === 'CRC32C';
    this.dataDigest = all.get('DataDigest') === 'CRC32C';
    this.rx.limits = { headerDigest: this.headerDigest, dataDigest: this.dataDigest, maxRecvDataSegmentLength: 1 << 24 };
    return { status: 0, keys: all };
  }

  param(name: string, dflt: number): number {
    const v = this.negotiated.get(name);
    return v === undefined ? dflt : Number(v);
  }

  /** Build a SCSI Command BHS. */
  commandBhs(cdb: Buffer, o: { read?: number; write?: number; lun?: number; final?: boolean; immediate?: boolean; itt?: number; cmdSn?: number }): Buffer {
    const b = Buffer.alloc(48);
    b[0] = 0x01 | (o.immediate ? 0x40 : 0);
    b[1] = (o.final === false ? 0 : 0x80) | (o.read !== undefined ? 0x40 : 0) | (o.write !== undefined ? 0x20 : 0) | 1;
    b[9] = o.lun ?? 0;
    b.writeUInt32BE(o.itt ?? this.itt++, 16);
    b.writeUInt32BE(o.write ?? o.read ?? 0, 20);
    b.writeUInt32BE(o.cmdSn ?? this.cmdSn, 24);
    if (o.cmdSn === undefined && !o.immediate) this.cmdSn = (this.cmdSn + 1) >>> 0;
    b.writeUInt32BE(this.expStatSn, 28);
    cdb.copy(b, 32, 0, Math.min(16, cdb.length));
    return b;
  }

  /** Run one SCSI command to completion (answers R2Ts; sends immediate/unsolicited data as negotiated). */
  async scsi(cdb: Buffer, o: { read?: number; write?: Buffer; lun?: number; timeoutMs?: number } = {}): Promise<ScsiResult> {
    const itt = this.itt++;
    const write = o.write;
    const immediateOk = this.negotiated.get('ImmediateData') !== 'No';
    const initialR2T = this.negotiated.get('InitialR2T') !== 'No';
    const mrdsl = this.param('MaxRecvDataSegmentLength', 8192);
    const fbl = this.param('FirstBurstLength', 65536);
    let imm: Buffer | undefined;
    let unsolicitedEnd = 0;
    if (write && write.length) {
      const firstBurst = Math.min(fbl, write.length);
      if (immediateOk) imm = write.subarray(0, Math.min(mrdsl, firstBurst));
      unsolicitedEnd = initialR2T ? (imm?.length ?? 0) : firstBurst;
    }
    const final = !(write && unsolicitedEnd > (imm?.length ?? 0));
    const bhs = this.commandBhs(cdb, { ...(o.read !== undefined ? { read: o.read } : {}), ...(write ? { write: write.length } : {}), lun: o.lun ?? 0, final, itt });
    this.sendPdu(bhs, imm);
    if (write && !final) this.sendData(itt, 0xffffffff, write, imm?.length ?? 0, unsolicitedEnd, mrdsl);
    const chunks: Buffer[] = [];
    let dataInPdus = 0;
    let r2ts = 0;
    for (;;) {
      const p = await this.next(o.timeoutMs ?? 10000);
      if (!p) throw new Error(`no response to command itt=${itt} (connection ${this.closed ? 'closed' : 'idle'})`);
      const op = p.bhs[0]! & 0x3f;
      if (op === 0x20 && p.bhs.readUInt32BE(20) !== 0xffffffff) {
        this.nopReply(p);
        continue;
      }
      if (p.bhs.readUInt32BE(16) !== itt) throw new Error(`unexpected PDU opcode 0x${op.toString(16)} for itt ${p.bhs.readUInt32BE(16)}`);
      if (op === 0x31) {
        r2ts++;
        const ttt = p.bhs.readUInt32BE(20);
        const off = p.bhs.readUInt32BE(40);
        const len = p.bhs.readUInt32BE(44);
        this.sendData(itt, ttt, write!, off, off + len, mrdsl);
        continue;
      }
      if (op === 0x25) {
        dataInPdus++;
        const off = p.bhs.readUInt32BE(40);
        chunks.push(Buffer.concat([Buffer.alloc(Math.max(0, off - chunks.reduce((a, c) => a + c.length, 0))), p.data]));
        if (p.bhs[1]! & 0x01) {
          this.expStatSn = (p.bhs.readUInt32BE(24) + 1) >>> 0;
          return { status: p.bhs[3]!, data: Buffer.concat(chunks), residualFlags: p.bhs[1]! & 0x06, residual: p.bhs.readUInt32BE(44), dataInPdus, r2ts };
        }
        continue;
      }
      if (op === 0x21) {
        this.expStatSn = (p.bhs.readUInt32BE(24) + 1) >>> 0;
        const res: ScsiResult = { status: p.bhs[3]!, data: Buffer.concat(chunks), residualFlags: p.bhs[1]! & 0x1e, residual: p.bhs.readUInt32BE(44), dataInPdus, r2ts };
        if (p.data.length >= 2) res.sense = p.data.subarray(2, 2 + p.data.readUInt16BE(0));
        return res;
      }
      throw new Error(`unexpected opcode 0x${op.toString(16)} while waiting for itt ${itt}`);
    }
  }

  sendData(itt: number, ttt: number, data: Buffer, from: number, to: number, mrdsl: number, dataSnStart = 0): void {
    let sn = dataSnStart;
    for (let off = from; off < to; off += mrdsl) {
      const n = Math.min(mrdsl, to - off);
      const b = Buffer.alloc(48);
      b[0] = 0x05;
      b[1] = off + n >= to ? 0x80 : 0;
      b.writeUInt32BE(itt, 16);
      b.writeUInt32BE(ttt, 20);
      b.writeUInt32BE(this.expStatSn, 28);
      b.writeUInt32BE(sn++, 36);
      b.writeUInt32BE(off, 40);
      this.sendPdu(b, data.subarray(off, off + n));
    }
  }

  nopReply(p: Pdu): void {
    const b = Buffer.alloc(48);
    b[0] = 0x40;
    b[1] = 0x80;
    b.writeUInt32BE(0xffffffff, 16);
    b.writeUInt32BE(p.bhs.readUInt32BE(20), 20);
    b.writeUInt32BE(this.cmdSn, 24);
    b.writeUInt32BE(this.expStatSn, 28);
    this.sendPdu(b);
  }

  /** NOP-Out ping with a reply expected; returns the NOP-In. */
  async ping(data?: Buffer): Promise<Pdu | undefined> {
    const b = Buffer.alloc(48);
    b[0] = 0x40;
    b[1] = 0x80;
    const itt = this.itt++;
    b.writeUInt32BE(itt, 16);
    b.writeUInt32BE(0xffffffff, 20);
    b.writeUInt32BE(this.cmdSn, 24);
    b.writeUInt32BE(this.expStatSn, 28);
    this.sendPdu(b, data);
    for (;;) {
      const p = await this.next();
      if (!p) return undefined;
      if ((p.bhs[0]! & 0x3f) === 0x20 && p.bhs.readUInt32BE(16) === itt) return p;
    }
  }

  async text(keys: KeyValues): Promise<KeyValues> {
    const itt = this.itt++;
    let ttt = 0xffffffff;
    let data = encodeTextKeys(keys);
    const parts: Buffer[] = [];
    for (;;) {
      const b = Buffer.alloc(48);
      b[0] = 0x44;
      b[1] = 0x80;
      b.writeUInt32BE(itt, 16);
      b.writeUInt32BE(ttt, 20);
      b.writeUInt32BE(this.cmdSn, 24);
      b.writeUInt32BE(this.expStatSn, 28);
      this.sendPdu(b, data);
      data = Buffer.alloc(0);
      const p = await this.next();
      if (!p) throw new Error('closed during text exchange');
      if ((p.bhs[0]! & 0x3f) !== 0x24) throw new Error(`unexpected opcode 0x${(p.bhs[0]! & 0x3f).toString(16)} in text exchange`);
      this.expStatSn = (p.bhs.readUInt32BE(24) + 1) >>> 0;
      parts.push(p.data);
      if (p.bhs[1]! & 0x80) break;
      ttt = p.bhs.readUInt32BE(20);
    }
    const dec = decodeTextKeys(Buffer.concat(parts));
    if (!dec.ok) throw new Error(dec.error);
    return dec.pairs;
  }

  /**
   * Task management request (immediate; RFC 7143 §11.5) for function `fn`; returns the response code
   * of the answer, which must be the next PDU.
   */
  async tmf(fn: number, o: { referencedTag?: number; lun?: number; refCmdSn?: number } = {}): Promise<number> {
    const b = Buffer.alloc(48);
    b[0] = 0x42;
    b[1] = 0x80 | fn;
    b[9] = o.lun ?? 0;
    b.writeUInt32BE(this.itt++, 16);
    b.writeUInt32BE(o.referencedTag ?? 0xffffffff, 20);
    b.writeUInt32BE(this.cmdSn, 24);
    b.writeUInt32BE(this.expStatSn, 28);
    b.writeUInt32BE(o.refCmdSn ?? this.cmdSn, 32);
    this.sendPdu(b);
    const p = await this.next();
    if (!p || (p.bhs[0]! & 0x3f) !== 0x22) throw new Error(`expected a Task Management Function Response, got ${p ? `opcode 0x${(p.bhs[0]! & 0x3f).toString(16)}` : 'nothing'}`);
    return p.bhs[2]!;
  }

  async logout(reason = 0, cid = this.cid): Promise<number | undefined> {
    const b = Buffer.alloc(48);
    b[0] = 0x46;
    b[1] = 0x80 | reason;
    b.writeUInt32BE(this.itt++, 16);
    b.writeUInt16BE(cid, 20);
    b.writeUInt32BE(this.cmdSn, 24);
    b.writeUInt32BE(this.expStatSn, 28);
    this.sendPdu(b);
    for (;;) {
      const p = await this.next();
      if (!p) return undefined;
      if ((p.bhs[0]! & 0x3f) === 0x26) return p.bhs[2]!;
    }
  }
}

export const cdb = {
  read10: (lba: number, blocks: number) => {
    const c = Buffer.alloc(10);
    c[0] = 0x28;
    c.writeUInt32BE(lba, 2);
    c.writeUInt16BE(blocks, 7);
    return c;
  },
  write10: (lba: number, blocks: number) => {
    const c = Buffer.alloc(10);
    c[0] = 0x2a;
    c.writeUInt32BE(lba, 2);
    c.writeUInt16BE(blocks, 7);
    return c;
  },
  inquiry: (len = 96) => Buffer.from([0x12, 0, 0, 0, len, 0]),
  testUnitReady: () => Buffer.alloc(6),
  readCapacity10: () => Buffer.from([0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
};
