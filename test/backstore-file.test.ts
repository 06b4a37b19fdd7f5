import { chmodSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackstoreError } from '../src/backstores/backstore.js';
import { FileBackstore, type FileIoEngine } from '../src/backstores/file.js';
import { IoFile } from '../src/native/io.js';
import { startRead, startWrite } from './helpers/start-io.js';
import { withSmallTmpfs } from './helpers/small-tmpfs.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vtgt-bs-file-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1 << 20;
function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed * 13 + 1) & 0xff;
  return b;
}

/** Independent check of the file's holes with lseek, through a fresh fd. */
async function holeAt(path: string, offset: number): Promise<number> {
  const f = IoFile.openSync(path, { readOnly: true });
  try {
    return await f.seekHole(offset);
  } finally {
    await f.close();
  }
}

for (const engine of ['native', 'native-threadpool', 'fs'] as FileIoEngine[]) {
  describe(`file backstore (${engine} engine)`, () => {
    it('creates a sparse file of the given size and round-trips data', async () => {
      const path = join(dir, `rt-${engine}.img`);
      const b = FileBackstore.open({ name: 'd0', path, size: 64 * MiB, engine });
      expect(b.sizeBytes).toBe(64 * MiB);
      expect(statSync(path).size).toBe(64 * MiB);
      expect(statSync(path).blocks).toBe(0); // nothing allocated yet
      const data = pattern(12288, 5);
      await b.write(MiB, data, false);
      const out = await b.read(MiB, 12288);
      expect(out.equals(data)).toBe(true);
      const into = Buffer.alloc(16384, 0xee);
      const got = await b.read(MiB + 4096, 4096, into);
      expect(got.length).toBe(4096);
      expect(into.subarray(0, 4096).equals(data.subarray(4096, 8192))).toBe(true);
      expect(into[4096]).toBe(0xee);
      expect((await b.read(0, 512)).every((v) => v === 0)).toBe(true);
      await b.close();
      expect(readFileSync(path).subarray(MiB, MiB + 12288).equals(data)).toBe(true);
    });
  });
}

describe('file backstore holes and zeroes', () => {
  it('discard punches a hole that reads back as zeroes (verified with SEEK_HOLE and st_blocks)', async () => {
    const path = join(dir, 'holes.img');
    const b = FileBackstore.open({ name: 'd1', path, size: 8 * MiB });
    expect(b.capabilities).toMatchObject({ discard: true, discardZeroes: true, lbaStatus: true, thinProvisioned: true });
    await b.write(0, pattern(4 * MiB), false);
    await b.flush();
    const blocksBefore = statSync(path).blocks;
    expect(await holeAt(path, 0)).toBe(4 * MiB);
    await b.discard(MiB, MiB);
    expect(await holeAt(path, 0)).toBe(MiB);
    expect(statSync(path).blocks).toBeLessThanOrEqual(blocksBefore - (MiB / 512));
    expect((await b.read(MiB, MiB)).every((v) => v === 0)).toBe(true);
    expect((await b.read(2 * MiB, 4096)).equals(pattern(4 * MiB).subarray(2 * MiB, 2 * MiB + 4096))).toBe(true);
    expect(await b.mapStatus(0, 8 * MiB)).toEqual([
      { offset: 0, length: MiB, mapped: true },
      { offset: MiB, length: MiB, mapped: false },
      { offset: 2 * MiB, length: 2 * MiB, mapped: true },
      { offset: 4 * MiB, length: 4 * MiB, mapped: false },
    ]);
    // A query starting inside an extent reports from there.
    expect((await b.mapStatus(MiB + 4096, 512))[0]).toEqual({ offset: MiB + 4096, length: MiB - 4096, mapped: false });
    expect(await b.mapStatus(8 * MiB, 0)).toEqual([]);
    await b.close();
  });

  it('write zeroes with unmap deallocates; without unmap the range reads zero and stays mapped', async () => {
    const path = join(dir, 'zeroes.img');
    const b = FileBackstore.open({ name: 'd2', path, size: 4 * MiB });
    await b.write(0, pattern(2 * MiB, 3), false);
    await b.writeZeroes(0, MiB, true);
    expect(await holeAt(path, 0)).toBe(0);
    await b.writeZeroes(MiB, 65536, false);
    expect((await b.read(MiB, 65536)).every((v) => v === 0)).toBe(true);
    const st = await b.mapStatus(0, 4 * MiB);
    expect(st[0]).toEqual({ offset: 0, length: MiB, mapped: false });
    expect(st[1]).toEqual({ offset: MiB, length: MiB, mapped: true });
    expect((await b.read(MiB + 65536, 512)).equals(pattern(2 * MiB, 3).subarray(MiB + 65536, MiB + 65536 + 512))).toBe(
      true,
    );
    await b.close();
  });

  it('counts a partly written 4 KiB block as mapped with 512-byte blocks', async () => {
    const b = FileBackstore.open({ name: 'd3', path: join(dir, 'partial.img'), size: MiB });
    await b.write(8192 + 512, pattern(512), false);
    const st = await b.mapStatus(0, MiB);
    const mapped = st.filter((e) => e.mapped);
    expect(mapped.length).toBe(1);
    expect(mapped[0]!.offset).toBeLessThanOrEqual(8192 + 512);
    expect(mapped[0]!.offset + mapped[0]!.length).toBeGreaterThanOrEqual(8192 + 1024);
    // Extents tile the range with no gaps.
    let pos = 0;
    for (const e of st) {
      expect(e.offset).toBe(pos);
      pos += e.length;
    }
    expect(pos).toBe(MiB);
    await b.close();
  });
});

