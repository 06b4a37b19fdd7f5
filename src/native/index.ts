/**
 * Loader for the native addon (native/, built by cmake-js into build/Release).
 * Everything that crosses into C++ goes through the typed wrappers in this folder, which validate
 * arguments first so a bad call fails with a JS stack instead of inside the addon.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A mapped region as the addon hands it out; only src/native/shm.ts touches it. */
export interface NativeShmHandle {
  read(offset: number, dst: Uint8Array, dstOffset: number, length: number): void;
  write(offset: number, src: Uint8Array, srcOffset: number, length: number): void;
  gather(segments: Float64Array, dst: Uint8Array, dstOffset: number): number;
  scatter(segments: Float64Array, src: Uint8Array, srcOffset: number): number;
  equals(segments: Float64Array, expected: Uint8Array, expectedOffset: number): boolean;
  load32(offset: number, bigEndian: boolean): number;
  store32(offset: number, value: number, bigEndian: boolean): void;
  close(): void;
  size(): number;
  fd(): number;
}

export interface NativeDevInfo {
  size: number;
  isBlockDevice: boolean;
  logicalBlockSize: number;
  physicalBlockSize: number;
  readOnlyDevice: boolean;
  /** st_mode */
  mode: number;
  /** Device numbers of a block device (for /sys/dev/block/MAJ:MIN). */
  rdevMajor: number;
  rdevMinor: number;
  /** statfs f_type of the file system holding it (TMPFS_MAGIC 0x01021994, EXT4 0xef53, ...). */
  fsType: number;
}

export interface NativeIoEngineInfo {
  uring: boolean;
  uringEntries: number;
  threads: number;
  uringUnavailableReason: string;
  /** Requests handed to io_uring / to the addon's thread pool since the process started. */
  uringOps: number;
  poolOps: number;
  /** io_uring_enter calls that submitted requests (requests made in one event-loop turn share one). */
  uringSubmits: number;
  /** Hand-overs of requests to the thread pool's workers (requests made in one event-loop turn share one). */
  poolHandoffs: number;
}

/** Adaptive event-loop polling (native/src/busy_poll.cc). */
export interface NativeBusyPollStats {
  maxMicros: number;
  windowMicros: number;
  /** Waits that were polled before blocking, and how many of them an event ended within the window. */
  polls: number;
  hits: number;
  polledSeconds: number;
  /** Waits not polled because wake-ups brought several commands, and their moving average (0 without a counter). */
  skipped: number;
  commandsPerWake: number;
}

export interface NativeAddon {
  crc32c(data: Uint8Array, seed?: number): number;
  crc32cSoftware(data: Uint8Array, seed?: number): number;
  crc32cHardware(): boolean;
  shmCreate(path: string, size: number): NativeShmHandle;
  shmOpen(path: string, readOnly: boolean): NativeShmHandle;
  shmFromFd(fd: number, size: number, readOnly: boolean): NativeShmHandle;
  shmCreateAnonymous(size: number): NativeShmHandle;
  shmCopy(src: NativeShmHandle, srcOffset: number, dst: NativeShmHandle, dstOffset: number, length: number): void;
  /**
   * Any operation but a read or a write (those: ioSubmitTransfer). Rejects with an Error carrying code,
   * syscall, bytesDone and the request's op, position and length.
   */
  ioSubmit(op: number, fd: number, length: number, position: number, mode: number, preferUring: boolean): Promise<number | NativeDevInfo>;
  /** Registers the function that receives transfer completions: n entries [slot, bytes, errno] in `ring`. */
  ioSetTransferSink(sink: (n: number) => void, ring: Float64Array): void;
  /** A read or write whose completion goes to the transfer sink under `slot`; the caller keeps `buffer` alive. */
  ioSubmitTransfer(
    op: number,
    fd: number,
    buffer: Uint8Array,
    bufferOffset: number,
    length: number,
    position: number,
    rwflags: number,
    preferUring: boolean,
    punt: boolean,
    slot: number,
  ): void;
  /** The Error `ioSubmit` would reject with for a failed request (code, syscall, bytesDone, op, position, length). */
  ioTransferError(errno: number, op: number, position: number, length: number, bytesDone: number): Error;
  ioEngineInfo(): NativeIoEngineInfo;
  /** Requests made so far in this event-loop turn go to the kernel / the workers now, not at its end. */
  ioFlushSubmissions(): void;
  ioExecuteSync(op: number, fd: number, position: number, length: number, mode: number): number | NativeDevInfo;
  ioTransferSync(
    write: boolean,
    fd: number,
    buffer: Uint8Array,
    bufferOffset: number,
    length: number,
    position: number,
    rwflags: number,
  ): number;
  alignedBuffer(size: number, alignment: number): Buffer;
  setBusyPoll(maxMicros: number): void;
  busyPollStats(): NativeBusyPollStats | null;
  /** Share the core's counters ([submitted, in flight]) so polling can tell latency-bound initiators from busy ones. */
  setBusyPollCommandCounter(counter: Float64Array): void;
  bufferAlignment(buf: Uint8Array): number;
  /** A close-on-exec duplicate of a socket descriptor (throws for anything but a socket). */
  dupSocketFd(fd: number): number;
  /** execve(2) with the current environment: returns only by throwing (ENOENT, E2BIG, ...). */
  execReplace(path: string, argv: string[]): never;
  [name: string]: unknown;
}

const here = dirname(fileURLToPath(import.meta.url));
// src/native and dist/native are both two levels below the package root.
const packageRoot = join(here, '..', '..');

function addonPath(): string {
  const override = process.env.VTGT_NATIVE_ADDON;
  if (override) return override;
  return join(packageRoot, 'build', 'Release', 'vtgt_native.node');
}

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = addonPath();
  if (!existsSync(path)) {
    throw new Error(
      `vtgt native addon not found at ${path}. Build it with "npm run build:native" ` +
        `(needs cmake and a C++ compiler; "npm install" does this automatically).`,
    );
  }
  const require = createRequire(import.meta.url);
  cached = require(path) as NativeAddon;
  return cached;
}
