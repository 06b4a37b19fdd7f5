/**
 * DeviceWindow (src/backstores/device-window.ts): large O_DIRECT transfers wait while the device has
 * at least the floor and half of the demand; small ones pass straight through; waiting ones start in
 * order as others end, and are flushed to the device at once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DeviceWindow } from '../src/backstores/device-window.js';
import { FileBackstore } from '../src/backstores/file.js';
import { alignedBuffer } from '../src/native/io.js';
import { startRead, startWrite } from './helpers/start-io.js';
import type { ReadWrite } from '../src/backstores/read-write.js';
import type { TransferListener } from '../src/native/io.js';

const K = 1024;

interface Started {
  write: boolean;
  pos: number;
  len: number;
  listener: TransferListener;
}

/** An engine that finishes nothing by itself: the test ends each transfer. */
function fakeEngine(opts: { syncBytes?: (len: number) => number; throwAt?: number } = {}) {
  const started: Started[] = [];
  const rw: Required<ReadWrite> = {
    read: () => Promise.reject(new Error('not used')),
    write: () => Promise.reject(new Error('not used')),
    datasync: () => Promise.resolve(),
    readTo: (_buf, _off, len, pos, listener) => {
      if (pos === opts.throwAt) throw new Error(`pread at ${pos}: EBADF`);
      const n = opts.syncBytes?.(len) ?? -1;
      if (n < 0) started.push({ write: false, pos, len, listener });
      return n;
    },
    writeFrom: (_buf, _off, len, pos, _dsync, listener) => {
      started.push({ write: true, pos, len, listener });
      return -1;
    },
  };
  return { rw, started };
}

function recorder() {
  const ended: Array<{ bytes: number; error: string | undefined }> = [];
  const listener: TransferListener = { transferComplete: (bytes, error) => ended.push({ bytes, error: error?.message }) };
  return { ended, listener };
}

const buf = Buffer.alloc(128 * K);

/** A window of `floorBytes` over a fake engine, given `reads` 128 KiB reads one after another. */
function loaded(floorBytes: number, reads: number, flush: () => void = () => undefined) {
  const { rw, started } = fakeEngine();
  const w = new DeviceWindow(rw, floorBytes, 64 * K, flush);
  const { ended, listener } = recorder();
  const returned = Array.from({ length: reads }, (_, i) => w.readTo(buf, 0, 128 * K, i * 128 * K, listener));
  return { w, started, ended, listener, returned };
}

