/**
 * One virtual SCSI server adapter (a `v-scsi-host` paired with one client partition): the CRQ link,
 * MADs, and an SRP channel whose data moves by H_COPY_RDMA. Everything the client sends is copied
 * once into server memory before it is parsed.
 */
import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import type { DirectDescriptor } from '../srp/descriptors.js';
import { SrpChannel, type SrpDataMover, type SrpSendInfo } from '../srp/target.js';
import type { InitiatorPortId, Nexus } from '../vscsi/fabric.js';
import type { NexusProfile } from '../vscsi/nexus.js';
import {
  CrqFormat,
  CrqStatus,
  CrqValid,
  H,
  hName,
  MAD_HEADER_LEN,
  OsType,
  SRP_MAX_IU_LEN,
} from './constants.js';
import { crqIoba, decodeCrq, encodeCrq } from './crq-entry.js';
import { CrqLink, type CrqLinkState } from './crq.js';
import type { VioHypervisor } from './hypervisor.js';
import { decodeVioLun, encodeVioLun, type VioLunProfile } from './lun.js';
import { MadHandler, type MadPort } from './mad.js';

/** SPC-4 7.6.4.1: PROTOCOL IDENTIFIER of SRP. */
export const SRP_PROTOCOL_ID = 0x4;

export interface VioAdapterConfig {
  /** Server unit address (the `reg` of the v-scsi-host node). */
  unit: number;
  /** Device name reported in CAPABILITIES ("vhost0"). */
  deviceName: string;
  /** Our partition identity for ADAPTER_INFO. */
  partitionName: string;
  partitionNumber: number;
  /** 'aix' answers as an AIX VIOS (os_type 3, IBM VDASD inquiry, AIX LUN numbering). */
  profile: VioLunProfile;
  /** Credits granted at login (ibmvscsis: 1024; the Linux client queues at most 100). */
  requestLimit?: number;
  /** port_max_txu[0] in ADAPTER_INFO (ibmvscsis: 1 MiB). */
  maxTransfer?: number;
  queueFullTimeoutMs?: number;
  /** Open the I_T nexus for the client partition once it logs in. */
  openNexus(initiator: InitiatorPortId, profile: NexusProfile): Nexus | Promise<Nexus>;
  logger?: Logger;
}

interface IuContext {
  ioba: bigint;
  format: number;
  tag: Buffer;
  generation: number;
}

export interface VioAdapterStats {
  srpIus: number;
  mads: number;
  pings: number;
  copyFailures: number;
  responses: number;
}

/** AIX profile INQUIRY identity (what a VIOS virtual disk reports). */
export const AIX_INQUIRY = { vendor: 'IBM', product: 'VDASD blkdev', revision: '0001' } as const;

export class VioAdapter {
  private readonly link: CrqLink;
  private channel: SrpChannel<IuContext>;
  private mad: MadHandler;
  private generation = 0;
  readonly stats: VioAdapterStats = { srpIus: 0, mads: 0, pings: 0, copyFailures: 0, responses: 0 };
  private readonly log: Logger | undefined;

  constructor(
    private readonly hv: VioHypervisor,
    readonly config: VioAdapterConfig,
  ) {
    this.log = config.logger?.child({ vioUnit: `0x${config.unit.toString(16)}` });
    this.link = new CrqLink(
      hv,
      config.unit,
      {
        onConnected: () => this.log?.debug('VIO adapter: CRQ handshake complete'),
        onReset: (reason) => this.newSession(reason),
        onCommand: (e) => this.onCommand(e),
      },
      { ...(config.queueFullTimeoutMs !== undefined ? { queueFullTimeoutMs: config.queueFullTimeoutMs } : {}), ...(this.log ? { logger: this.log } : {}) },
    );
    this.mad = this.newMadHandler();
    this.channel = this.newChannel();
  }

  get state(): CrqLinkState {
    return this.link.state;
  }

  get loggedIn(): boolean {
    return this.channel.loggedIn;
  }

  get linkStats() {
    return this.link.stats;
  }

  get channelStats() {
    return this.channel.stats;
  }

  /** What the client partition said about itself (ADAPTER_INFO), if it did. */
  get client() {
    return this.mad.clientInfo;
  }

  start(): number {
    return this.link.open();
  }

  async stop(): Promise<void> {
    this.link.close();
    this.generation++;
    await this.channel.close();
  }

