/**
 * The TCP transport beneath the iSCSI protocol code: listening portals and a narrow per-connection
 * interface (bytes in, gather writes out, close) that an iSER transport could implement instead.
 */
import { Buffer } from 'node:buffer';
import { createServer, Socket, type Server } from 'node:net';

export interface IscsiTransport {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** Install receive and close handlers (once). */
  start(onData: (chunk: Buffer) => void, onClose: (error?: Error) => void): void;
  /**
   * Queue wire chunks; writes issued in one tick leave in one gather write. `onWritten` runs once the
   * chunks have been handed to the kernel (or dropped because the connection is gone): after it the
   * caller may reuse their memory.
   */
  send(chunks: Buffer[], onWritten?: () => void): void;
  /** Flush what is queued, then close. */
  end(): void;
  /** Close now, dropping anything queued. */
  destroy(): void;
  /** Bytes queued in the kernel-side writer not yet sent (backpressure indication). */
  readonly pendingBytes: number;
  /** Call `cb` once everything queued has been handed to the kernel (immediately if nothing is queued). */
  whenDrained(cb: () => void): void;
  /**
   * True when the chunks given to onData live in a receive buffer that is reused after onData returns:
   * the receiver must copy whatever it keeps (PduReceiver `copyOut`).
   */
  readonly ephemeralChunks?: boolean;
  /**
   * Tell the transport how many bytes the protocol still needs to complete the PDU it is receiving
   * (asked after each delivered chunk); a transport may size its next read from it.
   */
  setReadDemand?(missing: () => number): void;
  /**
   * Optional: give the connection to another thread (TcpTransport.handOver): a duplicate descriptor
   * made by `dup`, this side closed without shutting the connection down; undefined when not possible.
   */
  handOver?(dup: (fd: number) => number): number | undefined;
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
  readonly ephemeralChunks: boolean;
  private dataHandler: ((chunk: Buffer) => void) | undefined;

  private demand: (() => number) | undefined;

