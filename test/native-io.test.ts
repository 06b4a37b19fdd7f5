import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alignedBuffer, IoFile, ioEngineInfo, isAligned, NativeIoError, type IoEngineKind } from '../src/native/io.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vtgt-io-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 13 + seed * 7) & 0xff;
  return b;
}

it('reports which engine is active', () => {
  const info = ioEngineInfo();
  expect(info.threads).toBeGreaterThan(0);
  if (info.uring) {
    expect(info.uringEntries).toBeGreaterThan(0);
    expect(info.uringUnavailableReason).toBe('');
  } else {
    // Without io_uring the engine must say why (not built with liburing, kernel refused, or disabled).
    expect(info.uringEntries).toBe(0);
    expect(info.uringUnavailableReason).toMatch(/liburing|io_uring|VTGT_IO_ENGINE/);
  }
  expect(info.uring).toBe(process.env.VTGT_IO_ENGINE !== 'threadpool' && info.uringUnavailableReason === '');
});

for (const engine of ['io_uring', 'threadpool'] as IoEngineKind[]) {
  describe(`IoFile on the ${engine} engine`, () => {
    it('writes and reads back at offsets, with buffer offsets', async () => {
      const path = join(dir, `rw-${engine}`);
      const f = IoFile.openSync(path, { create: true, engine });
      const data = pattern(8192, 3);
      expect(await f.write(data, 0, 8192, 4096)).toBe(8192);
      const into = Buffer.alloc(9000, 0xaa);
      expect(await f.read(into, 100, 4096, 8192)).toBe(4096);
      expect(into.subarray(100, 4196).equals(data.subarray(4096))).toBe(true);
      expect(into[99]).toBe(0xaa);
      expect(into[4196]).toBe(0xaa);
      await f.datasync();
      await f.fsync();
      await f.close();
      expect(readFileSync(path).subarray(4096).equals(data)).toBe(true);
    });

    it('returns a short count for reads past end of file', async () => {
      const path = join(dir, `eof-${engine}`);
      writeFileSync(path, pattern(1000));
      const f = IoFile.openSync(path, { readOnly: true, engine });
      const b = Buffer.alloc(4096);
      expect(await f.read(b, 0, 4096, 0)).toBe(1000);
      expect(await f.read(b, 0, 4096, 5000)).toBe(0);
      await f.close();
    });

    it('keeps many operations in flight (more than the ring holds)', async () => {
      const path = join(dir, `qd-${engine}`);
      const f = IoFile.openSync(path, { create: true, engine });
      const n = 600;
      const bufs = Array.from({ length: n }, (_, i) => pattern(512, i));
      await Promise.all(bufs.map((b, i) => f.write(b, 0, 512, i * 512)));
      const outs = Array.from({ length: n }, () => Buffer.alloc(512));
      const counts = await Promise.all(outs.map((b, i) => f.read(b, 0, 512, i * 512)));
      expect(counts.every((c) => c === 512)).toBe(true);
      for (let i = 0; i < n; i++) expect(outs[i]!.equals(bufs[i]!)).toBe(true);
      await f.close();
    });

    it('random mixed I/O of many sizes keeps every block consistent with a model', async () => {
      const path = join(dir, `mixed-${engine}`);
      const f = IoFile.openSync(path, { create: true, engine });
      const blocks = 64;
      const bs = 4096;
      const model = Array.from({ length: blocks }, () => Buffer.alloc(bs));
      await f.write(Buffer.alloc(blocks * bs), 0, blocks * bs, 0);
      // One chain per block: operations on a block never overlap, different blocks run concurrently.
      const chains: Array<Promise<void>> = Array.from({ length: blocks }, () => Promise.resolve());
      let seed = 7;
      const rnd = (n: number): number => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % n;
      };
      for (let i = 0; i < 1500; i++) {
        const blk = rnd(blocks);
        const kind = rnd(3);
        chains[blk] = chains[blk]!.then(async () => {
          if (kind === 0) {
            const data = pattern(bs, i);
            await f.write(data, 0, bs, blk * bs, i % 5 === 0);
            data.copy(model[blk]!);
          } else if (kind === 1) {
            const back = Buffer.alloc(bs);
            await f.read(back, 0, bs, blk * bs);
            expect(back.equals(model[blk]!)).toBe(true);
          } else {
            // A partial overwrite at a random offset inside the block.
            const at = rnd(bs - 1);
            const len = 1 + rnd(bs - at);
            const data = pattern(len, i + 1);
            await f.write(data, 0, len, blk * bs + at);
            data.copy(model[blk]!, at);
          }
        });
      }
      await Promise.all(chains);
      const all = Buffer.alloc(blocks * bs);
      expect(await f.read(all, 0, all.length, 0)).toBe(all.length);
      expect(all.equals(Buffer.concat(model))).toBe(true);
      await f.close();
    });

    it('punches holes and finds them with SEEK_DATA / SEEK_HOLE', async () => {
      const path = join(dir, `holes-${engine}`);
      const f = IoFile.openSync(path, { create: true, engine });
      const mib = 1 << 20;
      await f.write(pattern(4 * mib), 0, 4 * mib, 0);
      await f.datasync();
      const before = statSync(path).blocks;
      await f.punchHole(mib, 2 * mib);
      expect(statSync(path).size).toBe(4 * mib);
      expect(statSync(path).blocks).toBeLessThan(before);
      expect(await f.seekData(0)).toBe(0);
      expect(await f.seekHole(0)).toBe(mib);
      expect(await f.seekData(mib)).toBe(3 * mib);
      expect(await f.seekHole(3 * mib)).toBe(4 * mib); // end of file is a hole
      expect(await f.seekData(4 * mib)).toBe(-1);
      const z = Buffer.alloc(4096, 1);
      await f.read(z, 0, 4096, mib + 8192);
      expect(z.every((v) => v === 0)).toBe(true);
      await f.close();
    });

    it('zeroes a range (or says the file system cannot)', async () => {
      const path = join(dir, `zero-${engine}`);
      const f = IoFile.openSync(path, { create: true, engine });
      await f.write(pattern(65536), 0, 65536, 0);
      try {
        await f.zeroRange(4096, 8192);
      } catch (e) {
        expect((e as NativeIoError).code).toBe('EOPNOTSUPP');
        await f.close();
        return;
      }
      const b = Buffer.alloc(8192, 1);
      await f.read(b, 0, 8192, 4096);
      expect(b.every((v) => v === 0)).toBe(true);
      await f.close();
    });
  });
}

