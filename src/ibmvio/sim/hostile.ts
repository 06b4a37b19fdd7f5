/**
 * The hostile client partition (`vtgt sim ibmvio --hostile`): a sequence of attacks on its own
 * adapter, one report line each (what was sent, how the server answered), then a bounded fuzz run.
 * It checks that its never-mapped guard pages are untouched and that the server still serves it
 * at the end. Normal partitions run beside it and must see nothing.
 */
import { Buffer } from 'node:buffer';
import { decodeLoginRej, decodeRsp, encodeCmd, encodeLoginReq, encodeTskMgmt, SrpOpcode } from '../../srp/iu.js';
import type { DataBufferDescriptor } from '../../srp/descriptors.js';
import {
  CRQ_ENTRY_LEN,
  CRQ_QUEUE_BYTES,
  CrqFormat,
  CrqInitFormat,
  CrqValid,
  H,
  MadType,
  TCE_PAGE_SIZE,
  TcePerm,
} from '../constants.js';
import { encodeCrq, INIT_COMPLETE_ENTRY, INIT_ENTRY, ioba8 } from '../crq-entry.js';
import { encodeMad } from '../mad-codec.js';
import { Layout } from './client.js';
import type { ClientProcessArgs } from './client-main.js';
import { Partition } from './partition.js';
import { seededRandom } from '../../sim/prng.js';
import { credentialFile, readCredential } from '../../sim/credentials.js';
import { partitionCredentialName } from './wire.js';
import { randomBytes } from 'node:crypto';
import { senseKeyOf } from '../../vscsi/sense.js';

const CANARY = 0x5a;
const IU = Layout.IU_BASE;
const BUF = Layout.DATA_BASE;

class Raw {
  private cursor = 0;
  private readonly inbox: Buffer[] = [];
  private wake: (() => void) | undefined;
  draining = true;
  private tokens = 1n;

  constructor(readonly part: Partition) {
    part.onIrq(() => this.drain());
  }

  drain(): void {
    if (!this.draining) return;
    const slot = Buffer.alloc(CRQ_ENTRY_LEN);
    for (;;) {
      this.part.mem.read(Layout.CRQ + this.cursor, slot);
      if (slot[0] === 0) break;
      this.inbox.push(Buffer.from(slot));
      this.part.mem.write(Layout.CRQ + this.cursor, Buffer.alloc(1));
      this.cursor = (this.cursor + CRQ_ENTRY_LEN) % CRQ_QUEUE_BYTES;
    }
    this.wake?.();
  }

  /** Next entry within `ms`, or undefined. */
  async next(ms: number): Promise<Buffer | undefined> {
    const end = Date.now() + ms;
    while (this.inbox.length === 0) {
      const left = end - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = undefined;
    }
    return this.inbox.shift();
  }

  clear(): void {
    this.inbox.length = 0;
  }

  async register(): Promise<number> {
    this.part.mem.write(Layout.CRQ, Buffer.alloc(CRQ_QUEUE_BYTES));
    this.cursor = 0;
    return this.part.hcall({ call: 'H_REG_CRQ', ioba: Layout.CRQ, len: CRQ_QUEUE_BYTES });
  }

  /** Send INIT and answer until the link is up; true on success. */
  async handshake(): Promise<boolean> {
    await this.part.sendCrq(INIT_ENTRY());
    for (;;) {
      const e = await this.next(2000);
      if (!e) return false;
      if (e[0] === CrqValid.INIT && e[1] === CrqInitFormat.INIT) {
        await this.part.sendCrq(INIT_COMPLETE_ENTRY());
        return true;
      }
      if (e[0] === CrqValid.INIT && e[1] === CrqInitFormat.INIT_COMPLETE) return true;
    }
  }

  token(): Buffer {
    return ioba8(0xbad0000000000000n | this.tokens++);
  }

  /** Put an IU at `ioba` and send a CRQ pointing at it. */
  async send(iu: Buffer, opts: { format?: number; valid?: number; len?: number; ioba?: number } = {}): Promise<number> {
    const ioba = opts.ioba ?? IU;
    if (ioba + iu.length <= Layout.GUARD) this.part.mem.write(ioba, iu);
    return this.part.sendCrq(
      encodeCrq({ valid: opts.valid ?? CrqValid.CMD_RSP, format: opts.format ?? CrqFormat.SRP, status: 0, timeout: 0, iuLength: opts.len ?? 256, word1: ioba8(BigInt(ioba)) }),
    );
  }

