/**
 * Client emulator: behaves as the Linux ibmvscsi driver does, step by step (ibmvio.md §6) -
 * CRQ registration, INIT handshake, ADAPTER_INFO, (for an AIX server) ENABLE_FAST_FAIL and
 * CAPABILITIES, SRP login, SRP commands in 256-byte IU slots with direct / indirect descriptors
 * (external table beyond 10 segments), credits with the last two reserved for task management,
 * ABORT TASK / LUN RESET with local re-crediting, and host reset on transport events.
 */
import { Buffer } from 'node:buffer';
import { decodeLoginRej, decodeLoginRsp, decodeRsp, encodeCmd, encodeLoginReq, encodeTskMgmt, SrpOpcode, SrpRspFlag } from '../../srp/iu.js';
import type { DataBufferDescriptor, DirectDescriptor } from '../../srp/descriptors.js';
import {
  ADAPTER_INFO_LEN,
  CapFlag,
  CRQ_ENTRY_LEN,
  CRQ_QUEUE_BYTES,
  CrqFormat,
  CrqInitFormat,
  CrqStatus,
  CrqValid,
  H,
  hName,
  MadStatus,
  MadType,
  OsType,
  SRP_MAX_IU_LEN,
  TCE_PAGE_SIZE,
  TcePerm,
  TransportEvent,
} from '../constants.js';
import { decodeCrq, encodeCrq, INIT_COMPLETE_ENTRY, INIT_ENTRY, ioba8 } from '../crq-entry.js';
import { type AdapterInfo, decodeAdapterInfo, encodeAdapterInfo, encodeClientCapabilities, encodeMad } from '../mad-codec.js';
import type { Partition } from './partition.js';
import { InFlightTable } from '../../vscsi/in-flight-table.js';

/** Client memory layout (IOBAs; the window maps the whole file 1:1 except the guard pages). */
export const Layout = {
  CRQ: 0x0,
  IU_BASE: 0x1000,
  SLOTS: 110,
  INFO: 0x9000,
  CAPS: 0x9400,
  TABLE_BASE: 0x10000,
  TABLE_BYTES: 0x400,
  DATA_BASE: 0x100000,
  MAX_XFER: 0x20000,
  /** Pages never mapped in the TCE table; the server must never be able to touch them. */
  GUARD: 0xf00000,
  GUARD_BYTES: 0x10000,
  MEM_BYTES: 0xf10000,
} as const;

/** Correlation tokens: a marker byte and a sequence number that is never reused. */
const TOKEN_MARK = 0xa500000000000000n;
const TOKEN_SEQ_MASK = (1n << 56n) - 1n;

/** ibmvscsi.h MAX_INDIRECT_BUFS: descriptors carried in the IU itself. */
export const MAX_INDIRECT_BUFS = 10;

export type CommandOutcome =
  | { kind: 'done'; status: number; sense?: Buffer; residual: number; crqStatus: number }
  | { kind: 'error'; message: string } // DID_ERROR
  | { kind: 'reset' } // failed by a host reset: the midlayer would retry
  | { kind: 'aborted' }; // completed locally after a successful ABORT TASK / LUN RESET

/** Result of a task management function: 'reset' = overtaken by a host reset. */
export type TmfOutcome = 'done' | 'failed' | 'reset';

export interface ClientIdentity {
  partitionName: string;
  osType: number;
}

interface Pending {
  token: bigint;
  slot: number;
  kind: 'mad' | 'login' | 'cmd' | 'tmf';
  lun?: Buffer;
  /** For commands: consumed a credit that a local completion must give back. */
  resolve: (r: { crq: Buffer; iu: Buffer }) => void;
  fail: (o: CommandOutcome) => void;
}

export interface VioClientEvents {
  log?(line: string): void;
}

export class VioClient {
  requestLimit = -1;
  loginLimit = 0;
  serverInfo: AdapterInfo | undefined;
  resets = 0;
  private freeSlots: number[] = [];
  /** Commands awaiting their response, by SRP tag (a table, not a Map: see InFlightTable). */
  private readonly pending = new InFlightTable<bigint, Pending>();
  private nextToken = 1n;
  private crqCursor = 0;
  private epoch = 0;
  private handshakeEpoch = -1;
  private upWaiters: Array<() => void> = [];
  private creditWaiters: Array<() => void> = [];
  private closed = false;
  private resetting = false;