describe('synchronous fast path', () => {
  const shm = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/vtgt-io-') : undefined;
  afterAll(() => {
    if (shm) rmSync(shm, { recursive: true, force: true });
  });

  it('is "resident" on tmpfs, "nowait" on a disk file system, off with O_DIRECT or when disabled', async () => {
    if (shm) {
      const t = IoFile.openSync(join(shm, 'f'), { create: true });
      expect(t.syncFastPath).toBe('resident');
      await t.close();
    }
    const d = IoFile.openSync(join(dir, 'fast-disk'), { create: true });
    expect(['nowait', 'resident']).toContain(d.syncFastPath);
    await d.close();
    const off = IoFile.openSync(join(dir, 'fast-disk'), { syncFastPath: false });
    expect(off.syncFastPath).toBe('off');
    await off.close();
  });

  it('sends buffered writes on ext4 straight to io_uring workers, and nothing else', async () => {
    const d = IoFile.openSync(join(dir, 'punt'), { create: true });
    const ext4 = d.devInfoSync().fsType === 0xef53;
    expect(d.puntsWrites).toBe(ext4 && d.engine === 'io_uring');
    // Data written either way reads back (the model test above covers many more shapes).
    const data = pattern(64 * 1024, 9);
    await Promise.all(Array.from({ length: 16 }, (_, i) => d.write(data, i * 4096, 4096, i * 4096)));
    const back = Buffer.alloc(64 * 1024);
    expect(await d.read(back, 0, back.length, 0)).toBe(back.length);
    expect(back.equals(data)).toBe(true);
    await d.close();
    const puntsWhenOpened = async (path: string, opts: Parameters<typeof IoFile.openSync>[1] = {}) => {
      const f = IoFile.openSync(path, opts);
      const p = f.puntsWrites;
      await f.close();
      return p;
    };
    expect(await puntsWhenOpened(join(dir, 'punt'), { syncFastPath: false })).toBe(false);
    if (shm) expect(await puntsWhenOpened(join(shm, 'punt'), { create: true })).toBe(false);
    process.env.VTGT_URING_PUNT_WRITES = '0';
    try {
      expect(await puntsWhenOpened(join(dir, 'punt'))).toBe(false);
    } finally {
      delete process.env.VTGT_URING_PUNT_WRITES;
    }
  });

  it('moves data correctly on tmpfs, small and large, including short reads at end of file', async () => {
    if (!shm) return;
    const f = IoFile.openSync(join(shm, 'rw'), { create: true });
    const small = pattern(4096, 4);
    const large = pattern(256 * 1024, 5); // above the fast-path limit: asynchronous
    expect(await f.write(small, 0, 4096, 0)).toBe(4096);
    expect(await f.write(large, 0, large.length, 8192)).toBe(large.length);
    expect(await f.write(small, 0, 512, 4096, true)).toBe(512); // dsync on tmpfs
    const b = Buffer.alloc(large.length);
    const before = ioEngineInfo();
    expect(await f.read(b, 0, 4096, 0)).toBe(4096);
    const after = ioEngineInfo();
    expect(after.syncOps).toBe(before.syncOps + 1); // served on this thread, no request queued
    expect(after.uringOps + after.poolOps).toBe(before.uringOps + before.poolOps);
    expect(b.subarray(0, 4096).equals(small)).toBe(true);
    expect(await f.read(b, 0, large.length, 8192)).toBe(large.length);
    expect(b.equals(large)).toBe(true);
    const end = 8192 + large.length;
    expect(await f.read(b, 0, 4096, end - 100)).toBe(100);
    expect(await f.read(b, 0, 4096, end + 5000)).toBe(0);
    await f.close();
    await expect(f.read(b, 0, 1, 0)).rejects.toThrow(/closed/);
  });

  it('falls back to the asynchronous path for data not in the page cache', async () => {
    const path = join(dir, 'cold');
    writeFileSync(path, pattern(1 << 20, 6));
    // Drop the file's cached pages so RWF_NOWAIT reads would block (EAGAIN) and must go async.
    const f = IoFile.openSync(path);
    await f.datasync();
    (await import('node:child_process')).spawnSync('sh', ['-c', `dd if=${path} iflag=nocache count=0 2>/dev/null`]);
    const b = Buffer.alloc(4096);
    const before = ioEngineInfo();
    for (let i = 0; i < 16; i++) {
      expect(await f.read(b, 0, 4096, i * 65536)).toBe(4096);
      expect(b.equals(pattern(1 << 20, 6).subarray(i * 65536, i * 65536 + 4096))).toBe(true);
    }
    const after = ioEngineInfo();
    // Every read was served one way or the other; uncached ones (if the cache drop worked) went async.
    expect(after.syncOps - before.syncOps + (after.uringOps + after.poolOps - before.uringOps - before.poolOps)).toBe(16);
    await f.close();
  });
});

