/**
 * Entry of a connection thread (a worker thread): it continues logged-in iSCSI connections moved here
 * by the main thread (connection-threads.ts) — PDU framing, the session's command window, R2T and
 * Data-In — and reaches the SCSI core on the main thread through the batch link (remote-nexus.ts).
 * The main thread keeps logins, the administrator's view of sessions and the core.
 */
import { Buffer } from 'node:buffer';
import { parentPort, workerData } from 'node:worker_threads';
import type { Logger } from 'pino';
import { IscsiConnection, type ConnectionServer } from './connection.js';
import { sendTargets } from './discovery.js';
import type { LoginHost } from './login.js';
import { RemoteCommands } from './remote-nexus.js';
import { IscsiSession, type SessionNexus } from './session.js';
import { transportFromFd } from './tcp.js';
import { answerTextKeys } from './text-answers.js';
import type { TextResponder } from './text.js';
import { BatchSender, copyOf, releaseBatch } from './thread-batch.js';
import type { Batch, ConnectionStats, MovedConnection, ToConnectionOp, ToCoreOp } from './thread-messages.js';
import { createLogger } from '../service/logger.js';

export interface ConnectionThreadData {
  index: number;
  logLevel: string;
  prettyLogs: boolean;
  nopInterval: number;
  nopTimeout: number;
}

/** How often a connection's counters are reported to the main thread's management view. */
const STATS_INTERVAL_MS = 1000;

interface Moved {
  conn: IscsiConnection;
  discovery: MovedConnection['discovery'];
  lastStats: string;
}

class ConnectionThread implements ConnectionServer {
  readonly logger: Logger;
  readonly nopInterval: number;
  readonly nopTimeout: number;
  private readonly out: BatchSender<ToCoreOp>;
  private readonly commands: RemoteCommands;
  private readonly moved = new Map<number, Moved>();
  private readonly linkOf = new Map<IscsiConnection, number>();

  constructor(data: ConnectionThreadData) {
    this.logger = createLogger({ level: data.logLevel as never, pretty: data.prettyLogs }).child({ component: 'iscsi', thread: data.index });
    this.nopInterval = data.nopInterval;
    this.nopTimeout = data.nopTimeout;
    this.out = new BatchSender<ToCoreOp>(parentPort!);
    this.commands = new RemoteCommands(this.out);
    setInterval(() => this.reportStats(), STATS_INTERVAL_MS).unref();
  }

  receive(batch: Batch<ToConnectionOp>): void {
    for (const op of batch.ops) {
      try {
        if (!this.commands.deliver(op, batch)) this.control(op, batch);
      } catch (e) {
        // One connection's bad state must not stop the others: log and carry on with the batch.
        this.logger.error({ err: e, op: op.t }, 'internal error handling a message from the main thread');
      }
    }
    releaseBatch(batch);
  }

  private control(op: ToConnectionOp, batch: Batch<ToConnectionOp>): void {
    switch (op.t) {
      case 'adopt':
        return this.adopt(op.link, op.connection, copyOf(batch, op.firstBytes));
      case 'drop': {
        const m = this.moved.get(op.link);
        if (!m) return;
        if (op.orderly) m.conn.markOrderlyExit();
        m.conn.drop(op.reason);
        return;
      }
      case 'closeAfterFlush':
        return this.moved.get(op.link)?.conn.closeAfterFlush(op.reason);
      case 'requestLogout':
        return this.moved.get(op.link)?.conn.requestLogout(op.seconds);
      case 'discovery': {
        const m = this.moved.get(op.link);
        if (m) m.discovery = op.discovery;
        return;
      }
      case 'recall': {
        const m = this.moved.get(op.link);
        const s = m?.conn.session;
        if (m && s) {
          // The window first: the main thread must have it before it hears that the connection closed.
          this.out.send({ t: 'recalled', link: op.link, expCmdSn: s.expCmdSn, maxCmdSn: s.maxCmdSn });
          m.conn.markOrderlyExit();
          m.conn.drop('connection reinstatement');
        } else {
          this.out.send({ t: 'recalled', link: op.link, expCmdSn: -1, maxCmdSn: -1 });
        }
        return;
      }
      default:
        return;
    }
  }

  private adopt(link: number, c: MovedConnection, firstBytes: Buffer): void {
    let transport;
    try {
      transport = transportFromFd(c.fd);
    } catch (e) {
      this.logger.error({ err: e, initiator: c.session.initiatorName }, 'cannot continue a moved iSCSI connection');
      this.out.send({ t: 'closed', link, orderly: false, reason: `connection thread could not open the socket: ${(e as Error).message}` });
      return;
    }
    const ss = c.session;
    const nexus: SessionNexus = this.commands.nexusFor(link);
    const session = new IscsiSession(ss.tsih, Buffer.from(ss.isidHex, 'hex'), ss.initiatorName, ss.targetName, 'Normal', c.params, ss.expCmdSn, nexus, c.tpgt, ss.window);
    const conn = new IscsiConnection(transport, this, c.tpgt, { handoff: { params: c.params, cid: c.cid, statSn: c.statSn, firstBytes }, session, id: c.connId });
    session.connections.set(c.cid, conn);
    this.moved.set(link, { conn, discovery: c.discovery, lastStats: '' });
    this.linkOf.set(conn, link);
  }

  loginHost(): LoginHost {
    throw new Error('logins run on the main thread');
  }

  textResponder(conn: IscsiConnection): TextResponder {
    return {
      respond: (pairs) => {
        const d = this.moved.get(this.linkOf.get(conn) ?? -1)?.discovery;
        return answerTextKeys(pairs, {
          sessionType: conn.session?.type,
          params: conn.params,
          sendTargets: (value) => (d ? sendTargets(value, d.targets, d.portals, conn.transport.localAddress, conn.session?.targetName) : []),
        });
      },
    };
  }

  connectionClosed(conn: IscsiConnection): void {
    const link = this.linkOf.get(conn);
    if (link === undefined) return;
    this.linkOf.delete(conn);
    this.moved.delete(link);
    conn.session?.abortAllTasks();
    if (conn.session) conn.session.closed = true;
    this.out.send({ t: 'closed', link, orderly: conn.orderlyExit, reason: conn.orderlyExit ? 'logged out' : 'connection closed' });
  }

  private reportStats(): void {
    for (const [link, m] of this.moved) {
      const c = m.conn;
      const s = c.session!;
      const stats: ConnectionStats = {
        expCmdSn: s.expCmdSn,
        rejects: s.counters.rejects,
        pdusReceived: c.rxPdus,
        pdusSent: c.txPdus,
        sendQueueBytes: c.transport.pendingBytes,
        activeCommands: c.activeTasks,
      };
      const key = JSON.stringify(stats);
      if (key === m.lastStats) continue;
      m.lastStats = key;
      this.out.send({ t: 'stats', link, stats });
    }
  }
}

if (parentPort) {
  const thread = new ConnectionThread(workerData as ConnectionThreadData);
  parentPort.on('message', (batch: Batch<ToConnectionOp>) => thread.receive(batch));
}