describe('file backstore durability and modes', () => {
  it('FUA writes and flush complete on write-back; write-through opens O_DSYNC', async () => {
    const wb = FileBackstore.open({ name: 'wb', path: join(dir, 'wb.img'), size: MiB, cacheMode: 'writeback' });
    expect(wb.cacheMode).toBe('writeback');
    await wb.write(0, pattern(4096), true);
    await wb.flush();
    await wb.close();
    expect(readFileSync(join(dir, 'wb.img')).subarray(0, 4096).equals(pattern(4096))).toBe(true);
    const wt = FileBackstore.open({ name: 'wt', path: join(dir, 'wt.img'), size: MiB, cacheMode: 'writethrough' });
    expect(wt.cacheMode).toBe('writethrough');
    await wt.write(4096, pattern(4096, 2), false);
    await wt.writeZeroes(0, 4096, true);
    await wt.close();
    expect(readFileSync(join(dir, 'wt.img')).subarray(4096, 8192).equals(pattern(4096, 2))).toBe(true);
  });

  it('serves 4096-byte blocks and rejects unaligned ranges as programming errors', async () => {
    const b = FileBackstore.open({ name: 'd4k', path: join(dir, '4k.img'), size: 4 * MiB, blockSize: 4096 });
    expect(b.blockSize).toBe(4096);
    await b.write(4096, pattern(8192), false);
    expect((await b.read(4096, 8192)).equals(pattern(8192))).toBe(true);
    await expect(b.read(512, 4096)).rejects.toThrow(/multiples of 4096/);
    await expect(b.write(4 * MiB, pattern(4096), false)).rejects.toThrow(/past the end/);
    await expect(b.read(0, 8192, Buffer.alloc(4096))).rejects.toThrow(/smaller than/);
    await b.close();
  });

  it('O_DIRECT bounces unaligned buffers (or says the file system cannot)', async () => {
    const path = join(dir, 'direct.img');
    let b: FileBackstore;
    try {
      b = FileBackstore.open({ name: 'dd', path, size: MiB, direct: true, blockSize: 4096 });
    } catch (e) {
      expect((e as BackstoreError).message).toMatch(/O_DIRECT/);
      return;
    }
    const unaligned = Buffer.alloc(8192 + 1).subarray(1);
    pattern(8192, 9).copy(unaligned);
    await b.write(8192, unaligned, true);
    const into = Buffer.alloc(8192 + 3).subarray(3);
    await b.read(8192, 8192, into);
    expect(into.equals(pattern(8192, 9))).toBe(true);
    expect(b.bounced).toBe(2);
    // The same through startWrite / startRead (the core's path): bounced out and back, told later.
    pattern(8192, 4).copy(unaligned);
    expect(await startWrite(b, 16384, unaligned, true)).toEqual({ now: false, error: undefined });
    const back = Buffer.alloc(8192 + 3).subarray(3);
    expect(await startRead(b, 16384, back)).toEqual({ now: false, error: undefined });
    expect(back.equals(pattern(8192, 4))).toBe(true);
    expect(b.bounced).toBe(4);
    await b.close();
  });

  it('grows an existing smaller file to the configured size without touching data', async () => {
    const path = join(dir, 'grow.img');
    writeFileSync(path, pattern(8192));
    const b = FileBackstore.open({ name: 'g', path, size: 2 * MiB });
    expect(b.sizeBytes).toBe(2 * MiB);
    expect(statSync(path).size).toBe(2 * MiB);
    expect((await b.read(0, 8192)).equals(pattern(8192))).toBe(true);
    await b.close();
  });

  it('reads past the end of a file truncated underneath as zeroes', async () => {
    const path = join(dir, 'shrunk.img');
    const b = FileBackstore.open({ name: 's', path, size: MiB });
    await b.write(0, pattern(MiB), false);
    (await import('node:fs')).truncateSync(path, 4096);
    const out = await b.read(0, 8192, Buffer.alloc(8192, 0xff));
    expect(out.subarray(0, 4096).equals(pattern(MiB).subarray(0, 4096))).toBe(true);
    expect(out.subarray(4096).every((v) => v === 0)).toBe(true);
    await b.close();
  });

  it('refreshSize picks up a file grown underneath', async () => {
    const path = join(dir, 'refresh.img');
    const b = FileBackstore.open({ name: 'r', path, size: MiB });
    const fd = openSync(path, 'r+');
    (await import('node:fs')).ftruncateSync(fd, 3 * MiB + 100);
    closeSync(fd);
    expect(await b.refreshSize()).toBe(3 * MiB);
    expect(b.sizeBytes).toBe(3 * MiB);
    await b.close();
  });
});