for (const engine of ['io_uring', 'threadpool'] as IoEngineKind[]) {
  describe(`requests of one event-loop turn on the ${engine} engine`, () => {
    const available = engine === 'threadpool' || ioEngineInfo().uring;
    const handoffs = () => (engine === 'io_uring' ? ioEngineInfo().uringSubmits : ioEngineInfo().poolHandoffs);
    const requests = () => (engine === 'io_uring' ? ioEngineInfo().uringOps : ioEngineInfo().poolOps);

    it.runIf(available)('go to the kernel or the workers together', async () => {
      const f = IoFile.openSync(join(dir, `batch-${engine}`), { create: true, engine });
      const size = 128 * 1024; // above the synchronous fast path's limit on any file system
      const data = Array.from({ length: 16 }, (_, i) => pattern(size, 20 + i));
      // From a timer, not from an I/O completion: requests made while completions are delivered were
      // always handed over together.
      await new Promise((resolve) => setTimeout(resolve, 1));
      const before = { handoffs: handoffs(), requests: requests() };
      const n = await Promise.all(data.map((b, i) => f.write(b, 0, size, i * size)));
      expect(n).toEqual(data.map(() => size));
      expect(requests() - before.requests).toBe(16);
      // One hand-over for the burst (two when the turn before made a single request).
      expect(handoffs() - before.handoffs).toBeLessThanOrEqual(2);
      const back = Buffer.alloc(size);
      for (let i = 0; i < 16; i++) {
        expect(await f.read(back, 0, size, i * size)).toBe(size);
        expect(back.equals(data[i]!)).toBe(true);
      }
      await f.close();
    });

    it.runIf(available)('are handed over before the loop waits when made in timers and immediates, with busy polling on', async () => {
      const { loadNative } = await import('../src/native/index.js');
      const f = IoFile.openSync(join(dir, `phases-${engine}`), { create: true, engine });
      const size = 128 * 1024;
      const b = pattern(size, 40);
      loadNative().setBusyPoll(200);
      try {
        // Nothing else is pending in these phases: a request left behind would never complete and
        // the test would time out.
        for (let round = 0; round < 3; round++) {
          const fromTimer = await new Promise<number>((resolve, reject) => setTimeout(() => f.write(b, 0, size, round * size).then(resolve, reject), 1));
          const fromImmediate = await new Promise<number>((resolve, reject) => setImmediate(() => f.read(Buffer.alloc(size), 0, size, round * size).then(resolve, reject)));
          const burst = await new Promise<number[]>((resolve, reject) =>
            setImmediate(() => Promise.all([0, 1, 2, 3].map((i) => f.write(b, 0, size, (8 + i) * size))).then(resolve, reject)),
          );
          expect([fromTimer, fromImmediate, ...burst]).toEqual(Array(6).fill(size));
        }
      } finally {
        loadNative().setBusyPoll(0);
        await f.close();
      }
    });
  });
}

