/**
 * The iSCSI target service: portals (TCP listeners with a TPGT), targets with ACLs and CHAP, sessions
 * and connections, and the management view of them. Login admission (new session, reinstatement, MC/S
 * join, connection reinstatement) is decided here; protocol handling lives in connection.ts.
 */
import type { Logger } from 'pino';
import { TargetAccess, type AccessDecision } from './acl.js';
import { IscsiConnection, type ConnectionHandoff, type ConnectionServer } from './connection.js';
import { ConnectionThreads, RemoteConnection, type ConnectionThreadsOptions } from './connection-threads.js';
import type { LunMap, ScsiCore, ScsiTarget, TargetPort } from './core-types.js';
import { sendTargets, type DiscoverableTarget, type PortalAddress } from './discovery.js';
import { answerTextKeys } from './text-answers.js';
import { ISCSI_PROTOCOL_ID, LoginStatus } from './constants.js';
import type { AdmitResult, LoginHost, LoginResult, LoginTargetInfo } from './login.js';
import { buildPolicy, digestNames, type OperationalParams, type TargetParamPolicy } from './params.js';
import { IscsiSession } from './session.js';
import { listenTcp, type IscsiTransport, type PortalListener } from './tcp.js';
import type { TextResponder } from './text.js';
import type { KeyValues } from './text-keys.js';
import type { InitiatorPortId, Nexus } from '../vscsi/fabric.js';
import { buildTransportId } from '../vscsi/pr/index.js';

export type { LunMap, ScsiCore, ScsiTarget } from './core-types.js';

export interface ChapCredentials {
  user: string;
  secret: string;
}
export interface IscsiAcl {
  /** Initiator IQN/EUI, or '*' for any. */
  initiator: string;
  /** Optional CIDR list (IPv4/IPv6) the initiator must connect from. */
  addresses?: string[];
  /** Per-ACL LUN mapping (core LunMap); default = the target's map. */
  lunMap?: LunMap;
  /** One-way CHAP the initiator must answer. */
  chap?: ChapCredentials;
  /** Credentials the target answers with (mutual CHAP). */
  mutualChap?: ChapCredentials;
}
export interface IscsiTargetSpec {
  /** Core target (its name is the IQN). */
  target: ScsiTarget;
  /** Default 1. */
  tpgt?: number;
  /** Empty/absent = any initiator (demo mode), default LUN map. */
  acls?: IscsiAcl[];
  chap?: ChapCredentials;
  mutualChap?: ChapCredentials;
  /** Operational key overrides (MaxRecvDataSegmentLength, ...). */
  params?: Record<string, string>;
}
export interface IscsiServerOptions {
  core: ScsiCore;
  logger?: Logger;
  discoveryChap?: ChapCredentials;
  discoveryMutualChap?: ChapCredentials;
  /** Seconds: keepalive NOP-In interval on an idle connection (default 10, 0 = off). */
  nopInterval?: number;
  /** Seconds: drop a connection whose NOP-In went unanswered this long (default 15). */
  nopTimeout?: number;
  /** Continue logged-in connections on worker threads (connection-threads.ts); absent = none. */
  connectionThreads?: ConnectionThreadsOptions;
}

export interface IscsiConnectionInfo {
  cid: number;
  peerAddress: string;
  peerPort: number;
  localAddress: string;
  localPort: number;
  headerDigest: 'None' | 'CRC32C';
  dataDigest: 'None' | 'CRC32C';
  /** Initiator's MaxRecvDataSegmentLength (bounds our PDUs) and ours (bounds theirs). */
  maxRecvDataSegmentLength: number;
  targetMaxRecvDataSegmentLength: number;
  activeCommands: number;
  /** 0: the main thread; n: connection thread n (performance.iscsiThreads). */
  thread: number;
  /** Bytes queued for sending that the initiator has not read yet. */
  sendQueueBytes: number;
  pdusReceived: number;
  pdusSent: number;
  connectedAt: string;
}
export interface IscsiSessionInfo {
  target: string | null;
  sessionType: 'Normal' | 'Discovery';
  initiator: string;
  isid: string;
  tsih: number;
  tpgt: number;
  connections: IscsiConnectionInfo[];
  params: {
    InitialR2T: boolean;
    ImmediateData: boolean;
    MaxBurstLength: number;
    FirstBurstLength: number;
    MaxOutstandingR2T: number;
    MaxConnections: number;
    ErrorRecoveryLevel: number;
    DefaultTime2Wait: number;
    DefaultTime2Retain: number;
  };
  commands: number;
  readBytes: number;
  writeBytes: number;
  taskManagementRequests: number;
  rejects: number;
  activeCommands: number;
  expCmdSn: number;
  createdAt: string;
}

