/**
 * A simulated domain's connection to the simulated hypervisor daemon: xenstore (as the `XenStore`
 * interface) and event channels. Used by the backend's `SimHypervisor` and by frontend emulators.
 */
import { connect, Socket } from 'node:net';
import { SIM_MAX_LINE, SimEvent, SimReply, type SimRequest } from './protocol.js';
import { LineReader } from '../../sim/line-reader.js';
import { readCredential } from '../../sim/credentials.js';
import { credentialPath } from './domain-credentials.js';
import { InFlightTable } from '../../vscsi/in-flight-table.js';
import type { XenStore, XenStoreTransaction, XenStoreWatch } from '../hypervisor.js';

export class SimCallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SimCallError';
  }
}

type Pending = { resolve(v: unknown): void; reject(e: Error): void };

const TX_MAX_ATTEMPTS = 64;

export class SimXenClient {
  private nextId = 1;
  private nextWid = 1;
  /** Calls awaiting their reply (a table, not a Map: see InFlightTable). */
  private readonly calls = new InFlightTable<number, Pending>();
  private readonly watchers = new Map<number, (path: string) => void>();
  private readonly ports = new Map<number, () => void>();
  private closed = false;
  readonly xenstore: XenStore;

  private constructor(
    private readonly socket: Socket,
    readonly domid: number,
  ) {
    const reader = new LineReader((line) => this.onLine(line), SIM_MAX_LINE);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      if (!reader.push(chunk)) socket.destroy();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      for (const c of this.calls.values()) c.reject(new SimCallError('ECONNRESET', 'simulated hypervisor connection closed'));
      this.calls.clear();
    });
    this.xenstore = this.makeXenStore();
  }

  /**
   * Connect as `domid`, proving it with the domain's credential: `token`, or the token file
   * `tokenFile` (default: where the daemon at `socketPath` keeps that domain's file, which is how
   * dom0 — the service, `vtgt xen attach` — finds its own).
   */
  static async connect(socketPath: string, domid: number, credential: { token?: string; tokenFile?: string } = {}): Promise<SimXenClient> {
    const token = credential.token ?? readCredential(credential.tokenFile ?? credentialPath(socketPath, domid), `dom ${domid}`);
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect(socketPath, () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
    const c = new SimXenClient(socket, domid);
    try {
      await c.call('hello', { domid, token });
    } catch (e) {
      c.socket.destroy();
      throw e;
    }
    return c;
  }

  /** dom0 only: create domain `domid`; returns the path of its token file (give it to that domain only). */
  async createDomain(domid: number): Promise<string> {
    return (await this.call('dom.create', { domid })) as string;
  }

  /** dom0 only: destroy domain `domid` (credential revoked, its connections closed). */
  async destroyDomain(domid: number): Promise<void> {
    await this.call('dom.destroy', { domid });
  }

  call(op: string, args: Record<string, unknown> = {}): Promise<unknown> {
    if (this.closed) return Promise.reject(new SimCallError('ECONNRESET', 'simulated hypervisor connection closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve, reject });
      this.socket.write(JSON.stringify({ id, op, ...args }) + '\n');
    });
  }

  private onLine(line: string): void {
    let m: SimReply | SimEvent;
    try {
      m = JSON.parse(line) as SimReply | SimEvent;
    } catch {
      return;
    }
    if ('ev' in m) {
      if (m.ev === 'watch') this.watchers.get(m.wid)?.(m.path);
      else this.ports.get(m.port)?.();
      return;
    }
    const c = this.calls.get(m.id);
    if (!c) return;
    this.calls.delete(m.id);
    if (m.ok) c.resolve(m.result);
    else c.reject(new SimCallError(m.code, m.message));
  }

  // ---- event channels ----
  async allocUnbound(remoteDomid: number, onEvent: () => void): Promise<number> {
    const port = (await this.call('ev.alloc', { remote: remoteDomid })) as number;
    this.ports.set(port, onEvent);
    return port;
  }

  async bindInterdomain(remoteDomid: number, remotePort: number, onEvent: () => void): Promise<number> {
    const port = (await this.call('ev.bind', { remote: remoteDomid, remotePort })) as number;
    this.ports.set(port, onEvent);
    return port;
  }

  /** Posted, no reply: an error could only mean the port is gone, which the sender learns otherwise. */
  notify(port: number): void {
    this.post({ op: 'ev.notify', port });
  }

  unmask(port: number): void {
    this.post({ op: 'ev.unmask', port });
  }

  private post(req: Extract<SimRequest, { op: 'ev.notify' | 'ev.unmask' }>): void {
    if (!this.closed) this.socket.write(JSON.stringify(req) + '\n');
  }

  closePort(port: number): void {
    this.ports.delete(port);
    this.call('ev.close', { port }).catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    await new Promise<void>((r) => this.socket.end(() => r()));
    this.socket.destroy();
  }

  private makeXenStore(): XenStore {
    const readOp = async (path: string): Promise<string | undefined> => {
      try {
        return (await this.call('xs.read', { path })) as string;
      } catch (e) {
        if (e instanceof SimCallError && e.code === 'ENOENT') return undefined;
        throw e;
      }
    };
    const self = this;
    return {
      read: readOp,
      write: async (path, value) => void (await this.call('xs.write', { path, value })),
      rm: async (path) => void (await this.call('xs.rm', { path })),
      directory: async (path) => (await this.call('xs.dir', { path })) as string[],
      // The simulated daemon applies one fixed rule (see server.ts); node permissions are accepted
      // and not stored.
      setPermissions: async () => undefined,
      async watch(path: string, onChange: (p: string) => void): Promise<XenStoreWatch> {
        const wid = self.nextWid++;
        self.watchers.set(wid, onChange);
        await self.call('xs.watch', { wid, path });
        return {
          close: async () => {
            self.watchers.delete(wid);
            await self.call('xs.unwatch', { wid }).catch(() => undefined);
          },
        };
      },
      async transaction<T>(fn: (tx: XenStoreTransaction) => Promise<T>): Promise<T> {
        for (let attempt = 0; ; attempt++) {
          const generation = (await self.call('xs.txstart')) as number;
          const ops: Array<{ op: 'write'; path: string; value: string } | { op: 'rm'; path: string }> = [];
          const local = new Map<string, string | null>();
          const tx: XenStoreTransaction = {
            read: async (p) => {
              if (local.has(p)) return local.get(p) ?? undefined;
              return readOp(p);
            },
            write: async (p, v) => {
              ops.push({ op: 'write', path: p, value: v });
              local.set(p, v);
            },
            rm: async (p) => {
              ops.push({ op: 'rm', path: p });
              local.set(p, null);
            },
            directory: async (p) => (await self.call('xs.dir', { path: p })) as string[],
          };
          const result = await fn(tx);
          try {
            await self.call('xs.commit', { generation, ops });
            return result;
          } catch (e) {
            if (!(e instanceof SimCallError) || e.code !== 'EAGAIN' || attempt >= TX_MAX_ATTEMPTS) throw e;
            await new Promise((r) => setTimeout(r, 1 + Math.floor(Math.random() * 4)));
          }
        }
      },
      close: () => this.close(),
    };
  }
}
