/**
 * A window on the large transfers an O_DIRECT store has at its device at once: those beyond it wait,
 * in order, and start as earlier ones end — handed to the kernel at once, before the answers that the
 * completing turn sends.
 *
 * Why: an initiator with a few large reads outstanding sends them together; given all of them, the
 * device ends them together, the target sends them together and the initiator answers with the next
 * batch together, so the device idles while the network works and the other way round. Holding part
 * of a batch back splits it in two that take turns: one at the device while the other is on the wire
 * (BENCHMARKS.md, section 30). So a large transfer waits while the device has at least `floorBytes`
 * and at least half of what is asked of the store (at the device plus waiting); the device still gets
 * half of any demand, however deep. Transfers under `largeBytes` pass straight through, neither held
 * nor counted: many small ones are what keeps a device's random I/O rate up, and they do not hold the
 * wire for long.
 */
import { flushSubmissions, type TransferListener } from '../native/io.js';
import type { ReadWrite } from './read-write.js';

type NativeReadWrite = ReadWrite & Required<Pick<ReadWrite, 'readTo' | 'writeFrom'>>;

/** A transfer waiting for room, or at the device: ends by giving its bytes back to the window. */
class WindowedTransfer implements TransferListener {
  constructor(
    readonly window: DeviceWindow,
    readonly listener: TransferListener,
    readonly write: boolean,
    readonly buf: Buffer,
    readonly off: number,
    readonly len: number,
    readonly pos: number,
    readonly dsync: boolean,
  ) {}

  transferComplete(bytes: number, error: Error | undefined): void {
    this.window.release(this.len);
    this.listener.transferComplete(bytes, error);
  }
}

/** Measured on this machine's virtual disk (BENCHMARKS.md, section 30): 256 KiB starved it, 512 KiB did not. */
export const DEVICE_WINDOW_FLOOR_BYTES = 512 * 1024;
/** The size from which io_uring hands a transfer to its workers, too (native/src/io_uring.cc). */
export const DEVICE_WINDOW_LARGE_BYTES = 64 * 1024;

export class DeviceWindow implements ReadWrite {
  readonly #inner: NativeReadWrite;
  readonly #floorBytes: number;
  readonly #largeBytes: number;
  readonly #flush: () => void;
  #inFlight = 0;
  #waitingBytes = 0;
  /** In order from #head; entries before it have started and are cleared. */
  readonly #waiting: (WindowedTransfer | undefined)[] = [];
  #head = 0;
  #pumping = false;

  /** `flush`: hands what was just started to the device at once (the engine's flushSubmissions). */
  constructor(inner: NativeReadWrite, floorBytes = DEVICE_WINDOW_FLOOR_BYTES, largeBytes = DEVICE_WINDOW_LARGE_BYTES, flush: () => void = flushSubmissions) {
    this.#inner = inner;
    this.#flush = flush;
    this.#floorBytes = floorBytes;
    this.#largeBytes = largeBytes;
  }

  /**
   * `rw` behind a window of `floorBytes` when it has the listener forms the window needs (the addon's);
   * `rw` itself without them or when `floorBytes` is 0.
   */
  static over(rw: ReadWrite, floorBytes = DEVICE_WINDOW_FLOOR_BYTES): ReadWrite {
    return floorBytes > 0 && rw.readTo && rw.writeFrom ? new DeviceWindow(rw as NativeReadWrite, floorBytes) : rw;
  }

  /** Bytes the device may always have at once (the window's floor). */
  get floorBytes(): number {
    return this.#floorBytes;
  }

  /** Bytes of large transfers at the device now. */
  get inFlightBytes(): number {
    return this.#inFlight;
  }

  /** Large transfers waiting for room. */
  get waiting(): number {
    return this.#waiting.length - this.#head;
  }

  readTo(buf: Buffer, off: number, len: number, pos: number, listener: TransferListener): number {
    if (len < this.#largeBytes) return this.#inner.readTo(buf, off, len, pos, listener);
    return this.#submit(new WindowedTransfer(this, listener, false, buf, off, len, pos, false));
  }

  writeFrom(buf: Buffer, off: number, len: number, pos: number, dsync: boolean, listener: TransferListener): number {
    if (len < this.#largeBytes) return this.#inner.writeFrom(buf, off, len, pos, dsync, listener);
    return this.#submit(new WindowedTransfer(this, listener, true, buf, off, len, pos, dsync));
  }

  read(buf: Buffer, off: number, len: number, pos: number): Promise<number> {
    return this.#promised((l) => this.readTo(buf, off, len, pos, l));
  }

  write(buf: Buffer, off: number, len: number, pos: number, dsync: boolean): Promise<unknown> {
    return this.#promised((l) => this.writeFrom(buf, off, len, pos, dsync, l));
  }

  datasync(): Promise<void> {
    return this.#inner.datasync();
  }

  /** Called by a transfer that left the device. (Public for WindowedTransfer only.) */
  release(len: number): void {
    this.#inFlight -= len;
    this.#pump();
  }

  /** Whether a large transfer of `len` may join the device now; `demand` counts it and all that waits. */
  #fits(len: number, demand: number): boolean {
    return this.#inFlight === 0 || this.#inFlight + len <= Math.max(this.#floorBytes, demand / 2);
  }

  /** Starts a large transfer now if it fits and nobody waits before it; else queues it: -1 (told later). */
  #submit(t: WindowedTransfer): number {
    if (this.waiting === 0 && this.#fits(t.len, this.#inFlight + t.len)) return this.#start(t);
    this.#waiting.push(t);
    this.#waitingBytes += t.len;
    return -1;
  }

  /** Hands `t` to the engine. Bytes moved at once (its bytes already given back), or -1. Throws as the engine does. */
  #start(t: WindowedTransfer): number {
    this.#inFlight += t.len;
    let n: number;
    try {
      n = t.write ? this.#inner.writeFrom(t.buf, t.off, t.len, t.pos, t.dsync, t) : this.#inner.readTo(t.buf, t.off, t.len, t.pos, t);
    } catch (e) {
      this.#inFlight -= t.len;
      throw e;
    }
    if (n >= 0) this.#inFlight -= t.len;
    return n;
  }

  /** Starts waiting transfers while they fit; one that ends or fails at once is told so here. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    let started = false;
    try {
      while (this.#head < this.#waiting.length && this.#fits(this.#waiting[this.#head]!.len, this.#inFlight + this.#waitingBytes)) {
        const t = this.#waiting[this.#head]!;
        this.#waiting[this.#head++] = undefined;
        this.#waitingBytes -= t.len;
        let n: number;
        try {
          n = this.#start(t);
          started = true;
        } catch (e) {
          t.listener.transferComplete(0, e instanceof Error ? e : new Error(String(e)));
          continue;
        }
        if (n >= 0) t.listener.transferComplete(n, undefined);
      }
      // Started entries are dropped from the front once they are most of the array.
      if (this.#head > 64 && this.#head * 2 >= this.#waiting.length) {
        this.#waiting.splice(0, this.#head);
        this.#head = 0;
      }
    } finally {
      this.#pumping = false;
    }
    // Pumped from a completion: the device gets the next transfers before this turn sends answers.
    if (started) this.#flush();
  }

  #promised(begin: (l: TransferListener) => number): Promise<number> {
    return new Promise((resolve, reject) => {
      const n = begin({ transferComplete: (bytes, error) => (error ? reject(error) : resolve(bytes)) });
      if (n >= 0) resolve(n);
    });
  }
}