  constructor(private readonly socket: Socket, rx?: ReusedReceive) {
    this.ephemeralChunks = rx !== undefined;
    rx?.register((chunk) => this.dataHandler?.(chunk), () => this.demand?.() ?? 0);
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    this.localAddress = socket.localAddress ?? '';
    this.localPort = socket.localPort ?? 0;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);
  }

  start(onData: (chunk: Buffer) => void, onClose: (error?: Error) => void): void {
    let lastError: Error | undefined;
    if (this.ephemeralChunks) this.dataHandler = onData;
    else this.socket.on('data', onData);
    this.socket.on('error', (e) => {
      lastError = e;
    });
    this.socket.on('close', () => {
      this.closed = true;
      onClose(lastError);
    });
  }

  send(chunks: Buffer[], onWritten?: () => void): void {
    if (this.closed || this.socket.destroyed) {
      onWritten?.();
      return;
    }
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    const last = chunks.length - 1;
    for (let i = 0; i < last; i++) this.socket.write(chunks[i]!);
    // Stream writes complete in order: the last chunk's callback covers all of them (errors included).
    if (last >= 0) this.socket.write(chunks[last]!, onWritten && (() => onWritten()));
    else onWritten?.();
  }

  end(): void {
    if (this.closed) return;
    this.socket.end();
    // A peer that never reads must not keep the socket forever. The timer goes with the socket: left
    // armed, it kept every logged-out connection (socket, session, nexus) alive for 5 s, long enough
    // for V8 to promote it to the old generation.
    const giveUp = setTimeout(() => this.socket.destroy(), 5000).unref();
    this.socket.once('close', () => clearTimeout(giveUp));
  }

  destroy(): void {
    this.socket.destroy();
  }

  /**
   * Give the connection up to another thread: returns a duplicate of the socket's descriptor (made by
   * `dup`) and closes this side without shutting the connection down. Undefined, with nothing
   * changed, when anything is still queued or the descriptor is not reachable.
   */
  handOver(dup: (fd: number) => number): number | undefined {
    const fd = (this.socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (this.closed || this.socket.destroyed || this.socket.writableLength > 0 || typeof fd !== 'number' || fd < 0) return undefined;
    const copy = dup(fd);
    this.closed = true;
    this.dataHandler = undefined;
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('close');
    this.socket.on('error', () => {});
    this.socket.destroy();
    return copy;
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

  setReadDemand(missing: () => number): void {
    this.demand = missing;
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

/** Bytes one socket read may deliver into a connection's reused receive buffer. */
const RX_BUFFER_BYTES = 256 * 1024;

/**
 * Bytes one socket read asks for while the PDUs arriving are small (commands, 4 KiB writes): each read
 * is handled, and its responses sent, before the next, so a burst of 32 queued commands is answered
 * in slices the initiator can act on while the rest are still being handled, instead of all at
 * once. Measured with 64 sessions of 4 KiB writers (BENCHMARKS.md section 12): 16 KiB gave +15-20 %
 * IOPS and 20 % less target CPU per I/O over 256 KiB (8 KiB and 32-64 KiB were in between). Reads
 * stay large while a PDU larger than this is being received, where small reads only add calls.
 * VTGT_TCP_RX_SMALL=0 turns it off.
 */
const RX_SMALL_BYTES = readSmallBytes(process.env.VTGT_TCP_RX_SMALL);

function readSmallBytes(env: string | undefined): number {
  const n = env === undefined || env === '' ? 16 * 1024 : Number(env);
  return Number.isInteger(n) && n > 0 && n < RX_BUFFER_BYTES ? n : RX_BUFFER_BYTES;
}

/** What the accept hook hands a transport: where received bytes go, and how it learns the demand. */
interface ReusedReceive {
  register(onChunk: (chunk: Buffer) => void, missing: () => number): void;
}

/**
 * Node allocates a fresh ArrayBuffer for every socket read; at hundreds of MB/s of Data-Out that is
 * external memory V8 answers with back-to-back major collections (BENCHMARKS.md). `net.Socket`'s
 * `onread` option reads into one reused buffer instead, but `net.Server` offers no way to pass it for
 * accepted sockets, so the accept callback of the listening handle is replaced by one that wraps the
 * accepted handle in such a socket. If this Node's server internals are not as expected, or
 * VTGT_TCP_REUSE_RX=0, sockets stay as the server creates them.
 */
function receiveIntoReusedBuffers(server: Server, onConnection: (t: IscsiTransport) => void): void {
  if (process.env.VTGT_TCP_REUSE_RX === '0') return;
  const handle = (server as unknown as { _handle?: { onconnection?: unknown } })._handle;
  if (!handle || typeof handle.onconnection !== 'function') return;
  const accept = handle.onconnection as (this: unknown, err: number, client: unknown) => void;
  handle.onconnection = function (this: unknown, err: number, client: unknown): void {
    if (err || !client) {
      accept.call(this, err, client);
      return;
    }
    let transport: TcpTransport;
    try {
      transport = transportWithReusedReceive({ handle: client });
    } catch {
      accept.call(this, err, client);
      return;
    }
    onConnection(transport);
  };
}

/**
 * Receive buffers of closed connections, for the next ones. A fresh 256 KiB buffer per connection
 * meant fresh pages to fault in and external memory that V8 answered with full collections (3 per 200
 * logins); an initiator that logs in and out for every job, like `qemu-img`, paid that every time
 * (BENCHMARKS.md, section 22). Bounded, so a burst of connections does not pin its memory forever.
 */
const idleRxBuffers: Buffer[] = [];
const MAX_IDLE_RX_BUFFERS = 32;

/** A transport over a new socket (an accepted handle, or a descriptor) reading into reused buffers. */
function transportWithReusedReceive(source: { handle: unknown } | { fd: number }): TcpTransport {
  const large = idleRxBuffers.pop() ?? Buffer.allocUnsafeSlow(RX_BUFFER_BYTES);
  const small = large.subarray(0, RX_SMALL_BYTES);
  let deliver: ((chunk: Buffer) => void) | undefined;
  let missing: () => number = () => 0;
  const socket = new Socket({
    ...source,
    readable: true,
    writable: true,
    onread: {
      // Called before the first read and after each one has been delivered (and handled).
      buffer: () => (missing() > RX_SMALL_BYTES ? large : small),
      callback: (n: number, buf: Uint8Array) => void deliver?.(Buffer.from(buf.buffer, buf.byteOffset, n)),
    },
  } as unknown as ConstructorParameters<typeof Socket>[0]);
  // After 'close' the handle reads no more, and the receiver kept copies of what it needed.
  socket.once('close', () => {
    if (idleRxBuffers.length < MAX_IDLE_RX_BUFFERS) idleRxBuffers.push(large);
  });
  return new TcpTransport(socket, {
    register: (onChunk, demand) => {
      deliver = onChunk;
      missing = demand;
    },
  });
}

/**
 * Continue a TCP connection from a descriptor this thread now owns (a connection moved from the
 * thread that accepted it, connection-threads.ts).
 */
export function transportFromFd(fd: number): IscsiTransport {
  if (process.env.VTGT_TCP_REUSE_RX === '0') return new TcpTransport(new Socket({ fd, readable: true, writable: true }));
  return transportWithReusedReceive({ fd });
}

/** Listen on host:port (port 0 = ephemeral); every accepted socket goes to `onConnection`. */
export function listenTcp(host: string, port: number, onConnection: (t: IscsiTransport) => void): Promise<PortalListener> {
  return new Promise((resolve, reject) => {
    const server: Server = createServer({ noDelay: true }, (socket) => onConnection(new TcpTransport(socket)));
    server.once('error', reject);
    server.listen({ host, port }, () => {
      receiveIntoReusedBuffers(server, onConnection);
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