  private newMadHandler(): MadHandler {
    const c = this.config;
    return new MadHandler(
      {
        info: {
          srpVersion: '16.a',
          partitionName: c.partitionName,
          partitionNumber: c.partitionNumber,
          madVersion: 1,
          osType: c.profile === 'aix' ? OsType.AIX : OsType.LINUX,
          maxTransfer: c.maxTransfer ?? 1024 * 1024,
        },
        deviceName: c.deviceName,
        locationCode: `U0000.000.VTGT-V1-C${c.unit & 0xffff}`,
      },
      this.log,
    );
  }

  private newChannel(): SrpChannel<IuContext> {
    // Data of a session that is gone must never reach the client: it may already reuse the buffers.
    const gen = this.generation;
    const mover: SrpDataMover = {
      readFromInitiator: async (segs, dst) => this.moveSegments(segs, dst, 'from', gen),
      readFromInitiatorNow: (segs, dst) => this.moveSegments(segs, dst, 'from', gen),
      writeToInitiator: async (segs, src) => this.moveSegments(segs, src, 'to', gen),
    };
    return new SrpChannel<IuContext>({
      login: {
        maxItIuLen: SRP_MAX_IU_LEN,
        maxTiIuLen: SRP_MAX_IU_LEN,
        requestLimit: this.config.requestLimit ?? 128,
        bufFmt: 0x06,
        multiChannel: false,
        requireZeroIdExtension: true,
      },
      // The Linux client re-credits itself for every command it completes without a response.
      creditPolicy: 'initiator-recredits',
      openNexus: async () => this.openNexus(),
      decodeLun: (lun) => decodeVioLun(lun, this.config.profile),
      mover,
      send: (iu, ctx, info) => this.sendIu(iu, ctx, info),
      onProtocolError: (m) => this.link.reconnect(`SRP: ${m}`),
      onLogout: (ctx) => this.sendBare(ctx),
      residualStyle: this.config.profile === 'aix' ? 'srp' : 'overflow-only',
      maxSenseLength: 96,
      ...(this.log ? { logger: this.log } : {}),
    });
  }

  private async openNexus(): Promise<Nexus> {
    // The hypervisor's word on who the partner is beats what the client claims in ADAPTER_INFO.
    const partner = this.hv.getPartnerInfo(this.config.unit);
    const partition = partner.rc === H.SUCCESS ? partner.partitionNumber : (this.mad.clientInfo?.partitionNumber ?? 0);
    const portId = Buffer.alloc(16);
    portId.writeUInt32BE(partition >>> 0, 8);
    portId.writeUInt32BE(this.config.unit >>> 0, 12);
    const transportId = Buffer.alloc(24);
    transportId[0] = SRP_PROTOCOL_ID;
    portId.copy(transportId, 8);
    const initiator: InitiatorPortId = {
      name: `ibmvio:lpar${partition}`,
      portSuffix: portId.toString('hex'),
      protocolId: SRP_PROTOCOL_ID,
      transportId,
    };
    const profile: NexusProfile =
      this.config.profile === 'aix'
        ? { inquiryIdentity: { ...AIX_INQUIRY }, lunEncoder: (n) => encodeVioLun(n, 'aix') }
        : {};
    return this.config.openNexus(initiator, profile);
  }

  /** Drop every trace of the old session; responses still in flight for it are discarded. */
  private newSession(reason: string): void {
    this.generation++;
    const old = this.channel;
    this.log?.debug({ reason }, 'VIO adapter: new session');
    void old.close();
    this.mad = this.newMadHandler();
    this.channel = this.newChannel();
  }

  private moveSegments(segs: readonly DirectDescriptor[], buf: Buffer, dir: 'from' | 'to', gen: number): void {
    if (gen !== this.generation) throw new Error('the client session this transfer belongs to was reset');
    const max = Math.max(1, this.hv.maxCopyLength);
    let off = 0;
    for (const s of segs) {
      for (let done = 0; done < s.len; ) {
        const n = Math.min(max, s.len - done);
        // The usual transfer is one piece covering the whole buffer: no BigInt or view made for it.
        const ioba = done === 0 ? s.va : s.va + BigInt(done);
        const part = off === 0 && n === buf.length ? buf : buf.subarray(off, off + n);
        const rc =
          dir === 'from' ? this.hv.copyFromPartner(this.config.unit, ioba, part) : this.hv.copyToPartner(this.config.unit, ioba, part);
        if (rc !== H.SUCCESS) {
          this.stats.copyFailures++;
          throw new Error(`H_COPY_RDMA ${dir === 'from' ? 'from' : 'to'} client IOBA 0x${ioba.toString(16)} (+${n}) failed: ${hName(rc)}`);
        }
        done += n;
        off += n;
      }
    }
  }

