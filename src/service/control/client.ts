/** Client side of the control socket, used by the CLI. */
import { createConnection } from 'node:net';
import { ControlError, type ControlResponse, type ErrorCode } from './protocol.js';

export class ControlClientError extends Error {
  constructor(
    readonly code: ErrorCode | 'unreachable',
    message: string,
  ) {
    super(message);
    this.name = 'ControlClientError';
  }
}

/** Send one request and wait for its answer. */
export async function controlRequest(socketPath: string, op: string, args: Record<string, unknown> = {}, timeoutMs = 120_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(socketPath);
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new ControlClientError('failed', `no answer from the service within ${timeoutMs / 1000} s (${socketPath})`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(`${JSON.stringify({ id: 1, op, args })}\n`));
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      let r: ControlResponse;
      try {
        r = JSON.parse(buf.slice(0, nl)) as ControlResponse;
      } catch {
        reject(new ControlClientError('failed', 'the service sent an unreadable answer'));
        return;
      }
      if (r.ok) resolve(r.result);
      else reject(new ControlClientError(r.error.code, r.error.message));
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why =
        e.code === 'ENOENT' || e.code === 'ECONNREFUSED'
          ? `no vtgt service is running with control socket ${socketPath}; start it with "vtgt serve" (same --data or $VTGT_DATA)`
          : e.code === 'EACCES'
            ? `permission denied on ${socketPath}; run as the user that runs the service (usually root)`
            : `cannot reach the service at ${socketPath}: ${e.message}`;
      reject(new ControlClientError('unreachable', why));
    });
  });
}

export { ControlError };