describe('IoFile errors', () => {
  it('names the file and errno when an operation fails', async () => {
    const path = join(dir, 'ro-file');
    writeFileSync(path, pattern(4096));
    const f = IoFile.openSync(path, { readOnly: true });
    await expect(f.write(Buffer.alloc(512), 0, 512, 0)).rejects.toThrow(/read-only/);
    // The kernel refuses fallocate on an O_RDONLY fd with EBADF.
    const err = await f.punchHole(0, 4096).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NativeIoError);
    expect((err as NativeIoError).code).toBe('EBADF');
    expect((err as NativeIoError).message).toContain(path);
    expect((err as NativeIoError).message).toContain('at offset 0 length 4096');
    // The request's own position and length, not another's: the engine's rejection carries them.
    const later = await f.punchHole(8192, 12288).catch((e: unknown) => e);
    expect((later as NativeIoError).message).toMatch(new RegExp(`^fallocate failed on ${path} at offset 8192 length 12288: `));
    expect((later as NativeIoError).syscall).toBe('fallocate');
    await f.close();
  });

  it('maps a block-device ioctl on a regular file to ENOTTY', async () => {
    const path = join(dir, 'not-a-device');
    writeFileSync(path, pattern(4096));
    const f = IoFile.openSync(path);
    const err = (await f.blkDiscard(0, 4096).catch((e: unknown) => e)) as NativeIoError;
    expect(err.code).toBe('ENOTTY');
    expect(err.syscall).toBe('ioctl(BLKDISCARD)');
    await f.close();
  });

  it('fails to open a missing file with ENOENT and the path', () => {
    expect(() => IoFile.openSync(join(dir, 'nope', 'x'))).toThrow(/ENOENT.*nope/);
  });

  it('validates arguments before crossing into C++', async () => {
    const f = IoFile.openSync(join(dir, 'args'), { create: true });
    const b = Buffer.alloc(16);
    await expect(f.read(b, 0, 17, 0)).rejects.toThrow(/exceeds buffer size 16/);
    await expect(f.read(b, -1, 1, 0)).rejects.toThrow(RangeError);
    await expect(f.read(b, 0, 1, 2 ** 60)).rejects.toThrow(RangeError);
    await expect(f.read('x' as unknown as Buffer, 0, 1, 0)).rejects.toThrow(TypeError);
    await expect(f.fallocate(-3, 0, 1)).rejects.toThrow(/bad mode -3/);
    expect(() => f.fallocateSync(1.5, 0, 1)).toThrow(/bad mode 1.5/);
    expect(() => f.fallocateSync(0, 2 ** 53 - 1, 2)).toThrow(/overflows/);
    await f.close();
    await expect(f.read(b, 0, 1, 0)).rejects.toThrow(/closed/);
  });

  it('the C++ layer rechecks its arguments', async () => {
    const { loadNative } = await import('../src/native/index.js');
    const n = loadNative();
    // Reads and writes (and their buffer bounds) go through ioSubmitTransfer: test/native-transfer-slots.test.ts.
    expect(() => n.ioSubmit(0, 0, 8, 0, 0, true)).toThrow(/reads and writes go through ioSubmitTransfer/);
    expect(() => n.ioSubmit(1, 0, 8, 0, 0, true)).toThrow(/reads and writes go through ioSubmitTransfer/);
    expect(() => n.ioSubmit(99, 0, 0, 0, 0, true)).toThrow(TypeError);
    expect(() => n.ioSubmit(2, -1, 0, 0, 0, true)).toThrow(TypeError);
    expect(() => n.ioSubmit(4, 3, 8, 2 ** 53, 0, true)).toThrow(TypeError);
  });

  it('close waits for operations in flight', async () => {
    const f = IoFile.openSync(join(dir, 'drain'), { create: true });
    const w = f.write(pattern(1 << 20), 0, 1 << 20, 0);
    const closed = f.close();
    expect(await w).toBe(1 << 20);
    await closed;
    expect(f.closed).toBe(true);
    expect(statSync(join(dir, 'drain')).size).toBe(1 << 20);
  });
});

describe('aligned buffers', () => {
  it('allocates aligned zeroed memory and reports alignment', () => {
    const b = alignedBuffer(8192, 4096);
    expect(b.length).toBe(8192);
    expect(isAligned(b, 4096)).toBe(true);
    expect(b.every((v) => v === 0)).toBe(true);
    expect(isAligned(b.subarray(1), 2)).toBe(false);
    expect(() => alignedBuffer(10, 3)).toThrow(RangeError);
  });
});
