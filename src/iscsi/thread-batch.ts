/**
 * One direction of the link between the main thread and a connection thread. Operations queued during
 * one event-loop turn leave in a single message (BENCHMARKS.md section 15: a message per command costs
 * ~10 µs of CPU, batches of 16 ~1.6 µs per command). Their bytes are copied once, when queued, into a
 * shared area the receiver copies out of while it handles the batch and then marks free; areas are
 * reused, because a fresh buffer per batch is external memory that keeps V8's collector busy
 * (section 16).
 */
import { Buffer } from 'node:buffer';
import type { Batch, Bytes } from './thread-messages.js';
import { dataInPool, type LentBuffer } from '../vscsi/buffer-pool.js';

/** Bytes of an area's header: an Int32 that is 1 while a batch in flight uses the area. */
const HEADER = 8;
const MIN_AREA = 256 * 1024;
/** Areas kept per sender at most, and the largest kept: others are left to the garbage collector. */
const MAX_AREAS = 16;
const MAX_POOLED_AREA = 4 * 1024 * 1024;

/** Anything with postMessage: a MessagePort, a Worker, the parent port. */
export interface BatchPeer {
  postMessage(value: unknown): void;
}

interface Area {
  shared: SharedArrayBuffer;
  flag: Int32Array;
  bytes: Buffer;
}

export class BatchSender<Op> {
  private ops: Op[] = [];
  private areas: Area[] = [];
  private area: Area | undefined;
  private used = 0;
  private scheduled = false;

  constructor(private readonly peer: BatchPeer) {}

  /** Copy `data` into this batch's byte area now (the caller may reuse its memory at once). */
  bytes(data: Uint8Array): Bytes {
    const need = this.used + data.length;
    if (!this.area || need > this.area.bytes.length) this.switchArea(need);
    this.area!.bytes.set(data, this.used);
    const at: Bytes = [this.used, data.length];
    this.used = need;
    return at;
  }

  send(op: Op): void {
    this.ops.push(op);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (!this.ops.length) return;
    const ops = this.ops;
    this.ops = [];
    const area = this.area && this.used > 0 ? this.area : undefined;
    this.area = undefined;
    this.used = 0;
    const batch: Batch<Op> = { ops, bytes: area ? area.shared : null };
    this.peer.postMessage(batch);
  }

  /** Areas in this sender's pool (tests). */
  get pooledAreas(): number {
    return this.areas.length;
  }

  private switchArea(need: number): void {
    const next = this.takeArea(need);
    const prev = this.area;
    if (prev && this.used) prev.bytes.copy(next.bytes, 0, 0, this.used);
    if (prev) Atomics.store(prev.flag, 0, 0);
    this.area = next;
  }

  private takeArea(need: number): Area {
    for (const a of this.areas) {
      if (a.bytes.length >= need && Atomics.compareExchange(a.flag, 0, 0, 1) === 0) return a;
    }
    const size = Math.max(MIN_AREA, need * 2);
    const shared = new SharedArrayBuffer(HEADER + size);
    const a: Area = { shared, flag: new Int32Array(shared, 0, 1), bytes: Buffer.from(shared, HEADER, size) };
    Atomics.store(a.flag, 0, 1);
    if (this.areas.length < MAX_AREAS && size <= MAX_POOLED_AREA) this.areas.push(a);
    return a;
  }
}

/**
 * The bytes an operation refers to, as a view of the batch's area: valid only while the batch is
 * being handled (copy what must live longer), until `releaseBatch`.
 */
export function bytesOf(batch: Batch<unknown>, at: Bytes): Buffer {
  if (!batch.bytes) return Buffer.alloc(0);
  return Buffer.from(batch.bytes, HEADER + at[0], at[1]);
}

/** A copy that outlives the batch (small fields: CDB, sense). */
export function copyOf(batch: Batch<unknown>, at: Bytes): Buffer {
  return Buffer.from(bytesOf(batch, at));
}

/** A pooled copy that outlives the batch (data): give it back with `release` when done with it. */
export function pooledCopyOf(batch: Batch<unknown>, at: Bytes): LentBuffer {
  const lent = dataInPool.acquire(at[1]);
  bytesOf(batch, at).copy(lent.data);
  return lent;
}

/** The batch is handled: its area may be reused by the sender. */
export function releaseBatch(batch: Batch<unknown>): void {
  if (batch.bytes) Atomics.store(new Int32Array(batch.bytes, 0, 1), 0, 0);
}
