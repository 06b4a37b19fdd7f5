/**
 * Connection threads: after login, a normal session's connection may continue on a worker thread so
 * that PDU handling for many sessions uses both CPUs while the SCSI core stays on the main thread
 * (BENCHMARKS.md section 16). The main thread keeps, per moved connection, a `RemoteConnection` that
 * stands for it in the session (drop, logout request, statistics) and a `CoreLink` per thread that
 * carries its commands to the session's nexus.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { CoreLink, type LinkedSession } from './core-link.js';
import type { ConnectionThreadData } from './connection-thread.js';
import type { SessionConnection } from './session.js';
import { BatchSender, releaseBatch } from './thread-batch.js';
import type { Batch, ConnectionStats, MovedConnection, ToConnectionOp, ToCoreOp } from './thread-messages.js';

export interface ConnectionThreadsOptions {
  /** Worker threads to start (0 = every connection stays on the main thread). */
  count: number;
  /** A duplicate of a socket descriptor (the native addon's dupSocketFd). */
  dupSocketFd: (fd: number) => number;
  logLevel: string;
  prettyLogs: boolean;
  /**
   * Where sessions go: 'balanced' keeps the main thread's share at half a worker's, since it also runs
   * the core; 'threads' sends every session that can move (tests of the moved path).
   */
  placement?: 'balanced' | 'threads';
  /** The worker's entry script (default: connection-thread.js beside this module). */
  script?: URL;
}

/** A thread that exits is started again, at most this many times per window, then left stopped. */
const MAX_RESTARTS = 5;
const RESTART_WINDOW_MS = 60_000;
const RESTART_DELAY_MS = 1_000;

interface ConnectionThread {
  index: number;
  worker: Worker;
  out: BatchSender<ToConnectionOp>;
  core: CoreLink;
  links: Map<number, RemoteConnection>;
  alive: boolean;
}

/** A moved connection as its session on the main thread sees it. */
export class RemoteConnection implements SessionConnection {
  orderlyExit = false;
  closed = false;
  /** Recalled for connection reinstatement: its closing is expected and ends nothing. */
  recalled = false;
  stats: ConnectionStats | undefined;
  readonly createdAt = Date.now();
  private recallWaiter: ((r: { expCmdSn: number; maxCmdSn: number } | undefined) => void) | undefined;

  constructor(
    private readonly thread: ConnectionThread,
    readonly link: number,
    readonly cid: number,
    readonly snapshot: { peerAddress: string; peerPort: number; localAddress: string; localPort: number; params: MovedConnection['params'] },
    readonly onClosed: (c: RemoteConnection, orderly: boolean, reason: string) => void,
  ) {}

  /** Which connection thread runs it (1-based; 0 is the main thread). */
  get threadIndex(): number {
    return this.thread.index;
  }

  drop(reason: string): void {
    if (this.closed) return;
    this.thread.out.send({ t: 'drop', link: this.link, reason, orderly: this.orderlyExit });
  }

  markOrderlyExit(): void {
    this.orderlyExit = true;
  }

  closeAfterFlush(reason: string): void {
    if (!this.closed) this.thread.out.send({ t: 'closeAfterFlush', link: this.link, reason });
  }

  /** Targets, their access or the portals changed: what SendTargets answers in this session. */
  updateDiscovery(discovery: MovedConnection['discovery']): void {
    if (!this.closed) this.thread.out.send({ t: 'discovery', link: this.link, discovery });
  }

  requestLogout(seconds: number): void {
    if (!this.closed) this.thread.out.send({ t: 'requestLogout', link: this.link, seconds });
  }

  /**
   * Connection reinstatement (§6.3.4): the thread drops the connection and tells where the session's
   * command window stands, so the new connection continues it on the main thread.
   */
  recall(): Promise<{ expCmdSn: number; maxCmdSn: number } | undefined> {
    this.recalled = true;
    this.orderlyExit = true;
    if (this.closed) return Promise.resolve(undefined);
    this.thread.out.send({ t: 'recall', link: this.link });
    return new Promise((resolve) => (this.recallWaiter = resolve));
  }

  settleRecall(expCmdSn: number, maxCmdSn: number): void {
    const w = this.recallWaiter;
    this.recallWaiter = undefined;
    w?.(expCmdSn < 0 ? undefined : { expCmdSn, maxCmdSn });
  }

  gone(orderly: boolean, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.settleRecall(-1, -1);
    this.onClosed(this, orderly || this.orderlyExit, reason);
  }
}

export class ConnectionThreads {
  private readonly threads: ConnectionThread[] = [];
  private nextLink = 1;
  private readonly placement: 'balanced' | 'threads';
  private closing = false;
  /** Start times of the restarts of each thread (by index) within the last window. */
  private readonly restarts = new Map<number, number[]>();

