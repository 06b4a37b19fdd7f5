/**
 * The I_T nexus as a connection thread sees it: commands and task management functions go to the core
 * on the main thread through the batch link; the core's data-out fetches, completions and aborts come
 * back and are delivered to the command's port (the iSCSI task), as the core would deliver them.
 */
import type { FabricCommandPort, ScsiCommandRequest, TmfRequest, TmfResult } from '../vscsi/fabric.js';
import type { SessionNexus } from './session.js';
import { InFlightTable } from '../vscsi/in-flight-table.js';
import { type BatchSender, copyOf, pooledCopyOf } from './thread-batch.js';
import type { Batch, ToConnectionOp, ToCoreOp } from './thread-messages.js';

/** Commands and TMFs of every moved connection of one thread, by the ids the thread gave them. */
export class RemoteCommands {
  private readonly ports = new InFlightTable<number, FabricCommandPort>();
  private readonly tmfs = new Map<number, { resolve: (r: TmfResult) => void; reject: (e: Error) => void }>();
  private nextCmd = 1;
  private nextTmf = 1;

  constructor(readonly link: BatchSender<ToCoreOp>) {}

  nexusFor(link: number): SessionNexus {
    return {
      submit: (request) => this.submit(link, request),
      taskManagement: (request) => this.taskManagement(link, request),
    };
  }

  private submit(link: number, r: ScsiCommandRequest): void {
    const cmd = this.nextCmd++;
    this.ports.set(cmd, r.port);
    const out = this.link;
    const ready = r.direction === 'write' || r.direction === 'bidi' ? r.port.fetchDataOutNow?.(0, r.expectedLength) : undefined;
    out.send({
      t: 'submit',
      link,
      cmd,
      lun: r.lun,
      cdb: out.bytes(r.cdb),
      attribute: r.attribute,
      tag: Number(r.tag),
      direction: r.direction,
      expectedLength: r.expectedLength,
      ...(r.expectedReadLength !== undefined ? { expectedReadLength: r.expectedReadLength } : {}),
      ...(ready ? { dataOut: out.bytes(ready) } : {}),
    });
  }

  private taskManagement(link: number, request: TmfRequest): Promise<TmfResult> {
    const id = this.nextTmf++;
    const { referencedTag, ...rest } = request;
    this.link.send({ t: 'tmf', link, id, request: { ...rest, ...(referencedTag !== undefined ? { referencedTag: Number(referencedTag) } : {}) } });
    return new Promise((resolve, reject) => this.tmfs.set(id, { resolve, reject }));
  }

  /** Apply one operation from the core; false when it is not about commands (the caller handles it). */
  deliver(op: ToConnectionOp, batch: Batch<ToConnectionOp>): boolean {
    switch (op.t) {
      case 'done': {
        const port = this.ports.get(op.cmd);
        if (!port) return true;
        this.ports.delete(op.cmd);
        const dataIn = op.dataIn ? pooledCopyOf(batch, op.dataIn) : undefined;
        port.complete({
          status: op.status as never,
          residual: op.residual,
          ...(op.sense ? { sense: copyOf(batch, op.sense) } : {}),
          ...(dataIn ? { dataIn: dataIn.data, releaseDataIn: dataIn.release } : {}),
          ...(op.bidiReadResidual ? { bidiReadResidual: op.bidiReadResidual } : {}),
        });
        return true;
      }
      case 'aborted': {
        const port = this.ports.get(op.cmd);
        this.ports.delete(op.cmd);
        port?.aborted?.();
        return true;
      }
      case 'fetch':
        this.fetch(op.cmd, op.fetch, op.offset, op.length);
        return true;
      case 'tmfDone': {
        const waiter = this.tmfs.get(op.id);
        this.tmfs.delete(op.id);
        if (op.result) waiter?.resolve(op.result);
        else waiter?.reject(new Error(op.error ?? 'task management function failed in the core'));
        return true;
      }
      default:
        return false;
    }
  }

  private fetch(cmd: number, fetch: number, offset: number, length: number): void {
    const port = this.ports.get(cmd);
    if (!port) {
      this.link.send({ t: 'fetchFailed', cmd, fetch, message: 'the command is no longer active on its connection' });
      return;
    }
    port.fetchDataOut(offset, length).then(
      (data) => this.link.send({ t: 'data', cmd, fetch, bytes: this.link.bytes(data) }),
      (e: unknown) => this.link.send({ t: 'fetchFailed', cmd, fetch, message: (e as Error).message ?? String(e) }),
    );
  }
}