/** Connections accepted but not yet logged in, at most. */
const MAX_CONNECTIONS_IN_LOGIN = 256;

interface TargetEntry {
  spec: IscsiTargetSpec;
  name: string;
  tpgt: number;
  access: TargetAccess;
  policy: TargetParamPolicy;
}

interface Portal {
  host: string;
  port: number;
  tpgt: number;
  listener: PortalListener;
}

export function initiatorPortId(initiatorName: string, isid: Buffer): InitiatorPortId {
  const isidHex = isid.toString('hex');
  return {
    name: initiatorName,
    portSuffix: `,i,0x${isidHex}`,
    protocolId: ISCSI_PROTOCOL_ID,
    // SPC-4 7.6.4.6: format 01b (name + ",i,0x" + ISID).
    transportId: buildTransportId({ protocolId: ISCSI_PROTOCOL_ID, name: initiatorName, portSuffix: `,i,0x${isidHex}` }),
  };
}

export class IscsiServer implements ConnectionServer {
  readonly logger: Logger | undefined;
  readonly nopInterval: number;
  readonly nopTimeout: number;
  private readonly core: ScsiCore;
  private readonly targets = new Map<string, TargetEntry>();
  private readonly portals = new Map<string, Portal>();
  private readonly connections = new Set<IscsiConnection>();
  private readonly sessionsByTsih = new Map<number, IscsiSession<Nexus>>();
  private readonly remoteConnections = new Set<RemoteConnection>();
  private readonly threads: ConnectionThreads | undefined;
  private discoveryChap: ChapCredentials | undefined;
  private discoveryMutualChap: ChapCredentials | undefined;
  private readonly discoveryPolicy = buildPolicy({}, 'discovery sessions');
  private nextTsih = 1;
  private closing = false;

  constructor(opts: IscsiServerOptions) {
    this.core = opts.core;
    this.logger = opts.logger;
    this.nopInterval = opts.nopInterval ?? 10;
    this.nopTimeout = opts.nopTimeout ?? 15;
    this.discoveryChap = opts.discoveryChap;
    this.discoveryMutualChap = opts.discoveryMutualChap;
    if (opts.connectionThreads && opts.connectionThreads.count > 0) {
      this.threads = new ConnectionThreads({ ...opts.connectionThreads, nopInterval: this.nopInterval, nopTimeout: this.nopTimeout }, this.logger);
    }
  }

  // ------------------------------------------------------------ administration

  async addPortal(p: { host: string; port: number; tpgt?: number }): Promise<{ host: string; port: number }> {
    const tpgt = p.tpgt ?? 1;
    checkTpgt(tpgt, `portal ${p.host}:${p.port}`);
    const listener = await listenTcp(p.host, p.port, (t) => this.accept(t, tpgt)).catch((e: Error) => {
      throw new Error(`cannot listen for iSCSI on ${p.host}:${p.port}: ${e.message}`);
    });
    const portal: Portal = { host: p.host, port: listener.port, tpgt, listener };
    this.portals.set(portalKey(p.host, listener.port), portal);
    this.logger?.info({ host: p.host, port: listener.port, tpgt }, 'iSCSI portal listening');
    this.refreshMovedDiscovery();
    return { host: p.host, port: listener.port };
  }

  /** Stop listening on a portal; sessions already logged in through it keep running. */
  async removePortal(host: string, port: number): Promise<void> {
    const key = portalKey(host, port);
    const p = this.portals.get(key);
    if (!p) throw new Error(`no iSCSI portal on ${host}:${port}`);
    this.portals.delete(key);
    this.refreshMovedDiscovery();
    await p.listener.close();
  }

