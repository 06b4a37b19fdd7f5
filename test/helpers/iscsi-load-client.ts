/**
 * A pipelined iSCSI session for load tests: many commands in flight, responses matched by ITT,
 * CmdSN kept inside the target's window. 4 KiB writes travel as immediate data.
 */
import { IscsiTestClient } from './iscsi-client.js';
import type { Pdu } from '../../src/iscsi/pdu.js';
import { serialLe } from '../../src/iscsi/pdu.js';

interface Pending {
  resolve: (r: { status: number; data: Buffer }) => void;
  reject: (e: Error) => void;
  chunks: Buffer[];
}

export class PipelinedSession {
  private pending = new Map<number, Pending>();
  private maxCmdSn = 0;
  private waitingForWindow: Array<() => void> = [];
  private pumping: Promise<void>;
  error: Error | undefined;

  constructor(readonly c: IscsiTestClient) {
    this.maxCmdSn = (c.cmdSn + 31) >>> 0;
    this.pumping = this.pump();
  }

  private async pump(): Promise<void> {
    for (;;) {
      const p = await this.c.next(30000);
      if (!p) break;
      this.onPdu(p);
    }
    const e = this.error ?? new Error('connection closed');
    for (const [, w] of this.pending) w.reject(e);
    this.pending.clear();
  }

  private onPdu(p: Pdu): void {
    const op = p.bhs[0]! & 0x3f;
    if (op === 0x20) {
      if (p.bhs.readUInt32BE(20) !== 0xffffffff) this.c.nopReply(p);
      return;
    }
    const max = p.bhs.readUInt32BE(32);
    if (op === 0x21 || op === 0x25) {
      if (serialLe(this.maxCmdSn, max)) this.maxCmdSn = max;
      const w = this.waitingForWindow;
      this.waitingForWindow = [];
      for (const f of w) f();
    }
    const itt = p.bhs.readUInt32BE(16);
    const w = this.pending.get(itt);
    if (!w) {
      this.error = new Error(`unexpected opcode 0x${op.toString(16)} itt ${itt}`);
      return;
    }
    if (op === 0x25) {
      w.chunks.push(p.data);
      if (!(p.bhs[1]! & 1)) return;
    } else if (op !== 0x21) {
      this.error = new Error(`unexpected opcode 0x${op.toString(16)}`);
      return;
    }
    this.pending.delete(itt);
    w.resolve({ status: p.bhs[3]!, data: Buffer.concat(w.chunks) });
  }

  async command(cdb: Buffer, o: { read?: number; write?: Buffer }): Promise<{ status: number; data: Buffer }> {
    while (!serialLe(this.c.cmdSn, this.maxCmdSn)) await new Promise<void>((r) => this.waitingForWindow.push(r));
    const itt = this.c.itt++;
    const bhs = this.c.commandBhs(cdb, { ...(o.read !== undefined ? { read: o.read } : {}), ...(o.write ? { write: o.write.length } : {}), itt });
    return new Promise((resolve, reject) => {
      this.pending.set(itt, { resolve, reject, chunks: [] });
      this.c.sendPdu(bhs, o.write);
    });
  }

  async close(): Promise<void> {
    await this.c.logout();
    this.c.close();
    await this.pumping;
  }
}