  constructor(
    readonly part: Partition,
    readonly identity: ClientIdentity,
    private readonly events: VioClientEvents = {},
  ) {
    for (let i = 0; i < Layout.SLOTS; i++) this.freeSlots.push(i);
    part.onIrq(() => this.drain());
  }

  get up(): boolean {
    return this.requestLimit >= 0 && this.loginLimit > 0 && !this.resetting;
  }

  private log(s: string): void {
    this.events.log?.(s);
  }

  /** Map the window, register the CRQ, say INIT (ibmvscsi_probe / ibmvscsi_init_crq_queue). */
  async start(): Promise<void> {
    // Everything but the guard pages is mapped read-write, 1:1.
    const rc = await this.part.hcall({ call: 'H_PUT_TCE', ioba: 0, pages: Layout.GUARD / TCE_PAGE_SIZE, realOffset: 0, perm: TcePerm.RW });
    if (rc !== H.SUCCESS) throw new Error(`H_PUT_TCE failed: ${hName(rc)}`);
    await this.registerAndInit();
  }

  private async registerAndInit(): Promise<void> {
    this.part.mem.write(Layout.CRQ, Buffer.alloc(CRQ_QUEUE_BYTES));
    this.crqCursor = 0;
    let rc = await this.part.hcall({ call: 'H_REG_CRQ', ioba: Layout.CRQ, len: CRQ_QUEUE_BYTES });
    if (rc === H.RESOURCE) {
      await this.part.hcall({ call: 'H_FREE_CRQ' });
      rc = await this.part.hcall({ call: 'H_REG_CRQ', ioba: Layout.CRQ, len: CRQ_QUEUE_BYTES });
    }
    if (rc !== H.SUCCESS && rc !== H.CLOSED) throw new Error(`H_REG_CRQ failed: ${hName(rc)}`);
    this.resetting = false;
    // H_CLOSED: partner adapter not ready; its INIT will come.
    await this.part.sendCrq(INIT_ENTRY());
    this.drain();
  }

