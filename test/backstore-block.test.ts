import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockBackstore } from '../src/backstores/block.js';
import { ioEngineInfo, IoFile } from '../src/native/io.js';

/** Why a real loop device cannot be set up here, or undefined when it can. */
function loopUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not running as root (losetup needs it)';
  if (!existsSync('/dev/loop-control')) return '/dev/loop-control does not exist (no loop driver)';
  try {
    execFileSync('losetup', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'losetup is not installed (Debian package util-linux / mount)';
  }
  return undefined;
}

const reason = loopUnavailable();
if (reason) console.warn(`backstore-block: loop device tests skipped: ${reason}`);
const MiB = 1 << 20;
function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 11 + seed) & 0xff;
  return b;
}

describe.skipIf(reason !== undefined)(`block backstore on a loop device${reason ? ` (skipped: ${reason})` : ''}`, () => {
  let dir: string;
  let image: string;
  let loop: string | undefined;
  let loop4k: string | undefined;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'vtgt-bs-block-'));
    image = join(dir, 'loop.img');
    writeFileSync(image, Buffer.alloc(0));
    execFileSync('truncate', ['-s', `${16 * MiB}`, image]);
    loop = execFileSync('losetup', ['--find', '--show', image], { encoding: 'utf8' }).trim();
    const image4k = join(dir, 'loop4k.img');
    execFileSync('truncate', ['-s', `${8 * MiB}`, image4k]);
    try {
      loop4k = execFileSync('losetup', ['--find', '--show', '--sector-size', '4096', image4k], {
        encoding: 'utf8',
      }).trim();
    } catch {
      loop4k = undefined;
    }
  });

  afterAll(() => {
    for (const dev of [loop, loop4k]) {
      if (dev) execFileSync('losetup', ['-d', dev]);
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('takes size and sector size from the device and round-trips data', async () => {
    const b = BlockBackstore.open({ name: 'blk', path: loop! });
    expect(b.sizeBytes).toBe(16 * MiB);
    expect(b.blockSize).toBe(512);
    expect(b.deviceBlockSize).toBe(512);
    await b.write(MiB, pattern(65536), true);
    await b.flush();
    expect((await b.read(MiB, 65536)).equals(pattern(65536))).toBe(true);
    await b.close();
    // The data reached the backing file (loop devices write through to it).
    const f = IoFile.openSync(image, { readOnly: true });
    const check = Buffer.alloc(65536);
    await f.read(check, 0, 65536, MiB);
    await f.close();
    expect(check.equals(pattern(65536))).toBe(true);
  });

  it('discards (BLKDISCARD) and zeroes (BLKZEROOUT)', async () => {
    const b = BlockBackstore.open({ name: 'blk', path: loop! });
    await b.write(0, pattern(2 * MiB, 4), false);
    await b.writeZeroes(0, MiB, false);
    expect((await b.read(0, MiB)).every((v) => v === 0)).toBe(true);
    expect((await b.read(MiB, 512)).equals(pattern(2 * MiB, 4).subarray(MiB, MiB + 512))).toBe(true);
    if (b.capabilities.discard) {
      await b.discard(MiB, MiB);
      // A loop device over a sparse file punches a hole: the backing file has one there now.
      const f = IoFile.openSync(image, { readOnly: true });
      const hole = await f.seekHole(MiB);
      await f.close();
      expect(hole).toBe(MiB);
    }
    expect(b.capabilities.lbaStatus).toBe(false);
    await b.close();
  });

  it('serves O_DIRECT with unaligned caller buffers', async () => {
    const b = BlockBackstore.open({ name: 'blk', path: loop!, direct: true });
    const src = Buffer.alloc(4096 + 1).subarray(1);
    pattern(4096, 8).copy(src);
    await b.write(4096, src, false);
    const into = Buffer.alloc(4096 + 7).subarray(7);
    await b.read(4096, 4096, into);
    expect(into.equals(pattern(4096, 8))).toBe(true);
    await b.close();
  });

  it('a 4096-byte-sector device defaults to 4096-byte blocks and refuses 512 with O_DIRECT', async () => {
    if (!loop4k) return; // losetup without --sector-size support
    const b = BlockBackstore.open({ name: 'blk4k', path: loop4k });
    expect(b.blockSize).toBe(4096);
    expect(b.sizeBytes).toBe(8 * MiB);
    await b.close();
    expect(() => BlockBackstore.open({ name: 'blk4k', path: loop4k!, blockSize: 512, direct: true })).toThrow(
      /4096-byte sectors/,
    );
  });

  it('reports the device physical block size when it is larger than the served block size', async () => {
    const sysfs = (dev: string): number =>
      Number(readFileSync(`/sys/block/${basename(dev)}/queue/physical_block_size`, 'utf8').trim());
    const b = BlockBackstore.open({ name: 'blk', path: loop! });
    // Same as the logical size (512) on a plain loop device: nothing to report.
    expect(b.physicalBlockSize).toBe(sysfs(loop!) > 512 ? sysfs(loop!) : undefined);
    await b.close();
    if (!loop4k) return;
    expect(sysfs(loop4k)).toBe(4096);
    // 512-byte blocks served from 4096-byte sectors: a 512e disk as the initiator sees it.
    const e512 = BlockBackstore.open({ name: 'blk512e', path: loop4k, blockSize: 512 });
    expect(e512.physicalBlockSize).toBe(4096);
    await e512.write(512, pattern(512, 9), false);
    expect((await e512.read(512, 512)).equals(pattern(512, 9))).toBe(true);
    await e512.close();
    const native = BlockBackstore.open({ name: 'blk4k', path: loop4k });
    expect(native.physicalBlockSize).toBeUndefined();
    await native.close();
  });

  it('refreshSize follows a device that grew (losetup -c after growing the backing file)', async () => {
    const img = join(dir, 'grow.img');
    execFileSync('truncate', ['-s', `${4 * MiB}`, img]);
    const dev = execFileSync('losetup', ['--find', '--show', img], { encoding: 'utf8' }).trim();
    try {
      const b = BlockBackstore.open({ name: 'grow', path: dev });
      expect(b.sizeBytes).toBe(4 * MiB);
      execFileSync('truncate', ['-s', `${6 * MiB}`, img]);
      execFileSync('losetup', ['-c', dev]);
      expect(await b.refreshSize()).toBe(6 * MiB);
      await b.write(5 * MiB, pattern(4096), false);
      expect((await b.read(5 * MiB, 4096)).equals(pattern(4096))).toBe(true);
      await b.close();
    } finally {
      execFileSync('losetup', ['-d', dev]);
    }
  });

  it('never writes to a device on the event-loop thread (its node on devtmpfs is not tmpfs data)', async () => {
    const f = IoFile.openSync(loop!, {});
    expect(f.devInfoSync().isBlockDevice).toBe(true);
    // Reads may still be served from the page cache (RWF_NOWAIT); writes must go to the engine.
    expect(f.syncFastPath).toBe('nowait');
    await f.close();
    const b = BlockBackstore.open({ name: 'blk', path: loop! });
    const before = ioEngineInfo();
    for (let i = 0; i < 4; i++) await b.write(i * 4096, pattern(4096, i), false);
    const after = ioEngineInfo();
    expect(after.syncOps).toBe(before.syncOps);
    expect(after.uringOps + after.poolOps - before.uringOps - before.poolOps).toBeGreaterThanOrEqual(4);
    expect((await b.read(4096, 4096)).equals(pattern(4096, 1))).toBe(true);
    await b.close();
  });

  it('a read-only device must be configured read-only', async () => {
    const img = join(dir, 'ro.img');
    execFileSync('truncate', ['-s', `${MiB}`, img]);
    const dev = execFileSync('losetup', ['--find', '--show', '--read-only', img], { encoding: 'utf8' }).trim();
    try {
      expect(() => BlockBackstore.open({ name: 'rodev', path: dev })).toThrow(
        expect.objectContaining({ kind: 'readonly' }),
      );
      const b = BlockBackstore.open({ name: 'rodev', path: dev, readOnly: true });
      expect(b.readOnly).toBe(true);
      expect((await b.read(0, 512)).every((v) => v === 0)).toBe(true);
      await b.close();
    } finally {
      execFileSync('losetup', ['-d', dev]);
    }
  });

  it('read-only refuses writes', async () => {
    const b = BlockBackstore.open({ name: 'blk', path: loop!, readOnly: true });
    await expect(b.write(0, Buffer.alloc(512), false)).rejects.toMatchObject({ kind: 'readonly' });
    expect(b.capabilities.discard).toBe(false);
    await b.close();
  });
});

describe('block backstore without a device', () => {
  it('refuses paths that are not block devices', () => {
    expect(() => BlockBackstore.open({ name: 'b', path: '/dev/null' })).toThrow(/not a block device/);
    expect(() => BlockBackstore.open({ name: 'b', path: '/nonexistent/dev' })).toThrow(
      expect.objectContaining({ kind: 'gone', errno: 'ENOENT' }),
    );
  });
});