  constructor(
    private readonly opts: ConnectionThreadsOptions & { nopInterval: number; nopTimeout: number },
    private readonly logger: Logger | undefined,
  ) {
    this.placement = opts.placement ?? 'balanced';
    const script = opts.script ?? new URL('./connection-thread.js', import.meta.url);
    if (opts.count > 0 && !existsSync(fileURLToPath(script))) {
      logger?.warn({ script: fileURLToPath(script) }, 'connection thread script not found (run "npm run build"); all iSCSI connections stay on the main thread');
      return;
    }
    for (let i = 0; i < opts.count; i++) this.threads.push(this.start(script, i + 1));
  }

  private start(script: URL, index: number): ConnectionThread {
    const data: ConnectionThreadData = {
      index,
      logLevel: this.opts.logLevel,
      prettyLogs: this.opts.prettyLogs,
      nopInterval: this.opts.nopInterval,
      nopTimeout: this.opts.nopTimeout,
    };
    const worker = new Worker(script, { workerData: data, name: `vtgt-iscsi-${index}` });
    const out = new BatchSender<ToConnectionOp>(worker);
    const t: ConnectionThread = { index, worker, out, core: new CoreLink(out), links: new Map(), alive: true };
    worker.on('message', (batch: Batch<ToCoreOp>) => this.receive(t, batch));
    worker.on('error', (e) => this.logger?.error({ err: e, thread: index }, 'iSCSI connection thread failed'));
    worker.on('exit', (code) => {
      t.alive = false;
      if (t.links.size) this.logger?.error({ thread: index, code, connections: t.links.size }, 'iSCSI connection thread exited; its sessions end');
      for (const c of [...t.links.values()]) c.gone(false, 'connection thread exited');
      t.links.clear();
      if (!this.closing) this.scheduleRestart(script, t);
    });
    worker.unref();
    return t;
  }

  /**
   * Start a thread that exited again after a pause, so that new sessions can use it; a thread that
   * keeps exiting is left stopped (its sessions stay on the other threads and the main thread).
   */
  private scheduleRestart(script: URL, dead: ConnectionThread): void {
    const now = Date.now();
    const recent = (this.restarts.get(dead.index) ?? []).filter((at) => now - at < RESTART_WINDOW_MS);
    if (recent.length >= MAX_RESTARTS) {
      this.logger?.error(
        { thread: dead.index, restarts: recent.length },
        `iSCSI connection thread ${dead.index} exited ${recent.length} times within ${RESTART_WINDOW_MS / 1000} s; not restarting it (new sessions use the other threads); check the log above for its errors`,
      );
      return;
    }
    recent.push(now);
    this.restarts.set(dead.index, recent);
    setTimeout(() => {
      if (this.closing) return;
      const at = this.threads.indexOf(dead);
      if (at < 0) return;
      this.threads[at] = this.start(script, dead.index);
      this.logger?.warn({ thread: dead.index }, 'iSCSI connection thread restarted');
    }, RESTART_DELAY_MS).unref();
  }

  private receive(t: ConnectionThread, batch: Batch<ToCoreOp>): void {
    for (const op of batch.ops) {
      try {
        if (t.core.deliver(op, batch)) continue;
        const c = 'link' in op ? t.links.get(op.link) : undefined;
        if (!c) continue;
        if (op.t === 'stats') c.stats = op.stats;
        else if (op.t === 'recalled') c.settleRecall(op.expCmdSn, op.maxCmdSn);
        else if (op.t === 'closed') {
          t.links.delete(op.link);
          t.core.detach(op.link);
          c.gone(op.orderly, op.reason);
        }
      } catch (e) {
        this.logger?.error({ err: e, op: op.t, thread: t.index }, 'internal error handling a message from a connection thread');
      }
    }
    releaseBatch(batch);
  }

  /**
   * The thread a new session's connection should run on, given how many sessions stay on the main
   * thread; undefined for the main thread.
   */
  choose(mainSessions: number): ConnectionThread | undefined {
    let best: ConnectionThread | undefined;
    for (const t of this.threads) if (t.alive && (!best || t.links.size < best.links.size)) best = t;
    if (!best) return undefined;
    if (this.placement === 'threads') return best;
    return best.links.size < mainSessions * 2 ? best : undefined;
  }

  /** Move a logged-in connection (its socket taken with `dupSocketFd`) to `thread`. */
  move(
    thread: ConnectionThread,
    moved: MovedConnection,
    firstBytes: Buffer,
    session: LinkedSession,
    snapshot: RemoteConnection['snapshot'],
    onClosed: RemoteConnection['onClosed'],
  ): RemoteConnection {
    const link = this.nextLink++;
    const remote = new RemoteConnection(thread, link, moved.cid, snapshot, onClosed);
    thread.links.set(link, remote);
    thread.core.attach(link, session);
    thread.out.send({ t: 'adopt', link, connection: moved, firstBytes: thread.out.bytes(firstBytes) });
    return remote;
  }

  get dupSocketFd(): (fd: number) => number {
    return this.opts.dupSocketFd;
  }

  /** Stop the threads (their connections were dropped by the server first). */
  async close(): Promise<void> {
    this.closing = true;
    for (const t of this.threads) t.out.flush();
    await Promise.all(this.threads.map((t) => t.worker.terminate().catch(() => 0)));
  }
}