  /** Resolves once logged in (or rejects after `ms`). */
  waitUp(ms: number): Promise<void> {
    if (this.up) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`not logged in after ${ms} ms`)), ms);
      this.upWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private drain(): void {
    if (this.closed) return;
    const slot = Buffer.alloc(CRQ_ENTRY_LEN);
    for (;;) {
      // A host reset discards whatever is still queued: the page is cleared and registered anew.
      if (this.resetting) return;
      this.part.mem.read(Layout.CRQ + this.crqCursor, slot);
      if (slot[0] === 0) return;
      const entry = Buffer.from(slot);
      this.part.mem.write(Layout.CRQ + this.crqCursor, Buffer.alloc(1));
      this.crqCursor = (this.crqCursor + CRQ_ENTRY_LEN) % CRQ_QUEUE_BYTES;
      this.handleCrq(entry);
    }
  }

  private handleCrq(raw: Buffer): void {
    const e = decodeCrq(raw)!;
    switch (e.valid) {
      case CrqValid.INIT:
        if (e.format === CrqInitFormat.INIT) {
          void this.part.sendCrq(INIT_COMPLETE_ENTRY());
          this.handshakeDone();
        } else if (e.format === CrqInitFormat.INIT_COMPLETE) {
          this.handshakeDone();
        }
        return;
      case CrqValid.TRANSPORT_EVENT:
        this.log(`transport event 0x${e.format.toString(16)}: host reset`);
        void this.hostReset(e.format === TransportEvent.MIGRATED);
        return;
      case CrqValid.CMD_RSP: {
        const token = e.word1.readBigUInt64BE(0);
        const p = this.pending.get(token);
        if (!p) {
          // ibmvscsi: "returned correlation_token ... is invalid" / duplicate: dropped with its credits.
          return;
        }
        this.pending.delete(token);
        const iu = Buffer.alloc(Math.min(e.iuLength, SRP_MAX_IU_LEN));
        this.part.mem.read(Layout.IU_BASE + p.slot * SRP_MAX_IU_LEN, iu);
        this.freeSlots.push(p.slot);
        if (e.format === CrqFormat.SRP && iu.length >= 8 && iu[0] === SrpOpcode.RSP) {
          this.requestLimit += iu.readUInt32BE(4);
          this.wakeCredits();
        }
        p.resolve({ crq: raw, iu });
        return;
      }
      default:
        return;
    }
  }

  private handshakeDone(): void {
    if (this.handshakeEpoch === this.epoch) return;
    this.handshakeEpoch = this.epoch;
    const epoch = this.epoch;
    void this.initAdapter(epoch).catch((err: Error) => {
      if (epoch === this.epoch) {
        this.log(`adapter initialisation failed: ${err.message}; host reset`);
        void this.hostReset(false);
      }
    });
  }

  private allocSlot(): number {
    const s = this.freeSlots.pop();
    if (s === undefined) throw new Error('no free IU slot');
    return s;
  }

  /** Send one IU in a slot and wait for the response to its token. */
  private exchange(kind: Pending['kind'], format: number, build: (token: Buffer, iuIoba: number) => Buffer, timeoutMs: number, lun?: Buffer): Promise<{ crq: Buffer; iu: Buffer }> {
    const token = this.nextToken++ | TOKEN_MARK;
    const tokenBytes = ioba8(token);
    const slot = this.allocSlot();
    const iuIoba = Layout.IU_BASE + slot * SRP_MAX_IU_LEN;
    const iu = build(tokenBytes, iuIoba);
    const padded = Buffer.alloc(SRP_MAX_IU_LEN);
    iu.copy(padded);
    this.part.mem.write(iuIoba, padded);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(token)) {
          this.freeSlots.push(slot);
          reject(Object.assign(new Error(`${kind} request timed out`), { outcome: { kind: 'error', message: 'timeout' } }));
        }
      }, timeoutMs);
      const p: Pending = {
        token,
        slot,
        kind,
        ...(lun ? { lun } : {}),
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        fail: (o) => {
          clearTimeout(timer);
          reject(Object.assign(new Error(o.kind), { outcome: o }));
        },
      };
      this.pending.set(token, p);
      void this.part
        .sendCrq(encodeCrq({ valid: CrqValid.CMD_RSP, format, status: 0, timeout: Math.ceil(timeoutMs / 1000), iuLength: SRP_MAX_IU_LEN, word1: ioba8(BigInt(iuIoba)) }))
        .then((rc) => {
          if (rc !== H.SUCCESS && this.pending.delete(token)) {
            this.freeSlots.push(slot);
            p.fail(rc === H.CLOSED ? { kind: 'reset' } : { kind: 'error', message: `H_SEND_CRQ ${hName(rc)}` });
          }
        });
    });
  }

  private async initAdapter(epoch: number): Promise<void> {
    const ours = encodeAdapterInfo({
      srpVersion: '16.a',
      partitionName: this.identity.partitionName,
      partitionNumber: this.part.partitionNumber,
      madVersion: 1,
      osType: this.identity.osType,
      maxTransfer: 0,
    });
    this.part.mem.write(Layout.INFO, ours);
    const info = await this.exchange('mad', CrqFormat.MAD, (tag) =>
      encodeMad({ type: MadType.ADAPTER_INFO, status: 0, length: ADAPTER_INFO_LEN, tag, buffer: BigInt(Layout.INFO) }), 30_000);
    if (epoch !== this.epoch) return;
    const status = info.iu.readUInt16BE(4);
    if (status === MadStatus.SUCCESS) {
      const b = Buffer.alloc(ADAPTER_INFO_LEN);
      this.part.mem.read(Layout.INFO, b);
      this.serverInfo = decodeAdapterInfo(b);
      if (this.serverInfo.osType === OsType.AIX) {
        await this.exchange('mad', CrqFormat.MAD, (tag) => encodeMad({ type: MadType.ENABLE_FAST_FAIL, status: 0, length: 16, tag }), 30_000);
        const caps = encodeClientCapabilities({ flags: CapFlag.CAP_LIST_SUPPORTED, name: 'host0', loc: 'vscsi-sim', reserve: true });
        this.part.mem.write(Layout.CAPS, caps);
        await this.exchange('mad', CrqFormat.MAD, (tag) =>
          encodeMad({ type: MadType.CAPABILITIES, status: 0, length: caps.length, tag, buffer: BigInt(Layout.CAPS) }), 30_000);
        if (epoch !== this.epoch) return;
      }
    } else {
      this.log(`ADAPTER_INFO answered with status 0x${status.toString(16)}`);
    }
    this.requestLimit = 0;
    const login = await this.exchange('login', CrqFormat.SRP, (tag) =>
      encodeLoginReq({ tag, reqItIuLen: SRP_MAX_IU_LEN, reqBufFmt: 0x06, reqFlags: 0, immDataOffset: 0, initiatorPortId: Buffer.alloc(16), targetPortId: Buffer.alloc(16) }), 60_000);
    if (epoch !== this.epoch) return;
    const rsp = decodeLoginRsp(login.iu);
    if (!rsp.ok) {
      const rej = decodeLoginRej(login.iu);
      this.requestLimit = -1;
      throw new Error(rej.ok ? `SRP login rejected, reason 0x${rej.value.reason.toString(16)}` : 'bad SRP login response');
    }
    this.requestLimit = rsp.value.reqLimDelta;
    this.loginLimit = rsp.value.reqLimDelta;
    this.log(`logged in: request limit ${this.requestLimit}, server ${this.serverInfo?.partitionName ?? '?'} os_type ${this.serverInfo?.osType ?? '?'}`);
    const w = this.upWaiters;
    this.upWaiters = [];
    for (const f of w) f();
    this.wakeCredits();
  }

  private wakeCredits(): void {
    const w = this.creditWaiters;
    this.creditWaiters = [];
    for (const f of w) f();
  }

  /** Wait until a request may be sent: logged in and, for commands, more than 2 credits left. */
  private async takeCredit(forTmf: boolean): Promise<void> {
    for (;;) {
      if (this.closed) throw Object.assign(new Error('closed'), { outcome: { kind: 'reset' } });
      const reserve = forTmf || this.loginLimit <= 2 ? 0 : 2;
      if (this.up && this.requestLimit > reserve && this.freeSlots.length > 0) {
        this.requestLimit--;
        return;
      }
      await new Promise<void>((r) => {
        this.creditWaiters.push(r);
        if (!this.up) this.upWaiters.push(r);
      });
    }
  }

  /**
   * One SCSI command. `segments` are where the data lives in our memory (already filled for a write);
   * the descriptor is direct for one segment, indirect otherwise (external table beyond 10).
   */
  async command(lun: Buffer, cdb: Buffer, dir: 'read' | 'write' | 'none', segments: DirectDescriptor[], timeoutMs = 15_000,
    onToken?: (token: Buffer) => void): Promise<CommandOutcome> {
    try {
      await this.takeCredit(false);
    } catch (err) {
      return (err as { outcome?: CommandOutcome }).outcome ?? { kind: 'reset' };
    }
    let total = 0;
    for (const s of segments) total += s.len;
    try {
      const r = await this.exchange('cmd', CrqFormat.SRP, (tag, slotIoba) => {
        onToken?.(tag);
        let desc: DataBufferDescriptor = { format: 'none' };
        if (dir !== 'none' && segments.length === 1) desc = { format: 'direct', desc: segments[0]! };
        else if (dir !== 'none') {
          let table: DirectDescriptor;
          const inIu = segments.slice(0, MAX_INDIRECT_BUFS);
          if (segments.length <= MAX_INDIRECT_BUFS) {
            table = { va: BigInt(slotIoba + 48 + 20), key: 0, len: 16 * segments.length };
          } else {
            const tbl = Buffer.alloc(16 * segments.length);
            segments.forEach((s, i) => {
              tbl.writeBigUInt64BE(s.va, i * 16);
              tbl.writeUInt32BE(s.len, i * 16 + 12);
            });
            const tIoba = Layout.TABLE_BASE + ((slotIoba - Layout.IU_BASE) / SRP_MAX_IU_LEN) * Layout.TABLE_BYTES;
            this.part.mem.write(tIoba, tbl);
            table = { va: BigInt(tIoba), key: 0, len: tbl.length };
          }
          desc = { format: 'indirect', table, totalLength: total, inIu };
        }
        return encodeCmd({
          tag, solNot: 0, lun, taskAttr: 0, cdb,
          dataOut: dir === 'write' ? desc : { format: 'none' },
          dataIn: dir === 'read' ? desc : { format: 'none' },
        });
      }, timeoutMs, lun);
      const crqStatus = r.crq[3]!;
      if (crqStatus !== CrqStatus.OK && crqStatus !== CrqStatus.OK2) {
        return { kind: 'error', message: `CRQ status 0x${crqStatus.toString(16)}` };
      }
      const rsp = decodeRsp(r.iu);
      if (!rsp.ok) return { kind: 'error', message: `bad SRP_RSP: ${rsp.error.message}` };
      const v = rsp.value;
      // ibmvscsi applies a residual only from the OVER flags.
      const residual = v.residualFlags & SrpRspFlag.DIOVER ? v.dataInResidual : v.residualFlags & SrpRspFlag.DOOVER ? v.dataOutResidual : 0;
      return { kind: 'done', status: v.status, ...(v.sense ? { sense: v.sense } : {}), residual, crqStatus };
    } catch (err) {
      return (err as { outcome?: CommandOutcome }).outcome ?? { kind: 'error', message: (err as Error).message };
    }
  }

  /** ABORT TASK for the command whose token is `taskTag`. */
  async abortTask(lun: Buffer, taskTag: Buffer): Promise<TmfOutcome> {
    return this.tmf(lun, 0x01, taskTag);
  }

  async lunReset(lun: Buffer): Promise<TmfOutcome> {
    return this.tmf(lun, 0x08, Buffer.alloc(8));
  }

  private async tmf(lun: Buffer, func: number, taskTag: Buffer): Promise<TmfOutcome> {
    // Only commands already sent when the function goes out are covered by it (the Linux midlayer
    // keeps the device blocked during error handling, so there are no others); later ones still get
    // their own responses and must keep their IU slots until then.
    let cutoff = 0n;
    try {
      await this.takeCredit(true);
      cutoff = this.nextToken;
      const r = await this.exchange('tmf', CrqFormat.SRP, (tag) => encodeTskMgmt({ tag, solNot: 0, lun, func, taskTag }), 60_000);
      const rsp = decodeRsp(r.iu);
      if (!rsp.ok) return 'failed';
      const ok = rsp.value.responseData ? rsp.value.responseData.readUInt32BE(0) === 0 : rsp.value.status === 0;
      if (!ok) return 'failed';
      // Complete what the server will no longer answer, and re-credit each (ibmvscsi does).
      for (const p of [...this.pending.values()]) {
        if (p.kind !== 'cmd' || !p.lun || !p.lun.equals(lun)) continue;
        if ((p.token & TOKEN_SEQ_MASK) >= cutoff) continue;
        if (func === 0x01 && !ioba8(p.token).equals(taskTag)) continue;
        this.pending.delete(p.token);
        this.freeSlots.push(p.slot);
        this.requestLimit++;
        p.fail({ kind: 'aborted' });
      }
      this.wakeCredits();
      return 'done';
    } catch (err) {
      // A host reset in the middle already failed every command the function was about.
      return (err as { outcome?: CommandOutcome }).outcome?.kind === 'reset' ? 'reset' : 'failed';
    }
  }

  /** Transport event or fatal error: fail everything, re-register, INIT (ibmvscsi_reset_host). */
  async hostReset(migrated: boolean): Promise<void> {
    if (this.closed) return;
    this.resets++;
    this.epoch++;
    this.resetting = true;
    this.requestLimit = 0;
    this.loginLimit = 0;
    for (const p of [...this.pending.values()]) {
      this.pending.delete(p.token);
      this.freeSlots.push(p.slot);
      p.fail({ kind: 'reset' });
    }
    if (migrated) {
      await this.part.hcall({ call: 'H_ENABLE_CRQ' });
      this.resetting = false;
      await this.part.sendCrq(INIT_ENTRY());
      return;
    }
    await this.part.hcall({ call: 'H_FREE_CRQ' });
    await this.registerAndInit();
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const p of [...this.pending.values()]) p.fail({ kind: 'reset' });
    this.pending.clear();
    this.wakeCredits();
    await this.part.hcall({ call: 'H_FREE_CRQ' });
  }
}
