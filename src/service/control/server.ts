/**
 * The control socket: a Unix socket in the data directory, mode 0600, speaking JSON lines
 * (see protocol.ts). Requests on one connection are answered in order.
 */
import { Buffer } from 'node:buffer';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { chmod, unlink } from 'node:fs/promises';
import type { Logger } from 'pino';
import { dispatch, type ServiceContext } from './ops.js';
import { ControlError, MAX_REQUEST_BYTES, parseRequest, type ControlResponse } from './protocol.js';

/** sun_path is 108 bytes on Linux, including the terminating NUL. */
const MAX_SOCKET_PATH = 107;

export async function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly path: string,
    private readonly ctx: ServiceContext,
    private readonly logger: Logger,
  ) {}

  async listen(): Promise<void> {
    if (Buffer.byteLength(this.path) > MAX_SOCKET_PATH) {
      throw new Error(`control socket path ${this.path} is longer than ${MAX_SOCKET_PATH} bytes; use a shorter --data directory`);
    }
    if (await socketInUse(this.path)) {
      throw new Error(`another vtgt is already running with this data directory (its control socket ${this.path} answers); stop it first or use another --data`);
    }
    await unlink(this.path).catch(() => undefined); // stale socket of a process that died
    const server = createServer((s) => this.serve(s));
    this.server = server;
    // The socket is created with the umask; keep it private from the first moment, then make sure.
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    await chmod(this.path, 0o600);
  }

  private serve(sock: Socket): void {
    this.sockets.add(sock);
    sock.setEncoding('utf8');
    let buf = '';
    let chain = Promise.resolve();
    const reply = (r: ControlResponse) => {
      if (!sock.destroyed) sock.write(`${JSON.stringify(r)}\n`);
    };
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST_BYTES && !buf.includes('\n')) {
        reply({ id: 0, ok: false, error: { code: 'usage', message: `request longer than ${MAX_REQUEST_BYTES} bytes` } });
        sock.destroy();
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl).trim();
        buf = buf.slice(nl + 1);
        if (!line) continue;
        chain = chain.then(() => this.handle(line).then(reply));
      }
    });
    sock.on('error', () => undefined);
    sock.on('close', () => this.sockets.delete(sock));
  }

  private async handle(line: string): Promise<ControlResponse> {
    const req = parseRequest(line);
    if ('error' in req) return { id: req.id, ok: false, error: { code: 'usage', message: req.error } };
    try {
      const result = await dispatch(this.ctx, req.op, req.args);
      if (!req.op.endsWith('list') && !['show', 'stats', 'ping', 'config.show'].includes(req.op)) {
        this.logger.info({ op: req.op }, `control: ${req.op} done`);
      }
      return { id: req.id, ok: true, result: result ?? null };
    } catch (e) {
      if (e instanceof ControlError) return { id: req.id, ok: false, error: { code: e.code, message: e.message } };
      const message = (e as Error).message ?? String(e);
      this.logger.warn({ op: req.op, err: e }, `control: ${req.op} failed`);
      return { id: req.id, ok: false, error: { code: 'failed', message } };
    }
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server?.listening) return; // never bound: the socket file, if any, belongs to someone else
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await unlink(this.path).catch(() => undefined);
  }
}
