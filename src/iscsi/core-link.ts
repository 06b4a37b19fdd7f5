/**
 * The main thread's end of a connection thread's link: each command a moved connection submits is
 * given to the session's real nexus with a port that forwards the core's data-out fetches, completion
 * and abort back to the thread (remote-nexus.ts is the other end).
 */
import type { FabricCommandPort, Nexus, ScsiCommandRequest, ScsiCompletion } from '../vscsi/fabric.js';
import type { SessionCounters } from './session.js';
import { type BatchSender, copyOf, pooledCopyOf } from './thread-batch.js';
import type { LentBuffer } from '../vscsi/buffer-pool.js';
import { InFlightTable } from '../vscsi/in-flight-table.js';
import type { Batch, ToConnectionOp, ToCoreOp } from './thread-messages.js';

/** What the main thread keeps for one moved connection's session. */
export interface LinkedSession {
  readonly nexus: Nexus;
  readonly counters: SessionCounters;
}

class ForwardingPort implements FabricCommandPort {
  private fetches: Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }> | undefined;
  private nextFetch = 1;
  /** Pooled copies of the data-out, given back when the command completes (see complete). */
  private held: LentBuffer[] | undefined;
  private readonly dataOut: Buffer | undefined;
  ended = false;

  constructor(
    private readonly owner: CoreLink,
    readonly cmd: number,
    dataOut: LentBuffer | undefined,
  ) {
    if (dataOut) {
      this.dataOut = dataOut.data;
      this.held = [dataOut];
    }
  }

  fetchDataOutNow(offset: number, length: number): Buffer | undefined {
    const d = this.dataOut;
    if (!d || length === 0 || offset < 0 || offset + length > d.length || this.fetches?.size) return undefined;
    return d.subarray(offset, offset + length);
  }

  fetchDataOut(offset: number, length: number): Promise<Buffer> {
    const now = this.fetchDataOutNow(offset, length);
    if (now) return Promise.resolve(now);
    if (this.ended) return Promise.reject(new Error('the command ended before its data arrived'));
    const fetch = this.nextFetch++;
    this.owner.out.send({ t: 'fetch', cmd: this.cmd, fetch, offset, length });
    return new Promise((resolve, reject) => (this.fetches ??= new Map()).set(fetch, { resolve, reject }));
  }

  complete(result: ScsiCompletion): void {
    const out = this.owner.out;
    const op: ToConnectionOp = {
      t: 'done',
      cmd: this.cmd,
      status: result.status,
      residual: result.residual,
      ...(result.sense?.length ? { sense: out.bytes(result.sense) } : {}),
      ...(result.dataIn?.length ? { dataIn: out.bytes(result.dataIn) } : {}),
      ...(result.bidiReadResidual ? { bidiReadResidual: result.bidiReadResidual } : {}),
    };
    // The bytes are copied into the link's area: the core's buffer can be reused now.
    result.releaseDataIn?.();
    out.send(op);
    this.end();
    // Only after completion: an aborted command may still be writing from its data-out buffers,
    // so those are left to the garbage collector instead (as the iSCSI task does on this thread).
    const held = this.held;
    this.held = undefined;
    if (held) for (const h of held) h.release();
  }

  aborted(): void {
    this.owner.out.send({ t: 'aborted', cmd: this.cmd });
    this.end();
  }

  settle(fetch: number, data: LentBuffer | undefined, message?: string): void {
    const waiter = this.fetches?.get(fetch);
    if (!waiter) {
      data?.release();
      return;
    }
    this.fetches!.delete(fetch);
    if (data) {
      (this.held ??= []).push(data);
      waiter.resolve(data.data);
    } else waiter.reject(new Error(message ?? 'data-out transfer failed'));
  }

  private end(): void {
    this.ended = true;
    this.owner.forget(this.cmd);
    const pending = this.fetches;
    this.fetches = undefined;
    if (pending) for (const w of pending.values()) w.reject(new Error('the command ended before its data arrived'));
  }
}

export class CoreLink {
  private readonly sessions = new Map<number, LinkedSession>();
  private readonly commands = new InFlightTable<number, ForwardingPort>();

  constructor(readonly out: BatchSender<ToConnectionOp>) {}

  attach(link: number, session: LinkedSession): void {
    this.sessions.set(link, session);
  }

  detach(link: number): void {
    this.sessions.delete(link);
  }

  forget(cmd: number): void {
    this.commands.delete(cmd);
  }

  /** Apply one operation from the thread; false when it is not about commands (the caller handles it). */
  deliver(op: ToCoreOp, batch: Batch<ToCoreOp>): boolean {
    switch (op.t) {
      case 'submit':
        this.submit(op, batch);
        return true;
      case 'data':
      {
        const port = this.commands.get(op.cmd);
        if (port) port.settle(op.fetch, pooledCopyOf(batch, op.bytes));
      }
        return true;
      case 'fetchFailed':
        this.commands.get(op.cmd)?.settle(op.fetch, undefined, op.message);
        return true;
      case 'tmf':
        this.taskManagement(op);
        return true;
      default:
        return false;
    }
  }

  private submit(op: Extract<ToCoreOp, { t: 'submit' }>, batch: Batch<ToCoreOp>): void {
    const s = this.sessions.get(op.link);
    const port = new ForwardingPort(this, op.cmd, op.dataOut ? pooledCopyOf(batch, op.dataOut) : undefined);
    if (!s) {
      // The session ended while the command was on its way: nobody will read an answer.
      port.aborted();
      return;
    }
    this.commands.set(op.cmd, port);
    const c = s.counters;
    c.commands++;
    if (op.direction === 'write' || op.direction === 'bidi') c.writeBytes += op.expectedLength;
    if (op.direction === 'read') c.readBytes += op.expectedLength;
    else if (op.direction === 'bidi') c.readBytes += op.expectedReadLength ?? 0;
    const request: ScsiCommandRequest = {
      lun: op.lun,
      cdb: copyOf(batch, op.cdb),
      attribute: op.attribute,
      tag: BigInt(op.tag),
      direction: op.direction,
      expectedLength: op.expectedLength,
      ...(op.expectedReadLength !== undefined ? { expectedReadLength: op.expectedReadLength } : {}),
      port,
    };
    s.nexus.submit(request);
  }

  private taskManagement(op: Extract<ToCoreOp, { t: 'tmf' }>): void {
    const s = this.sessions.get(op.link);
    if (!s) {
      this.out.send({ t: 'tmfDone', link: op.link, id: op.id, error: 'the session has ended' });
      return;
    }
    s.counters.tmfs++;
    const { referencedTag, ...rest } = op.request;
    s.nexus.taskManagement({ ...rest, ...(referencedTag !== undefined ? { referencedTag: BigInt(referencedTag) } : {}) }).then(
      (result) => this.out.send({ t: 'tmfDone', link: op.link, id: op.id, result }),
      (e: unknown) => this.out.send({ t: 'tmfDone', link: op.link, id: op.id, error: (e as Error).message ?? String(e) }),
    );
  }
}