  /** Wait for the response entry and read the IU back. */
  async answer(ms = 2000, ioba = IU): Promise<{ crq: Buffer; iu: Buffer } | undefined> {
    for (;;) {
      const e = await this.next(ms);
      if (!e) return undefined;
      if (e[0] !== CrqValid.CMD_RSP) continue;
      const iu = Buffer.alloc(Math.min(256, e.readUInt16BE(6)));
      this.part.mem.read(ioba, iu);
      return { crq: e, iu };
    }
  }

  /** After a protocol error the server frees and re-registers its queue: event 0x02, then INIT. */
  async expectReset(ms = 3000): Promise<boolean> {
    let sawEvent = false;
    for (;;) {
      const e = await this.next(ms);
      if (!e) return false;
      if (e[0] === CrqValid.TRANSPORT_EVENT) sawEvent = true;
      if (e[0] === CrqValid.INIT && e[1] === CrqInitFormat.INIT && sawEvent) {
        await this.part.sendCrq(INIT_COMPLETE_ENTRY());
        return true;
      }
    }
  }

  loginIu(over: { len?: number; flags?: number; fmt?: number } = {}): Buffer {
    return encodeLoginReq({ tag: this.token(), reqItIuLen: over.len ?? 256, reqBufFmt: over.fmt ?? 6, reqFlags: over.flags ?? 0, immDataOffset: 0, initiatorPortId: Buffer.alloc(16), targetPortId: Buffer.alloc(16) });
  }

  async login(): Promise<boolean> {
    await this.send(this.loginIu());
    const a = await this.answer();
    return !!a && a.iu[0] === SrpOpcode.LOGIN_RSP;
  }

  readCmd(desc: DataBufferDescriptor, write = false, blocks = 1): Buffer {
    const cdb = Buffer.alloc(16);
    cdb[0] = write ? 0x2a : 0x28;
    cdb.writeUInt16BE(blocks, 7);
    return encodeCmd({ tag: this.token(), solNot: 0, lun: Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0]), taskAttr: 0, cdb,
      dataOut: write ? desc : { format: 'none' }, dataIn: write ? { format: 'none' } : desc });
  }
}

