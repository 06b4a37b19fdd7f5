/**
 * The simulated hypervisor daemon: xenstore (watches, transactions) and interdomain event channels
 * for simulated domains connecting over a Unix socket. Grant tables are not here: they live in each
 * domain's memory file and are checked by the accessing side's hypervisor layer (`grant-table.ts`).
 *
 * A connection is a domain only after `hello` presented the token the daemon issued to that domain
 * (`src/sim/credentials.ts`); domains are created by dom0 (`createDomain`, or the `dom.create` request).
 * Permissions are simplified: dom0 may write anywhere, a guest only under its own home directory.
 * Event channel semantics follow Xen's: an event on a masked port only sets it pending; delivery
 * masks the port until the receiver unmasks it (late EOI), so a notify storm costs one delivery per
 * unmask. Closing one end of a bound channel returns the other end to "unbound".
 */
import { createServer, Server, Socket } from 'node:net';
import type { Logger } from 'pino';
import { XenStoreDb, XsError } from './xenstore-db.js';
import { SIM_MAX_LINE, SimEvent, SimReply, SimRequest } from './protocol.js';
import { LineReader } from '../../sim/line-reader.js';
import { credentialDir, SimCredentials } from '../../sim/credentials.js';
import { domainCredentialName, isDomid } from './domain-credentials.js';

interface Port {
  domid: number;
  port: number;
  conn: Conn;
  remote: number;
  remotePort: number | undefined;
  masked: boolean;
  pending: boolean;
}

interface Conn {
  socket: Socket;
  domid: number | undefined;
  watches: Map<number, () => void>;
  ports: Set<Port>;
}

export class SimXenServer {
  readonly db = new XenStoreDb();
  private server: Server | undefined;
  private readonly ports = new Map<number, Map<number, Port>>();
  private readonly conns = new Set<Conn>();
  private credentials: SimCredentials | undefined;
  /** Notifications dropped because the target port was already pending (storm coalescing). */
  coalescedEvents = 0;
  /** `hello` requests refused for a missing or wrong credential. */
  refusedHellos = 0;

  constructor(private readonly logger?: Logger) {}

  /**
   * Listen at `socketPath` and issue dom0's credential (`credentialPath(socketPath, 0)`), which
   * `SimXenClient.connect(socketPath, 0)` reads by default.
   */
  listen(socketPath: string): Promise<void> {
    const creds = new SimCredentials(credentialDir(socketPath));
    creds.init();
    creds.issue(domainCredentialName(0));
    this.credentials = creds;
    return new Promise((resolve, reject) => {
      const srv = createServer((s) => this.accept(s));
      srv.once('error', reject);
      srv.listen(socketPath, () => {
        srv.off('error', reject);
        this.server = srv;
        resolve();
      });
    });
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = undefined;
    this.credentials?.dispose();
    this.credentials = undefined;
  }

  /**
   * Create domain `domid` (1..0x7fef): issue its credential and return the token file's path, to be
   * handed to that domain's process only. Re-creating a domain revokes its old credential.
   */
  createDomain(domid: number): string {
    if (!this.credentials) throw new Error('the simulated hypervisor is not listening');
    if (!isDomid(domid) || domid === 0) throw new RangeError(`cannot create domain ${String(domid)}: a domU id is 1..32751`);
    this.disconnectDomain(domid);
    return this.credentials.issue(domainCredentialName(domid));
  }

  /** Destroy domain `domid`: its credential is revoked and its connections are closed. */
  destroyDomain(domid: number): void {
    if (!isDomid(domid) || domid === 0) return;
    this.credentials?.revoke(domainCredentialName(domid));
    this.disconnectDomain(domid);
  }

  private disconnectDomain(domid: number): void {
    for (const c of this.conns) if (c.domid === domid) c.socket.destroy();
  }

  private accept(socket: Socket): void {
    const conn: Conn = { socket, domid: undefined, watches: new Map(), ports: new Set() };
    this.conns.add(conn);
    const reader = new LineReader((line) => this.onLine(conn, line), SIM_MAX_LINE);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      // The replies to one chunk's requests leave in one write.
      socket.cork();
      try {
        if (!reader.push(chunk)) socket.destroy();
      } finally {
        socket.uncork();
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.drop(conn));
  }

  private drop(conn: Conn): void {
    this.conns.delete(conn);
    this.logger?.debug({ domid: conn.domid, ports: conn.ports.size }, 'xen-sim: domain connection closed');
    for (const unwatch of conn.watches.values()) unwatch();
    conn.watches.clear();
    for (const p of [...conn.ports]) this.closePort(p);
  }

  private send(conn: Conn, msg: SimReply | SimEvent): void {
    if (!conn.socket.destroyed) conn.socket.write(JSON.stringify(msg) + '\n');
  }

  private onLine(conn: Conn, line: string): void {
    let req: SimRequest;
    try {
      req = JSON.parse(line) as SimRequest;
    } catch {
      conn.socket.destroy();
      return;
    }
    const posted = req?.id === undefined && (req?.op === 'ev.notify' || req?.op === 'ev.unmask');
    const id = typeof req?.id === 'number' ? req.id : -1;
    try {
      const result = this.dispatch(conn, req);
      if (!posted) this.send(conn, result === undefined ? { id, ok: true } : { id, ok: true, result });
    } catch (e) {
      if (posted) return;
      const code = e instanceof XsError ? e.code : e instanceof SimError ? e.code : 'EINVAL';
      this.send(conn, { id, ok: false, code, message: (e as Error).message });
    }
  }