  addTarget(spec: IscsiTargetSpec): void {
    const key = spec.target.name.toLowerCase();
    if (this.targets.has(key)) throw new Error(`iSCSI target ${spec.target.name} already exists`);
    this.targets.set(key, this.compile(spec));
    this.refreshMovedDiscovery();
  }

  updateTarget(spec: IscsiTargetSpec): void {
    const key = spec.target.name.toLowerCase();
    if (!this.targets.has(key)) throw new Error(`iSCSI target ${spec.target.name} does not exist`);
    this.targets.set(key, this.compile(spec));
    this.refreshMovedDiscovery();
  }

  async removeTarget(name: string): Promise<void> {
    const key = name.toLowerCase();
    if (!this.targets.delete(key)) throw new Error(`iSCSI target ${name} does not exist`);
    this.refreshMovedDiscovery();
    const victims = [...this.sessionsByTsih.values()].filter((s) => s.targetName?.toLowerCase() === key);
    await Promise.all(victims.map((s) => this.endSession(s, 'target removed')));
  }

  setDiscoveryAuth(chap?: ChapCredentials, mutual?: ChapCredentials): void {
    if (mutual && !chap) throw new Error('discovery mutual CHAP needs one-way CHAP credentials too');
    this.discoveryChap = chap;
    this.discoveryMutualChap = mutual;
  }

  sessions(): IscsiSessionInfo[] {
    return [...this.sessionsByTsih.values()].map((s) => ({
      target: s.targetName ?? null,
      sessionType: s.type,
      initiator: s.initiatorName,
      isid: s.isidHex,
      tsih: s.tsih,
      tpgt: s.tpgt,
      connections: [...s.connections.values()].map((c) => (c instanceof RemoteConnection ? remoteConnectionInfo(c) : connectionInfo(c as IscsiConnection))),
      params: {
        InitialR2T: s.params.InitialR2T,
        ImmediateData: s.params.ImmediateData,
        MaxBurstLength: s.params.MaxBurstLength,
        FirstBurstLength: s.params.FirstBurstLength,
        MaxOutstandingR2T: s.params.MaxOutstandingR2T,
        MaxConnections: s.params.MaxConnections,
        ErrorRecoveryLevel: s.params.ErrorRecoveryLevel,
        DefaultTime2Wait: s.params.DefaultTime2Wait,
        DefaultTime2Retain: s.params.DefaultTime2Retain,
      },
      commands: s.counters.commands,
      readBytes: s.counters.readBytes,
      writeBytes: s.counters.writeBytes,
      taskManagementRequests: s.counters.tmfs,
      rejects: s.counters.rejects + sumRemote(s, (st) => st.rejects),
      activeCommands: s.activeTasks() + sumRemote(s, (st) => st.activeCommands),
      expCmdSn: remoteOf(s)?.stats?.expCmdSn ?? s.expCmdSn,
      createdAt: new Date(s.createdAt).toISOString(),
    }));
  }