export async function runHostile(a: ClientProcessArgs, say: (k: 'LOG' | 'RESULT', s: string) => void): Promise<number> {
  const part = await Partition.boot({ socketPath: a.socketPath, unit: a.unit, memBytes: Layout.MEM_BYTES });
  const raw = new Raw(part);
  const lines: string[] = [];
  let unexpected = 0;
  const report = (what: string, answer: string, ok: boolean) => {
    const line = `hostile lpar${part.partitionNumber}: ${what} -> ${answer}${ok ? '' : ' (UNEXPECTED)'}`;
    lines.push(line);
    say('LOG', line);
    if (!ok) unexpected++;
  };
  // Map everything but the guard pages, and fill the guard with a canary.
  await part.hcall({ call: 'H_PUT_TCE', ioba: 0, pages: Layout.GUARD / TCE_PAGE_SIZE, realOffset: 0, perm: TcePerm.RW });
  part.mem.write(Layout.GUARD, Buffer.alloc(Layout.GUARD_BYTES, CANARY));
  const d = (va: number, len: number) => ({ va: BigInt(va), key: 0, len });
  const scsi = async (what: string, iu: Buffer, expectKey: number | number[]) => {
    await raw.send(iu);
    const r = await raw.answer();
    const rsp = r ? decodeRsp(r.iu) : undefined;
    const key = rsp?.ok && rsp.value.sense ? (senseKeyOf(rsp.value.sense) ?? -1) : -1;
    report(what, rsp?.ok ? `SRP_RSP status 0x${rsp.value.status.toString(16)} sense key 0x${key.toString(16)}` : 'no SRP_RSP', rsp?.ok === true && rsp.value.status === 2 && ([] as number[]).concat(expectKey).includes(key));
  };
  const mad = async (what: string, type: number, length: number, buffer: number | undefined, expect: number) => {
    await raw.send(encodeMad({ type, status: 0, length, tag: raw.token(), ...(buffer !== undefined ? { buffer: BigInt(buffer) } : {}) }), { format: CrqFormat.MAD });
    const r = await raw.answer();
    const st = r ? r.iu.readUInt16BE(4) : -1;
    report(what, r ? `MAD status 0x${st.toString(16)}` : 'no answer', st === expect);
  };
  const resets = async (what: string, send: () => Promise<unknown>) => {
    raw.clear();
    await send();
    const ok = await raw.expectReset();
    report(what, ok ? 'connection reset by the server (transport event, INIT)' : 'no reset seen', ok);
    if (ok) await raw.login();
  };

  try {
    let rc = await raw.register();
    if (rc === H.RESOURCE) {
      await part.hcall({ call: 'H_FREE_CRQ' });
      rc = await raw.register();
    }
    await raw.send(encodeMad({ type: MadType.ADAPTER_INFO, status: 0, length: 148, tag: raw.token(), buffer: BigInt(0x9000) }), { format: CrqFormat.MAD });
    const early = await raw.answer(300);
    report('ADAPTER_INFO MAD before INIT', early ? 'answered' : 'ignored (no answer)', !early);
    const linked = await raw.handshake();
    report('INIT handshake', linked ? 'INIT COMPLETE' : 'no answer', linked);
    await mad('ADAPTER_INFO with length 4000', MadType.ADAPTER_INFO, 4000, 0x9000, 0xf7);
    await mad('ADAPTER_INFO buffer in unmapped guard page', MadType.ADAPTER_INFO, 148, Layout.GUARD, 0xf7);
    await mad('CAPABILITIES with length 10', MadType.CAPABILITIES, 10, 0x9400, 0xf7);
    await mad('unknown MAD type 0x77', 0x77, 24, 0x9000, 0xf1);
    await mad('ERROR_LOG MAD', MadType.ERROR_LOG, 24, 0x9000, 0xf1);
    const rej = async (what: string, iu: Buffer, reason: number) => {
      await raw.send(iu);
      const r = await raw.answer();
      const j = r ? decodeLoginRej(r.iu) : undefined;
      report(what, j?.ok ? `SRP_LOGIN_REJ reason 0x${j.value.reason.toString(16).padStart(8, '0')}` : 'no LOGIN_REJ', j?.ok === true && j.value.reason === reason);
    };
    await rej('SRP_LOGIN_REQ with req_it_iu_len 4096', raw.loginIu({ len: 4096 }), 0x00010002);
    await rej('SRP_LOGIN_REQ asking for multi-channel', raw.loginIu({ flags: 1 }), 0x00010005);
    await rej('SRP_LOGIN_REQ with no descriptor format', raw.loginIu({ fmt: 0 }), 0x00010004);
    const loggedIn = await raw.login();
    report('valid SRP_LOGIN_REQ', loggedIn ? 'SRP_LOGIN_RSP' : 'refused', loggedIn);
    await rej('second SRP_LOGIN_REQ while logged in', raw.loginIu(), 0x00010006);
    await mad('ENABLE_FAST_FAIL after login', MadType.ENABLE_FAST_FAIL, 16, undefined, 0xf7);
    await scsi('READ into a descriptor beyond the window', raw.readCmd({ format: 'direct', desc: d(0x7fff0000, 512) }), 0x4);
    await scsi('READ into the unmapped guard page', raw.readCmd({ format: 'direct', desc: d(Layout.GUARD, 512) }), 0x4);
    await scsi('WRITE from a descriptor crossing the window end', raw.readCmd({ format: 'direct', desc: d(Layout.MEM_BYTES - 256, 512) }, true), [0x4, 0xb]);
    await scsi('indirect table length 20 (not a multiple of 16)', raw.readCmd({ format: 'indirect', table: d(BUF, 20), totalLength: 512, inIu: [] }), 0x5);
    await scsi('indirect table of 100000 descriptors', raw.readCmd({ format: 'indirect', table: d(BUF, 1_600_000), totalLength: 512, inIu: [] }), 0x5);
    await scsi('external descriptor table in the guard page', raw.readCmd({ format: 'indirect', table: d(Layout.GUARD, 64), totalLength: 512, inIu: [] }), 0x5);
    await scsi('indirect descriptors covering less than the stated length', raw.readCmd({ format: 'indirect', table: d(IU + 68, 16), totalLength: 4096, inIu: [d(BUF, 512)] }), 0x5);
    const tm = async (what: string, func: number, expect: number) => {
      await raw.send(encodeTskMgmt({ tag: raw.token(), solNot: 0, lun: Buffer.from([0x80, 0, 0, 0, 0, 0, 0, 0]), func, taskTag: ioba8(0x1234n) }));
      const r = await raw.answer();
      const rsp = r ? decodeRsp(r.iu) : undefined;
      const code = rsp?.ok && rsp.value.responseData ? rsp.value.responseData[3]! : -1;
      report(what, `RSP_CODE ${code}`, code === expect);
    };
    await tm('ABORT TASK of a tag never sent', 0x01, 0);
    await tm('TSK_MGMT with unknown function 0x20', 0x20, 4);
    raw.clear();
    await part.sendCrq(INIT_ENTRY());
    const ic = await raw.next(2000);
    const relog = ic && ic[0] === CrqValid.INIT && ic[1] === CrqInitFormat.INIT_COMPLETE ? await raw.login() : false;
    report('INIT while connected (client reset)', relog ? 'INIT COMPLETE, fresh session (login accepted again)' : 'no clean reset', relog);
    await resets('CRQ with IU_length 0', () => raw.send(Buffer.alloc(64), { len: 0 }));
    await resets('CRQ with IU_length 300', () => raw.send(Buffer.alloc(64), { len: 300 }));
    await resets('IU pointer outside the window', () => raw.send(Buffer.alloc(64), { ioba: 0x7fff0000 }));
    await resets('unknown CRQ format 0x09', () => raw.send(raw.loginIu(), { format: 0x09 }));
    await resets('CRQ valid byte 0x42', () => raw.send(raw.loginIu(), { valid: 0x42 }));
    const reserved = raw.readCmd({ format: 'direct', desc: d(BUF, 512) });
    reserved[31] = 0x01;
    await resets('SRP_CMD with reserved add_cdb_len bits', () => raw.send(reserved));
    await resets('SRP_I_LOGOUT then SRP_CMD before login', async () => {
      await raw.send(Buffer.concat([Buffer.from([SrpOpcode.I_LOGOUT, 0, 0, 0, 0, 0, 0, 0]), raw.token()]));
      await raw.answer(1000);
      await raw.send(raw.readCmd({ format: 'direct', desc: d(BUF, 512) }));
    });
    // Credit overrun: the hostile adapter grants few credits; send many more commands at once.
    {
      raw.clear();
      const n = 40;
      const sends: Promise<number>[] = [];
      for (let i = 0; i < n; i++) {
        const iu = raw.readCmd({ format: 'direct', desc: d(BUF + i * 0x1000, 512) });
        sends.push(raw.send(iu, { ioba: IU + (i % 100) * 256 }));
      }
      await Promise.all(sends);
      const ok = await raw.expectReset(3000);
      // The server must treat the overrun as the protocol error it is (srp.md §3: reset the connection).
      report(`${n} SRP_CMDs at once against a small request limit (credit overrun)`, ok ? 'connection reset by the server' : 'no reset (the overrun went unnoticed)', ok);
      if (ok) await raw.login();
    }
    // A response queue that stays full: stop consuming and flood with MADs.
    {
      raw.draining = false;
      const sends: Promise<number>[] = [];
      for (let i = 0; i < 300; i++) {
        sends.push(raw.send(encodeMad({ type: MadType.EMPTY_IU, status: 0, length: 28, tag: raw.token(), buffer: 0n }), { format: CrqFormat.MAD, ioba: IU + 0x2000 }));
      }
      const rcs = await Promise.all(sends);
      await new Promise((r) => setTimeout(r, 1800));
      raw.clear();
      raw.draining = true;
      raw.drain();
      await new Promise((r) => setTimeout(r, 300));
      let answered = 0;
      for (let e = await raw.next(50); e; e = await raw.next(50)) if (e[0] === CrqValid.CMD_RSP) answered++;
      const sent = rcs.filter((x) => x === H.SUCCESS).length;
      const alive = await raw.handshake();
      const relog = alive && (await raw.login());
      const how = answered < sent
        ? `${answered} of ${sent} answered, then the server gave up on the full queue and reset the connection`
        : `all ${sent} answered once the queue drained (the server kept retrying)`;
      report(`300 MADs with our queue never drained (${rcs.filter((x) => x === H.DROPPED).length} H_DROPPED on send)`, `${how}; serves again after INIT: ${relog ? 'yes' : 'no'}`, relog);
    }
    // Bounded fuzz: random and mutated CRQ entries and IUs.
    {
      const rnd = seededRandom(a.seed);
      const seeds = [raw.loginIu(), raw.readCmd({ format: 'direct', desc: d(BUF, 512) }),
        raw.readCmd({ format: 'indirect', table: d(IU + 68, 32), totalLength: 1024, inIu: [d(BUF, 512), d(BUF + 4096, 512)] }),
        encodeMad({ type: 3, status: 0, length: 148, tag: raw.token(), buffer: 0x9000n })];
      const count = 200;
      for (let i = 0; i < count; i++) {
        const base = Buffer.alloc(256);
        if (rnd() < 0.7) seeds[Math.floor(rnd() * seeds.length)]!.copy(base);
        const flips = 1 + Math.floor(rnd() * 8);
        for (let f = 0; f < flips; f++) base[Math.floor(rnd() * (rnd() < 0.5 ? 64 : 256))] = Math.floor(rnd() * 256);
        const valid = rnd() < 0.85 ? CrqValid.CMD_RSP : [0xc0, 0xff, 0x01, 0x7f][Math.floor(rnd() * 4)]!;
        const format = rnd() < 0.8 ? [1, 2, 1, 1][Math.floor(rnd() * 4)]! : Math.floor(rnd() * 256);
        const len = rnd() < 0.9 ? 256 : Math.floor(rnd() * 400);
        await raw.send(base, { valid, format, len, ioba: IU + (i % 64) * 256 });
        if (i % 16 === 15) await new Promise((r) => setTimeout(r, 5));
      }
      await new Promise((r) => setTimeout(r, 300));
      raw.clear();
      await part.hcall({ call: 'H_FREE_CRQ' });
      await raw.register();
      const alive = await raw.handshake();
      const relog = alive && (await raw.login());
      let readOk = false;
      if (relog) {
        await raw.send(raw.readCmd({ format: 'direct', desc: d(BUF, 512) }));
        const r = await raw.answer();
        const rsp = r ? decodeRsp(r.iu) : undefined;
        readOk = rsp?.ok === true && rsp.value.status === 0;
      }
      report(`fuzz: ${count} random and mutated CRQ entries / IUs`, readOk ? 'server alive: re-register, INIT, login and READ succeed' : 'server no longer serves this partition', readOk);
    }
  } catch (err) {
    report('attack sequence', `aborted: ${(err as Error).message}`, false);
  }
  // Identity: our credential names our adapter only; a forged one names nothing.
  if (a.otherUnit !== undefined) {
    const own = readCredential(credentialFile(a.socketPath, partitionCredentialName(a.unit)), 'our own adapter');
    const attempts: Array<[string, number, string]> = [
      [`attach to lpar adapter 0x${a.otherUnit.toString(16)} with our own credential`, a.otherUnit, own],
      [`attach to our adapter 0x${a.unit.toString(16)} with a forged credential`, a.unit, randomBytes(32).toString('hex')],
    ];
    for (const [what, unit, token] of attempts) {
      try {
        const p = await Partition.boot({ socketPath: a.socketPath, unit, memBytes: TCE_PAGE_SIZE * 16, token });
        p.close();
        report(what, 'attached', false);
      } catch (err) {
        const msg = (err as Error).message;
        report(what, `refused (${msg.replace(/^.*refused: /, '')})`, /no valid credential/.test(msg));
      }
    }
  }
  const guard = Buffer.alloc(Layout.GUARD_BYTES);
  part.mem.read(Layout.GUARD, guard);
  const intact = guard.every((b) => b === CANARY);
  report('guard pages never mapped in the TCE table', intact ? 'untouched' : 'MODIFIED (copy outside the granted window)', intact);
  say('RESULT', JSON.stringify({ hostile: true, attacks: lines.length, unexpected, guardIntact: intact, lines }));
  await part.hcall({ call: 'H_FREE_CRQ' });
  part.close();
  return unexpected === 0 ? 0 : 1;
}