  private copyFrom(ioba: bigint, length: number): Buffer | undefined {
    const b = Buffer.alloc(length);
    const rc = this.hv.copyFromPartner(this.config.unit, ioba, b);
    if (rc !== H.SUCCESS) {
      this.stats.copyFailures++;
      return undefined;
    }
    return b;
  }

  private copyTo(ioba: bigint, data: Buffer): boolean {
    const rc = this.hv.copyToPartner(this.config.unit, ioba, data);
    if (rc !== H.SUCCESS) this.stats.copyFailures++;
    return rc === H.SUCCESS;
  }

  private onCommand(raw: Buffer): void {
    const e = decodeCrq(raw)!;
    if (e.format === CrqFormat.MESSAGE_IN_CRQ) {
      if (e.status === CrqStatus.PING) {
        this.stats.pings++;
        this.link.send(encodeCrq({ valid: CrqValid.CMD_RSP, format: CrqFormat.MESSAGE_IN_CRQ, status: CrqStatus.PING_RESPONSE, timeout: 0, iuLength: 0, word1: e.word1 }));
        return;
      }
      return this.link.reconnect(`unsupported inline message status 0x${e.status.toString(16)}`);
    }
    const isMad = e.format === CrqFormat.MAD || e.format === CrqFormat.OS400 || e.format === CrqFormat.AIX || e.format === CrqFormat.LINUX;
    if (e.format !== CrqFormat.SRP && !isMad) return this.link.reconnect(`unknown CRQ format 0x${e.format.toString(16)}`);
    if (e.iuLength === 0 || e.iuLength > SRP_MAX_IU_LEN) {
      return this.link.reconnect(`IU length ${e.iuLength} outside 1..${SRP_MAX_IU_LEN}`);
    }
    const ioba = crqIoba(e);
    const iu = this.copyFrom(ioba, e.iuLength);
    if (!iu) return this.link.reconnect(`cannot copy the ${e.iuLength}-byte IU from client IOBA 0x${ioba.toString(16)}`);
    const tag = Buffer.alloc(8);
    iu.copy(tag, 0, 8, Math.min(16, iu.length));
    if (isMad) {
      this.stats.mads++;
      const port: MadPort = {
        copyFrom: (a, n) => this.copyFrom(a, n),
        copyTo: (a, d) => this.copyTo(a, d),
        loggedIn: () => this.channel.loggedIn,
      };
      const rsp = this.mad.handle(iu, port);
      if (!this.copyTo(ioba, rsp)) return this.link.reconnect('cannot write the MAD response');
      this.link.send(encodeCrq({ valid: CrqValid.CMD_RSP, format: e.format, status: CrqStatus.OK, timeout: 0, iuLength: MAD_HEADER_LEN, word1: tag }));
      return;
    }
    this.stats.srpIus++;
    void this.channel.handle(iu, { ioba, format: e.format, tag, generation: this.generation });
  }

  private sendIu(iu: Buffer, ctx: IuContext, info: SrpSendInfo): void {
    if (ctx.generation !== this.generation) return;
    if (iu.length > SRP_MAX_IU_LEN) iu = iu.subarray(0, SRP_MAX_IU_LEN);
    if (!this.copyTo(ctx.ioba, iu)) {
      this.link.reconnect(`cannot write the response IU to client IOBA 0x${ctx.ioba.toString(16)}`);
      return;
    }
    // Fast fail (ibmvscsis): a hardware failure is reported at transport level so multipath fails over.
    const status = info.kind === 'rsp' && info.hardwareError && this.mad.fastFail ? CrqStatus.ADAPTER_FAIL : CrqStatus.OK;
    this.stats.responses++;
    this.link.send(encodeCrq({ valid: CrqValid.CMD_RSP, format: ctx.format, status, timeout: 0, iuLength: iu.length, word1: ctx.tag }));
  }

  /** ibmvscsis answers SRP_I_LOGOUT with a CRQ that carries no IU. */
  private sendBare(ctx: IuContext): void {
    if (ctx.generation !== this.generation) return;
    this.link.send(encodeCrq({ valid: CrqValid.CMD_RSP, format: ctx.format, status: CrqStatus.OK, timeout: 0, iuLength: 0, word1: ctx.tag }));
  }
}