  /** Ask every initiator to log out (Async Message, §11.9.1 event 1), wait, then drop what remains. */
  async requestLogoutAll(timeoutMs: number): Promise<void> {
    const seconds = Math.max(0, Math.ceil(timeoutMs / 1000));
    for (const c of this.connections) c.requestLogout(seconds);
    for (const c of this.remoteConnections) c.requestLogout(seconds);
    const deadline = Date.now() + Math.max(0, timeoutMs);
    while (this.sessionsByTsih.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    await Promise.all([...this.sessionsByTsih.values()].map((s) => this.endSession(s, 'logout requested and timed out')));
    for (const c of [...this.connections]) c.drop('service shutting down');
  }

  async close(): Promise<void> {
    this.closing = true;
    const portals = [...this.portals.values()];
    this.portals.clear();
    await Promise.all(portals.map((p) => p.listener.close()));
    for (const c of [...this.connections]) c.drop('service closing');
    await Promise.all([...this.sessionsByTsih.values()].map((s) => this.endSession(s, 'service closing')));
    await this.threads?.close();
  }

  // ------------------------------------------------------------ connections and sessions

  private compile(spec: IscsiTargetSpec): TargetEntry {
    const tpgt = spec.tpgt ?? 1;
    checkTpgt(tpgt, `target ${spec.target.name}`);
    if (spec.mutualChap && !spec.chap && !(spec.acls ?? []).some((a) => a.chap)) {
      throw new Error(`target ${spec.target.name}: mutual CHAP needs one-way CHAP credentials too`);
    }
    // The SCSI target port exists from the start so REPORT TARGET PORT GROUPS and relative port
    // identifiers are the same before and after the first login.
    targetPortOf(spec.target, tpgt);
    return {
      spec,
      name: spec.target.name,
      tpgt,
      access: new TargetAccess(spec),
      policy: buildPolicy(spec.params ?? {}, `target ${spec.target.name}`),
    };
  }

  private accept(t: IscsiTransport, tpgt: number): void {
    if (this.closing) {
      t.destroy();
      return;
    }
    // Connections that have not finished login cost a timer and buffers each: bound them so a flood of
    // idle sockets cannot starve logged-in sessions.
    let loggingIn = 0;
    for (const c of this.connections) if (c.phase === 'login') loggingIn++;
    if (loggingIn >= MAX_CONNECTIONS_IN_LOGIN) {
      this.logger?.warn({ peer: t.remoteAddress, limit: MAX_CONNECTIONS_IN_LOGIN }, 'too many connections in login; refusing a new one');
      t.destroy();
      return;
    }
    this.connections.add(new IscsiConnection(t, this, tpgt));
  }

  connectionClosed(conn: IscsiConnection): void {
    this.connections.delete(conn);
    const s = conn.session;
    if (s) this.sessionConnectionGone(s as IscsiSession<Nexus>, conn, conn.orderlyExit);
  }

  private sessionConnectionGone(s: IscsiSession<Nexus>, conn: IscsiConnection | RemoteConnection, orderly: boolean): void {
    if (s.connections.get(conn.cid) === conn) s.connections.delete(conn.cid);
    if (s.connections.size === 0) void this.endSession(s, 'last connection closed');
    // ErrorRecoveryLevel 0 (RFC 7143 §7.1.5, §7.3): a connection failure is a session failure; the
    // initiator recovers by reinstating the session. Logouts and connection reinstatement are not failures.
    else if (!orderly && s.params.ErrorRecoveryLevel === 0) void this.endSession(s, 'a connection of the session failed');
  }

  /**
   * ConnectionServer: continue a just logged-in connection on a connection thread when the session is
   * a normal one with a single connection (MC/S sessions keep all their connections here, where their
   * shared command window lives) and placement picks a thread.
   */
  moveConnection(conn: IscsiConnection, handoff: ConnectionHandoff): boolean {
    const threads = this.threads;
    const s = conn.session as IscsiSession<Nexus> | undefined;
    if (!threads || this.closing || !s || s.type !== 'Normal' || !s.nexus || !conn.transport.handOver) return false;
    if (s.params.MaxConnections !== 1 || s.connections.size !== 1 || s.connections.get(handoff.cid) !== conn) return false;
    let onMain = 0;
    for (const other of this.sessionsByTsih.values()) if (other.type === 'Normal' && other !== s && !remoteOf(other)) onMain++;
    const thread = threads.choose(onMain);
    if (!thread) return false;
    let fd: number | undefined;
    try {
      fd = conn.transport.handOver(threads.dupSocketFd);
    } catch (e) {
      this.logger?.warn({ err: e }, 'cannot move an iSCSI connection to a connection thread; it stays on the main thread');
      return false;
    }
    if (fd === undefined) return false;
    const t = conn.transport;
    const remote = threads.move(
      thread,
      {
        fd,
        connId: conn.id,
        tpgt: conn.tpgt,
        cid: handoff.cid,
        statSn: handoff.statSn,
        params: handoff.params,
        session: { tsih: s.tsih, isidHex: s.isidHex, initiatorName: s.initiatorName, targetName: s.targetName ?? '', expCmdSn: s.expCmdSn, window: s.window },
        discovery: this.discoverySnapshot(s.initiatorName, t.remoteAddress),
      },
      handoff.firstBytes,
      { nexus: s.nexus, counters: s.counters },
      { peerAddress: t.remoteAddress, peerPort: t.remotePort, localAddress: t.localAddress, localPort: t.localPort, params: handoff.params },
      (c, orderly, reason) => {
        this.remoteConnections.delete(c);
        if (c.recalled) return;
        conn.log?.info({ reason }, 'iSCSI connection on a connection thread closed');
        this.sessionConnectionGone(s, c, orderly);
      },
    );
    this.connections.delete(conn);
    this.remoteConnections.add(remote);
    s.connections.set(handoff.cid, remote);
    conn.log?.info(
      {
        initiator: s.initiatorName,
        target: s.targetName,
        tsih: s.tsih,
        cid: handoff.cid,
        thread: remote.threadIndex,
        ...digestNames(handoff.params),
      },
      'iSCSI login complete',
    );
    return true;
  }

  /**
   * Targets, their access or the portals changed: sessions on connection threads answer SendTargets
   * (their own target's addresses, §13.3) from a new snapshot.
   */
  private refreshMovedDiscovery(): void {
    for (const s of this.sessionsByTsih.values()) {
      const r = remoteOf(s);
      if (r) r.updateDiscovery(this.discoverySnapshot(s.initiatorName, r.snapshot.peerAddress));
    }
  }

  /** What SendTargets may show this initiator at this address: every target with its visibility, and the portals. */
  private discoverySnapshot(initiator: string, remoteAddress: string): { targets: DiscoverableTarget[]; portals: PortalAddress[] } {
    return {
      targets: [...this.targets.values()].map((e) => ({ name: e.name, tpgt: e.tpgt, visible: e.access.decide(initiator, remoteAddress).allowed })),
      portals: [...this.portals.values()].map((p) => ({ host: p.host, port: p.port, tpgt: p.tpgt })),
    };
  }

  private async endSession(s: IscsiSession<Nexus>, reason: string): Promise<void> {
    if (s.closed) return;
    s.closed = true;
    if (this.sessionsByTsih.get(s.tsih) === s) this.sessionsByTsih.delete(s.tsih);
    for (const c of [...s.connections.values()]) c.drop(reason);
    s.abortAllTasks();
    this.logger?.info({ initiator: s.initiatorName, target: s.targetName, tsih: s.tsih, reason }, 'iSCSI session ended');
    if (s.nexus) {
      try {
        await s.nexus.close();
      } catch (e) {
        this.logger?.error({ err: e, target: s.targetName }, 'closing the I_T nexus failed');
      }
    }
  }

  private allocTsih(): number {
    for (let i = 0; i < 0xffff; i++) {
      const t = this.nextTsih;
      this.nextTsih = this.nextTsih >= 0xffff ? 1 : this.nextTsih + 1;
      if (!this.sessionsByTsih.has(t)) return t;
    }
    return 0;
  }

  private findSession(initiatorName: string, isid: Buffer, targetName: string | undefined): IscsiSession<Nexus> | undefined {
    const name = initiatorName.toLowerCase();
    for (const s of this.sessionsByTsih.values()) {
      if (s.initiatorName.toLowerCase() === name && s.isid.equals(isid) && (s.targetName ?? '').toLowerCase() === (targetName ?? '').toLowerCase() && !s.closed) {
        return s;
      }
    }
    return undefined;
  }

  loginHost(conn: IscsiConnection): LoginHost {
    let decision: AccessDecision | undefined;
    const server = this;
    return {
      tpgt: conn.tpgt,
      peerAddress: conn.transport.remoteAddress,
      lookupTarget(name: string, initiatorName: string): LoginTargetInfo | undefined {
        const entry = server.targets.get(name.toLowerCase());
        if (!entry) return undefined;
        decision = entry.access.decide(initiatorName, conn.transport.remoteAddress);
        const info: LoginTargetInfo = { name: entry.name, policy: entry.policy, allowed: decision.allowed, servedOnPortal: entry.tpgt === conn.tpgt };
        if (decision.chap) info.chap = decision.chap;
        if (decision.mutualChap) info.mutualChap = decision.mutualChap;
        return info;
      },
      discoveryAuth() {
        const d: { policy: TargetParamPolicy; chap?: ChapCredentials; mutualChap?: ChapCredentials } = { policy: server.discoveryPolicy };
        if (server.discoveryChap) d.chap = server.discoveryChap;
        if (server.discoveryMutualChap) d.mutualChap = server.discoveryMutualChap;
        return d;
      },
      existingSession(initiatorName: string, isid: Buffer, tsih: number, targetName: string | undefined): OperationalParams | undefined {
        const s = server.sessionsByTsih.get(tsih);
        if (!s || s.closed || s.initiatorName.toLowerCase() !== initiatorName.toLowerCase() || !s.isid.equals(isid)) return undefined;
        if ((s.targetName ?? '').toLowerCase() !== (targetName ?? '').toLowerCase()) return undefined;
        return s.params;
      },
      admit: (result: LoginResult) => server.admit(conn, result, decision),
    };
  }

  private async admit(conn: IscsiConnection, r: LoginResult, decision: AccessDecision | undefined): Promise<AdmitResult> {
    if (this.closing) return { ok: false, status: LoginStatus.SERVICE_UNAVAILABLE, message: 'service is shutting down' };
    if (conn.closed) return { ok: false, status: LoginStatus.TARGET_ERROR, message: 'connection closed during login' };
    let s: IscsiSession<Nexus>;
    if (r.tsih === 0) {
      let nexus;
      if (r.sessionType === 'Normal') {
        const entry = this.targets.get((r.targetName ?? '').toLowerCase());
        if (!entry) return { ok: false, status: LoginStatus.TARGET_REMOVED, message: `target ${r.targetName} was removed during login` };
        // §6.3.5: a new login with the ISID of an existing session reinstates (replaces) it.
        const old = this.findSession(r.initiatorName, r.isid, entry.name);
        if (old) await this.endSession(old, 'session reinstatement');
        try {
          const opts = {
            target: entry.spec.target,
            targetPort: targetPortOf(entry.spec.target, entry.tpgt),
            initiator: initiatorPortId(r.initiatorName, r.isid),
            ...(decision?.lunMap !== undefined ? { lunMap: decision.lunMap } : {}),
          };
          nexus = await this.core.openNexus(opts);
        } catch (e) {
          this.logger?.error({ err: e, target: entry.name }, 'opening the I_T nexus failed');
          return { ok: false, status: LoginStatus.TARGET_ERROR, message: `cannot open nexus: ${(e as Error).message}` };
        }
        if (conn.closed) {
          await nexus.close();
          return { ok: false, status: LoginStatus.TARGET_ERROR, message: 'connection closed during login' };
        }
      }
      const tsih = this.allocTsih();
      if (!tsih) {
        await nexus?.close();
        return { ok: false, status: LoginStatus.OUT_OF_RESOURCES, message: 'no free TSIH' };
      }
      s = new IscsiSession(tsih, r.isid, r.initiatorName, r.targetName, r.sessionType, { ...r.params }, r.cmdSn, nexus, conn.tpgt);
      this.sessionsByTsih.set(tsih, s);
    } else {
      const found = this.sessionsByTsih.get(r.tsih);
      if (!found || found.closed) return { ok: false, status: LoginStatus.SESSION_DOES_NOT_EXIST, message: `session ${r.tsih} is gone` };
      s = found;
      if (s.tpgt !== conn.tpgt) return { ok: false, status: LoginStatus.CANT_INCLUDE_IN_SESSION, message: 'connection arrived on another portal group' };
      const old = s.connections.get(r.cid);
      if (old instanceof RemoteConnection) {
        // The session's command window moved with the connection: take it back before continuing here.
        const window = await old.recall();
        if (window) s.resumeWindow(window.expCmdSn, window.maxCmdSn);
        if (conn.closed || s.closed) return { ok: false, status: LoginStatus.TARGET_ERROR, message: 'session ended during connection reinstatement' };
      }
      if (old) {
        // §6.3.4: a login with the CID of a live connection reinstates that connection.
        old.markOrderlyExit();
        old.drop('connection reinstatement');
        s.connections.delete(r.cid);
      } else if (s.connections.size >= s.params.MaxConnections) {
        return { ok: false, status: LoginStatus.TOO_MANY_CONNECTIONS, message: `session already has MaxConnections=${s.params.MaxConnections}` };
      }
    }
    conn.session = s;
    conn.cid = r.cid;
    s.connections.set(r.cid, conn);
    return { ok: true, tsih: s.tsih, expCmdSn: s.expCmdSn, maxCmdSn: s.maxCmdSn };
  }

  textResponder(conn: IscsiConnection): TextResponder {
    return {
      respond: (pairs: KeyValues): KeyValues =>
        answerTextKeys(pairs, {
          sessionType: conn.session?.type,
          params: conn.params,
          sendTargets: (value) => this.sendTargetsFor(conn, value, conn.session?.targetName),
        }),
    };
  }

  private sendTargetsFor(conn: IscsiConnection, value: string, sessionTarget: string | undefined): KeyValues {
    const { targets, portals } = this.discoverySnapshot(conn.session?.initiatorName ?? '', conn.transport.remoteAddress);
    return sendTargets(value, targets, portals, conn.transport.localAddress, sessionTarget);
  }
}

/** The core target port for a TPGT: RFC 7143 §10.1.1 name `<target>,t,0x<TPGT>`, created once. */
function targetPortOf(target: ScsiTarget, tpgt: number): TargetPort {
  const name = `${target.name},t,0x${tpgt.toString(16).padStart(4, '0')}`;
  const existing = target.getPort(name);
  if (existing) return existing;
  const taken = new Set(target.ports().map((p) => p.relativeId));
  return tpgt >= 1 && !taken.has(tpgt) ? target.addPort({ name, relativeId: tpgt }) : target.addPort({ name });
}

function portalKey(host: string, port: number): string {
  return `${host}|${port}`;
}

function checkTpgt(tpgt: number, where: string): void {
  if (!Number.isInteger(tpgt) || tpgt < 0 || tpgt > 0xffff) throw new Error(`TPGT ${tpgt} for ${where} must be 0..65535`);
}

function connectionInfo(c: IscsiConnection): IscsiConnectionInfo {
  return {
    cid: c.cid,
    peerAddress: c.transport.remoteAddress,
    peerPort: c.transport.remotePort,
    localAddress: c.transport.localAddress,
    localPort: c.transport.localPort,
    ...digestNames(c.params),
    maxRecvDataSegmentLength: c.params.MaxRecvDataSegmentLength,
    targetMaxRecvDataSegmentLength: c.params.TargetMaxRecvDataSegmentLength,
    activeCommands: c.activeTasks,
    thread: 0,
    sendQueueBytes: c.transport.pendingBytes,
    pdusReceived: c.rxPdus,
    pdusSent: c.txPdus,
    connectedAt: new Date(c.createdAt).toISOString(),
  };
}

function remoteConnectionInfo(c: RemoteConnection): IscsiConnectionInfo {
  const snap = c.snapshot;
  return {
    cid: c.cid,
    peerAddress: snap.peerAddress,
    peerPort: snap.peerPort,
    localAddress: snap.localAddress,
    localPort: snap.localPort,
    ...digestNames(snap.params),
    maxRecvDataSegmentLength: snap.params.MaxRecvDataSegmentLength,
    targetMaxRecvDataSegmentLength: snap.params.TargetMaxRecvDataSegmentLength,
    activeCommands: c.stats?.activeCommands ?? 0,
    thread: c.threadIndex,
    sendQueueBytes: c.stats?.sendQueueBytes ?? 0,
    pdusReceived: c.stats?.pdusReceived ?? 0,
    pdusSent: c.stats?.pdusSent ?? 0,
    connectedAt: new Date(c.createdAt).toISOString(),
  };
}

function remoteOf(s: IscsiSession<Nexus>): RemoteConnection | undefined {
  for (const c of s.connections.values()) if (c instanceof RemoteConnection) return c;
  return undefined;
}

function sumRemote(s: IscsiSession<Nexus>, pick: (st: NonNullable<RemoteConnection['stats']>) => number): number {
  let n = 0;
  for (const c of s.connections.values()) if (c instanceof RemoteConnection && c.stats) n += pick(c.stats);
  return n;
}
