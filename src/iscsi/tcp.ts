/**
 * The TCP transport beneath the iSCSI protocol code: listening portals and a narrow per-connection
 * interface (bytes in, gather writes out, close) that an iSER transport could implement instead.
 */
import { createServer, type Server, type Socket } from 'node:net';

export interface IscsiTransport {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** Install receive and close handlers (once). */
  start(onData: (chunk: Buffer) => void, onClose: (error?: Error) => void): void;
  /** Queue wire chunks; writes issued in one tick leave in one gather write. */
  send(chunks: Buffer[]): void;
  /** Flush what is queued, then close. */
  end(): void;
  /** Close now, dropping anything queued. */
  destroy(): void;
  /** Bytes queued in the kernel-side writer not yet sent (backpressure indication). */
  readonly pendingBytes: number;
  /** Call `cb` once everything queued has been handed to the kernel (immediately if nothing is queued). */
  whenDrained(cb: () => void): void;
  /** Stop / restart delivering received bytes (backpressure towards the initiator). */
  pauseReading(): void;
  resumeReading(): void;
}

export class TcpTransport implements IscsiTransport {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  private corked = false;
  private closed = false;

  constructor(private readonly socket: Socket) {
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    this.localAddress = socket.localAddress ?? '';
    this.localPort = socket.localPort ?? 0;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
  }

  start(onData: (chunk: Buffer) => void, onClose: (error?: Error) => void): void {
    let lastError: Error | undefined;
    this.socket.on('data', onData);
    this.socket.on('error', (e) => {
      lastError = e;
    });
    this.socket.on('close', () => {
      this.closed = true;
      onClose(lastError);
    });
  }

  send(chunks: Buffer[]): void {
    if (this.closed || this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    for (const c of chunks) this.socket.write(c);
  }

  end(): void {
    if (this.closed) return;
    this.socket.end();
    // A peer that never reads must not keep the socket forever.
    setTimeout(() => this.socket.destroy(), 5000).unref();
  }

  destroy(): void {
    this.socket.destroy();
  }

  get pendingBytes(): number {
    return this.socket.writableLength;
  }

  whenDrained(cb: () => void): void {
    if (this.closed || this.socket.writableLength === 0) {
      process.nextTick(cb);
      return;
    }
    this.socket.once('drain', cb);
  }

  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    if (!this.closed) this.socket.resume();
  }
}

export interface PortalListener {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Listen on host:port (port 0 = ephemeral); every accepted socket goes to `onConnection`. */
export function listenTcp(host: string, port: number, onConnection: (t: IscsiTransport) => void): Promise<PortalListener> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer({ noDelay: true }, (socket) => onConnection(new TcpTransport(socket)));
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      const addr = server.address();
      const bound = typeof addr === 'object' && addr ? addr.port : port;
      resolve({
        host,
        port: bound,
        // Stop accepting; established connections stay (their sessions end by logout or by the server).
        close: () =>
          new Promise<void>((res) => {
            server.close();
            res();
          }),
      });
    });
  });
}