describe('file backstore errors', () => {
  it('read-only refuses writes, discards and zeroing with a readonly BackstoreError', async () => {
    const path = join(dir, 'ro.img');
    writeFileSync(path, pattern(MiB));
    const b = FileBackstore.open({ name: 'ro', path, readOnly: true });
    expect(b.readOnly).toBe(true);
    expect(b.capabilities.discard).toBe(false);
    expect(b.sizeBytes).toBe(MiB);
    for (const p of [b.write(0, Buffer.alloc(512), false), b.discard(0, 512), b.writeZeroes(0, 512, false)]) {
      const e = await p.catch((x: unknown) => x);
      expect(e).toBeInstanceOf(BackstoreError);
      expect((e as BackstoreError).kind).toBe('readonly');
      expect((e as BackstoreError).message).toContain(path);
    }
    expect((await b.read(0, 4096)).equals(pattern(MiB).subarray(0, 4096))).toBe(true);
    await b.close();
  });

  it('a missing file without a size, or read-only, is "gone" and names the file', () => {
    const path = join(dir, 'absent.img');
    for (const opts of [{}, { size: MiB, readOnly: true }]) {
      const e = (() => {
        try {
          FileBackstore.open({ name: 'x', path, ...opts });
        } catch (err) {
          return err;
        }
        return undefined;
      })();
      expect(e).toBeInstanceOf(BackstoreError);
      expect((e as BackstoreError).kind).toBe('gone');
      expect((e as BackstoreError).message).toContain(path);
    }
  });

  it('a file in a missing directory is ENOENT "gone"; a directory or unreadable file is refused', () => {
    expect(() => FileBackstore.open({ name: 'x', path: join(dir, 'no', 'such.img'), size: MiB })).toThrow(
      expect.objectContaining({ kind: 'gone', errno: 'ENOENT' }),
    );
    expect(() => FileBackstore.open({ name: 'x', path: dir, size: MiB })).toThrow(/directory/);
    const locked = join(dir, 'locked.img');
    writeFileSync(locked, pattern(4096));
    chmodSync(locked, 0o000);
    if (process.getuid?.() === 0) {
      // root bypasses permission bits; nothing to observe.
      expect(statSync(locked).mode & 0o777).toBe(0);
    } else {
      expect(() => FileBackstore.open({ name: 'x', path: locked })).toThrow(expect.objectContaining({ errno: 'EACCES' }));
    }
  });

  it('a full file system gives a "nospace" BackstoreError naming the file (1 MiB tmpfs, root only)', async (ctx) => {
    await withSmallTmpfs(ctx, 'vtgt-bs-full-', async (mnt) => {
      for (const engine of ['native', 'fs'] as FileIoEngine[]) {
        const path = join(mnt, `full-${engine}.img`);
        const b = FileBackstore.open({ name: 'full', path, size: 4 * MiB, engine });
        const err = await b.write(0, pattern(2 * MiB), false).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BackstoreError);
        expect((err as BackstoreError).kind).toBe('nospace');
        expect((err as BackstoreError).errno).toBe('ENOSPC');
        expect((err as BackstoreError).message).toContain(path);
        expect((err as BackstoreError).message).toMatch(/free space/);
        // A small write takes the synchronous path on tmpfs; it must fail the same way.
        const small = await b.write(3 * MiB, pattern(4096), false).catch((e: unknown) => e);
        expect(small).toMatchObject({ kind: 'nospace', errno: 'ENOSPC' });
        await b.discard(0, 4 * MiB); // give the space back for the next engine
        await b.close();
        rmSync(path);
      }
    });
  });

  it('ENOSPC surfaces as a "nospace" BackstoreError naming the file', async () => {
    // /dev/full returns ENOSPC on every write: the same path as a full file system.
    if (!statSync('/dev/full', { throwIfNoEntry: false })) return;
    const f = IoFile.openSync('/dev/full');
    const err = await f.write(Buffer.alloc(512), 0, 512, 0).catch((e: unknown) => e);
    await f.close();
    const { toBackstoreError } = await import('../src/backstores/errors.js');
    const be = toBackstoreError(err, 'file backstore full (/dev/full)', 'write at byte 0 length 512');
    expect(be.kind).toBe('nospace');
    expect(be.errno).toBe('ENOSPC');
    expect(be.message).toMatch(/write at byte 0 length 512 on file backstore full \(\/dev\/full\) failed: .*ENOSPC/);
  });
});