  private dispatch(conn: Conn, r: SimRequest): unknown {
    if (r.op === 'hello') {
      if (conn.domid !== undefined) throw new SimError('EINVAL', `already identified as dom ${conn.domid}`);
      if (!isDomid(r.domid)) throw new SimError('EINVAL', 'bad domid');
      if (!this.credentials?.verify(domainCredentialName(r.domid), r.token)) {
        this.refusedHellos++;
        this.logger?.warn({ claimedDomid: r.domid }, 'xen-sim: hello without a valid credential for the claimed domain refused; closing the connection');
        // Answer, then hang up: guessing needs a new connection per attempt.
        setImmediate(() => conn.socket.end());
        throw new SimError('EACCES', `no valid credential for dom ${r.domid}`);
      }
      conn.domid = r.domid;
      return undefined;
    }
    const dom = conn.domid;
    if (dom === undefined) throw new SimError('EACCES', 'hello first');
    switch (r.op) {
      case 'dom.create':
        if (dom !== 0) throw new SimError('EACCES', 'only dom0 creates domains');
        try {
          return this.createDomain(r.domid);
        } catch (e) {
          throw new SimError('EINVAL', (e as Error).message);
        }
      case 'dom.destroy':
        if (dom !== 0) throw new SimError('EACCES', 'only dom0 destroys domains');
        this.destroyDomain(r.domid);
        return undefined;
      case 'xs.read': {
        const v = this.db.read(r.path);
        if (v === undefined) throw new XsError('ENOENT', `${r.path} does not exist`);
        return v;
      }
      case 'xs.write':
        this.mayWrite(dom, r.path);
        this.db.write(r.path, String(r.value));
        return undefined;
      case 'xs.rm':
        this.mayWrite(dom, r.path);
        this.db.rm(r.path);
        return undefined;
      case 'xs.dir':
        return this.db.directory(r.path);
      case 'xs.watch': {
        const wid = r.wid;
        conn.watches.get(wid)?.();
        conn.watches.set(wid, this.db.watch({ path: r.path, fire: (path) => this.send(conn, { ev: 'watch', wid, path }) }));
        return undefined;
      }
      case 'xs.unwatch':
        conn.watches.get(r.wid)?.();
        conn.watches.delete(r.wid);
        return undefined;
      case 'xs.txstart':
        return this.db.generation;
      case 'xs.commit':
        if (!Array.isArray(r.ops)) throw new SimError('EINVAL', 'ops must be an array');
        for (const op of r.ops) this.mayWrite(dom, op?.path);
        this.db.commit(r.generation, r.ops);
        return undefined;
      case 'ev.alloc':
        return this.newPort(conn, dom, r.remote, undefined).port;
      case 'ev.bind': {
        const peer = this.ports.get(r.remote)?.get(r.remotePort);
        if (!peer || peer.remotePort !== undefined || peer.remote !== dom) {
          throw new SimError('EINVAL', `port ${r.remotePort} of dom ${r.remote} is not unbound for dom ${dom}`);
        }
        const p = this.newPort(conn, dom, r.remote, r.remotePort);
        peer.remotePort = p.port;
        return p.port;
      }
      case 'ev.notify': {
        const p = this.ownPort(conn, dom, r.port);
        if (p.remotePort === undefined) return undefined;
        const peer = this.ports.get(p.remote)?.get(p.remotePort);
        if (peer) this.raise(peer);
        return undefined;
      }
      case 'ev.unmask': {
        const p = this.ownPort(conn, dom, r.port);
        p.masked = false;
        if (p.pending) {
          p.pending = false;
          this.deliver(p);
        }
        return undefined;
      }
      case 'ev.close':
        this.closePort(this.ownPort(conn, dom, r.port));
        return undefined;
      default:
        throw new SimError('EINVAL', 'unknown operation');
    }
  }

  /**
   * A simplified form of xenstored's permissions: dom0 writes anywhere, a guest only below its own
   * /local/domain/<domid>/ (where its frontend nodes live). Everyone may read.
   */
  private mayWrite(dom: number, path: unknown): void {
    if (dom === 0) return;
    if (typeof path !== 'string' || !path.startsWith(`/local/domain/${dom}/`)) {
      throw new SimError('EACCES', `dom ${dom} may not write ${String(path).slice(0, 80)}`);
    }
  }

  private newPort(conn: Conn, domid: number, remote: number, remotePort: number | undefined): Port {
    if (!Number.isInteger(remote) || remote < 0) throw new SimError('EINVAL', 'bad remote domid');
    let table = this.ports.get(domid);
    if (!table) this.ports.set(domid, (table = new Map()));
    let port = 1;
    while (table.has(port)) port++;
    const p: Port = { domid, port, conn, remote, remotePort, masked: false, pending: false };
    table.set(port, p);
    conn.ports.add(p);
    return p;
  }

  private ownPort(conn: Conn, domid: number, port: number): Port {
    const p = this.ports.get(domid)?.get(port);
    if (!p || p.conn !== conn) throw new SimError('EINVAL', `port ${port} is not yours`);
    return p;
  }

  private raise(p: Port): void {
    if (p.masked) {
      if (p.pending) this.coalescedEvents++;
      p.pending = true;
      return;
    }
    this.deliver(p);
  }

  private deliver(p: Port): void {
    p.masked = true;
    this.send(p.conn, { ev: 'evtchn', port: p.port });
  }

  private closePort(p: Port): void {
    this.ports.get(p.domid)?.delete(p.port);
    p.conn.ports.delete(p);
    if (p.remotePort !== undefined) {
      const peer = this.ports.get(p.remote)?.get(p.remotePort);
      if (peer) peer.remotePort = undefined;
    }
  }
}

class SimError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
