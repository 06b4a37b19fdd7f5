/**
 * Reads and writes completed through one JavaScript function per batch instead of a promise made and
 * settled by the addon for every request. The addon's way cost, per request, two persistent handles
 * (the promise's resolver and the pinned Buffer), a heap record and V8's C++ resolution path — ≈ 3.5 %
 * of the target's CPU with 8 sessions on an O_DIRECT LU (BENCHMARKS.md section 25,
 * profiles/14-transfer-completions.perf.txt). Here a request is a slot number:
 * the addon hands back [slot, bytes, errno] in a shared Float64Array and this module settles the
 * slot's promise. The slot keeps the Buffer referenced until the kernel is done with it.
 */
import { loadNative } from './index.js';

/** Who a transfer belongs to: told when the request leaves the engine, asked for the error to report. */
export interface TransferOwner {
  transferDone(): void;
  transferError(nativeError: unknown, op: number, position: number, length: number): Error;
}

/**
 * Told how one transfer ended, instead of a promise: `error` is the owner's error, or undefined when
 * `bytes` were moved. A caller that keeps a command object per transfer passes that object, so a
 * request waiting for the device holds no promise, closure or context of its own.
 */
export interface TransferListener {
  transferComplete(bytes: number, error: Error | undefined): void;
}

/** Completions handed over per call of the sink (more are delivered in further calls). */
const RING_ENTRIES = 256;
const ring = new Float64Array(RING_ENTRIES * 3);
let sinkRegistered = false;

// One entry per slot, in parallel arrays: no object per request. Cleared on completion.
const owners: (TransferOwner | undefined)[] = [];
const resolvers: (((bytes: number) => void) | undefined)[] = [];
const rejecters: (((e: unknown) => void) | undefined)[] = [];
const listeners: (TransferListener | undefined)[] = [];
const buffers: (Uint8Array | undefined)[] = [];
const ops: number[] = [];
const positions: number[] = [];
const lengths: number[] = [];
const freeSlots: number[] = [];

// The promise executor is one shared function: it hands the resolving functions over through these.
let takenResolve: ((bytes: number) => void) | undefined;
let takenReject: ((e: unknown) => void) | undefined;
function take(resolve: (bytes: number) => void, reject: (e: unknown) => void): void {
  takenResolve = resolve;
  takenReject = reject;
}

function release(slot: number): void {
  owners[slot] = undefined;
  resolvers[slot] = undefined;
  rejecters[slot] = undefined;
  listeners[slot] = undefined;
  buffers[slot] = undefined;
  freeSlots.push(slot);
}

function settle(slot: number, bytes: number, errno: number): void {
  const owner = owners[slot];
  if (!owner) return; // not ours: the addon only reports slots it was given
  const resolve = resolvers[slot];
  const reject = rejecters[slot];
  const listener = listeners[slot];
  const op = ops[slot]!;
  const position = positions[slot]!;
  const length = lengths[slot]!;
  release(slot);
  let error: Error | undefined;
  try {
    owner.transferDone();
    if (errno !== 0) error = owner.transferError(loadNative().ioTransferError(errno, op, position, length, bytes), op, position, length);
  } catch (e) {
    error = e instanceof Error ? e : new Error(String(e));
  }
  if (listener) listener.transferComplete(bytes, error);
  else if (error) reject!(error);
  else resolve!(bytes);
}

function onCompleted(n: number): void {
  // A listener that throws is a bug in its caller; the other completions of the batch are still
  // delivered, then the first such error escapes (the addon reports it as uncaught).
  let thrown: unknown;
  let threw = false;
  for (let i = 0; i < n; i++) {
    try {
      settle(ring[3 * i]!, ring[3 * i + 1]!, ring[3 * i + 2]!);
    } catch (e) {
      if (!threw) thrown = e;
      threw = true;
    }
  }
  if (threw) throw thrown;
}

/** Take a slot for a request and hand it to the addon; throws (slot freed, nothing submitted) when refused. */
function enqueue(
  owner: TransferOwner,
  listener: TransferListener | undefined,
  op: number,
  fd: number,
  buf: Uint8Array,
  bufOffset: number,
  length: number,
  position: number,
  rwflags: number,
  preferUring: boolean,
  punt: boolean,
): void {
  const native = loadNative();
  if (!sinkRegistered) {
    native.ioSetTransferSink(onCompleted, ring);
    sinkRegistered = true;
  }
  const slot = freeSlots.length > 0 ? freeSlots.pop()! : owners.length;
  owners[slot] = owner;
  listeners[slot] = listener;
  resolvers[slot] = takenResolve;
  rejecters[slot] = takenReject;
  takenResolve = undefined;
  takenReject = undefined;
  buffers[slot] = buf;
  ops[slot] = op;
  positions[slot] = position;
  lengths[slot] = length;
  try {
    native.ioSubmitTransfer(op, fd, buf, bufOffset, length, position, rwflags, preferUring, punt, slot);
  } catch (e) {
    release(slot);
    throw e;
  }
}

/** What a transfer asks of the engine: enqueue's arguments after the owner and the listener. */
type TransferRequest = Parameters<typeof enqueue> extends [TransferOwner, TransferListener | undefined, ...infer R] ? R : never;

/**
 * Submit a read or write; the promise resolves with the bytes moved or rejects with the owner's error.
 * Throws (nothing submitted) when the addon refuses the arguments.
 */
export function submitTransfer(owner: TransferOwner, ...request: TransferRequest): Promise<number> {
  const promise = new Promise<number>(take);
  enqueue(owner, undefined, ...request);
  return promise;
}

/**
 * Submit a read or write whose end is told to `listener` (never before this returns). Throws (nothing
 * submitted, the listener never called) when the addon refuses the arguments.
 */
export const submitTransferTo: (owner: TransferOwner, listener: TransferListener, ...request: TransferRequest) => void = enqueue;

/** Transfers submitted and not yet completed (for tests and diagnostics). */
export function transfersInFlight(): number {
  return owners.length - freeSlots.length;
}

/** Slots ever allocated: the most transfers that were in flight at once (slots are reused). */
export function transferSlotCount(): number {
  return owners.length;
}