describe('DeviceWindow', () => {
  it('holds 128 KiB transfers beyond 512 KiB and starts them in order as others end, flushing each time', () => {
    let flushes = 0;
    const { w, started, ended, returned } = loaded(512 * K, 8, () => flushes++);
    expect(returned.every((n) => n === -1)).toBe(true);
    expect(started.map((s) => s.pos / (128 * K))).toEqual([0, 1, 2, 3]);
    expect(w.inFlightBytes).toBe(512 * K);
    expect(w.waiting).toBe(4);
    expect(flushes).toBe(0); // started at submission: the engine's end of turn hands them over

    started[0]!.listener.transferComplete(128 * K, undefined);
    expect(ended).toEqual([{ bytes: 128 * K, error: undefined }]);
    // Demand is 3 at the device + 4 waiting = 896 KiB: the floor still rules, one more starts.
    expect(started.map((s) => s.pos / (128 * K))).toEqual([0, 1, 2, 3, 4]);
    expect(flushes).toBe(1);
    expect(w.inFlightBytes).toBe(512 * K);
    expect(w.waiting).toBe(3);
  });

  it('gives the device half of a deep demand, not just the floor', () => {
    const { w, started } = loaded(512 * K, 32);
    expect(started).toHaveLength(4);
    started[0]!.listener.transferComplete(128 * K, undefined);
    // 3 at the device + 28 waiting = 31 x 128 KiB; half of it is 1984 KiB: up to 15 at the device.
    expect(w.inFlightBytes).toBe(15 * 128 * K);
    expect(started).toHaveLength(4 + 12);
    expect(w.waiting).toBe(16);
  });

  it('lets transfers under the large size through at once, uncounted, even while large ones wait', () => {
    const { w, started, listener } = loaded(256 * K, 4);
    expect(w.waiting).toBe(2);
    for (let i = 0; i < 100; i++) expect(w.writeFrom(buf, 0, 4 * K, (1 << 30) + i * 4 * K, false, listener)).toBe(-1);
    expect(started).toHaveLength(2 + 100);
    expect(w.inFlightBytes).toBe(256 * K);
    // A small transfer's listener is the caller's own: the window is not in its path.
    expect(started[2]!.listener).toBe(listener);
  });

  it('always lets one transfer through, however large', () => {
    const { rw, started } = fakeEngine();
    const w = new DeviceWindow(rw, 512 * K, 64 * K, () => undefined);
    const { listener } = recorder();
    const big = Buffer.alloc(4 << 20);
    expect(w.writeFrom(big, 0, big.length, 0, true, listener)).toBe(-1);
    expect(started).toHaveLength(1);
    expect(w.writeFrom(buf, 0, 128 * K, 8 << 20, false, listener)).toBe(-1);
    expect(started).toHaveLength(1);
    started[0]!.listener.transferComplete(big.length, undefined);
    expect(started).toHaveLength(2);
    expect(started[1]!.write).toBe(true);
  });

  it('gives the bytes of a transfer that ended at once back, and tells a waiting one that did so', () => {
    let sync = false;
    const { rw, started } = fakeEngine({ syncBytes: (len) => (sync ? len : -1) });
    const w = new DeviceWindow(rw, 128 * K, 64 * K, () => undefined);
    const { ended, listener } = recorder();
    w.readTo(buf, 0, 128 * K, 0, listener);
    w.readTo(buf, 0, 128 * K, 128 * K, listener); // waits
    sync = true;
    started[0]!.listener.transferComplete(128 * K, undefined);
    // The waiting read was started and finished inside the engine call: told through its listener.
    expect(ended).toEqual([
      { bytes: 128 * K, error: undefined },
      { bytes: 128 * K, error: undefined },
    ]);
    expect(w.inFlightBytes).toBe(0);
    expect(w.readTo(buf, 0, 128 * K, 0, listener)).toBe(128 * K);
    expect(w.inFlightBytes).toBe(0);
  });

  it('reports a waiting transfer the engine refuses through its listener and goes on with the next', () => {
    const { rw, started } = fakeEngine({ throwAt: 128 * K });
    const w = new DeviceWindow(rw, 128 * K, 64 * K, () => undefined);
    const { ended, listener } = recorder();
    w.readTo(buf, 0, 128 * K, 0, listener);
    w.readTo(buf, 0, 128 * K, 128 * K, listener); // refused when it starts
    w.readTo(buf, 0, 128 * K, 256 * K, listener);
    started[0]!.listener.transferComplete(128 * K, undefined);
    // The window starts what waits before it tells the finished transfer's caller.
    expect(ended).toEqual([
      { bytes: 0, error: 'pread at 131072: EBADF' },
      { bytes: 128 * K, error: undefined },
    ]);
    expect(started.map((s) => s.pos)).toEqual([0, 256 * K]);
    expect(w.inFlightBytes).toBe(128 * K);
    // Refused at submission (nothing waiting): thrown to the caller, nothing counted.
    started[1]!.listener.transferComplete(128 * K, undefined);
    expect(() => w.readTo(buf, 0, 128 * K, 128 * K, listener)).toThrow(/EBADF/);
    expect(w.inFlightBytes).toBe(0);
  });

  it('settles the promise forms through the window', async () => {
    const { rw, started } = fakeEngine();
    const w = new DeviceWindow(rw, 128 * K, 64 * K, () => undefined);
    const first = w.read(buf, 0, 128 * K, 0);
    const second = w.write(buf, 0, 128 * K, 128 * K, false);
    expect(started).toHaveLength(1);
    started[0]!.listener.transferComplete(100, undefined);
    await expect(first).resolves.toBe(100);
    expect(started).toHaveLength(2);
    started[1]!.listener.transferComplete(0, new Error('pwrite: EIO'));
    await expect(second).rejects.toThrow('pwrite: EIO');
  });

  it('wraps only an engine with listener forms', () => {
    const { rw } = fakeEngine();
    expect(DeviceWindow.over(rw)).toBeInstanceOf(DeviceWindow);
    const promisesOnly: ReadWrite = { read: rw.read, write: rw.write, datasync: rw.datasync };
    expect(DeviceWindow.over(promisesOnly)).toBe(promisesOnly);
  });
});

describe('an O_DIRECT file backstore behind its window', () => {
  it('moves many concurrent 128 KiB reads and writes, each with its own data, through the engine', async () => {
    // /var/tmp is on a disk file system on most hosts; tmpfs refuses O_DIRECT.
    const dir = mkdtempSync(join('/var/tmp', 'vtgt-window-'));
    try {
      let b: FileBackstore;
      try {
        b = FileBackstore.open({ name: 'dw', path: join(dir, 'dw.img'), size: 8 << 20, direct: true });
      } catch (e) {
        expect((e as Error).message).toMatch(/O_DIRECT/);
        return;
      }
      const n = 24; // 3 MiB: well past the window, so most wait and are started by completions
      const data = Array.from({ length: n }, (_, i) => {
        const d = alignedBuffer(128 * K, 4096);
        for (let j = 0; j < d.length; j += 512) d.writeUInt32BE(i * 100000 + j, j);
        return d;
      });
      const writes = await Promise.all(data.map((d, i) => startWrite(b, i * 128 * K, d)));
      expect(writes.every((w) => w.error === undefined && !w.now)).toBe(true);
      const outs = data.map(() => alignedBuffer(128 * K, 4096));
      const reads = await Promise.all(outs.map((o, i) => startRead(b, i * 128 * K, o)));
      expect(reads.every((r) => r.error === undefined && !r.now)).toBe(true);
      outs.forEach((o, i) => expect(o.equals(data[i]!)).toBe(true));
      await b.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
