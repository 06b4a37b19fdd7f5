/**
 * The benchmark's backing files must hold written blocks, not just allocated ones: reads of
 * unwritten extents skip the device, so a file's read cost would depend on how much of it the
 * target's own writes had covered (BENCHMARKS.md section 20). `filefrag -v` shows the extent flags.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeEveryBlock } from '../src/bench/precondition.js';

const dir = mkdtempSync(join(tmpdir(), 'vtgt-precondition-'));

/** Extent lines of `filefrag -v`, or undefined when the tool or the file system cannot list extents. */
function extents(path: string): string[] | undefined {
  try {
    const out = execFileSync('filefrag', ['-v', path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const lines = out.split('\n').filter((l) => /^\s*\d+:\s+\d+\.\.\s*\d+:/.test(l));
    return lines.length ? lines : undefined;
  } catch {
    return undefined;
  }
}

/** Pages of `path` in the page cache (`fincore`), or undefined when it cannot tell. */
function cachedPages(path: string): number | undefined {
  try {
    const out = execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'PAGES', path], { encoding: 'utf8' });
    const n = Number(out.trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

function fileSystemTracksUnwritten(): boolean {
  const probe = join(dir, 'probe.img');
  try {
    execFileSync('fallocate', ['-l', String(1 << 20), probe]);
  } catch {
    return false;
  }
  return extents(probe)?.some((l) => l.includes('unwritten')) ?? false;
}

// Probed once: the file system must report unwritten extents, and fincore must read the probe's cache.
const tracksUnwritten = fileSystemTracksUnwritten();
const seesPageCache = cachedPages(join(dir, 'probe.img')) !== undefined;

describe('benchmark backing preparation', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes zeros over the whole size, replacing what was there', async () => {
    const p = join(dir, 'content.img');
    await writeEveryBlock(p, 5 << 20);
    await writeEveryBlock(p, (3 << 20) + 4096);
    const b = readFileSync(p);
    expect(b.length).toBe((3 << 20) + 4096);
    expect(b.every((x) => x === 0)).toBe(true);
  });

  it.skipIf(!tracksUnwritten)('leaves no unwritten extent where fallocate leaves only unwritten ones', async () => {
    const allocated = join(dir, 'allocated.img');
    execFileSync('fallocate', ['-l', String(8 << 20), allocated]);
    expect(extents(allocated)!.every((l) => l.includes('unwritten'))).toBe(true);

    const written = join(dir, 'written.img');
    execFileSync('fallocate', ['-l', String(8 << 20), written]);
    await writeEveryBlock(written, 8 << 20);
    const e = extents(written)!;
    expect(e.length).toBeGreaterThan(0);
    expect(e.filter((l) => l.includes('unwritten'))).toEqual([]);
    expect(statSync(written).blocks * 512).toBeGreaterThanOrEqual(8 << 20);
  });

  it.skipIf(!tracksUnwritten || !seesPageCache)(
    'writes an O_DIRECT backing with O_DIRECT: written extents, nothing left in the page cache',
    async () => {
      const p = join(dir, 'direct.img');
      await writeEveryBlock(p, 8 << 20, { direct: true });
      expect(extents(p)!.filter((l) => l.includes('unwritten'))).toEqual([]);
      expect(cachedPages(p)).toBe(0);
      expect(readFileSync(p).every((x) => x === 0)).toBe(true);
    },
  );

  it('says which file it could not prepare, and refuses sizes it cannot write whole', async () => {
    await expect(writeEveryBlock(join(dir, 'missing-dir', 'x.img'), 4096)).rejects.toThrow(/missing-dir\/x\.img/);
    await expect(writeEveryBlock(join(dir, 'odd.img'), 4096 + 512)).rejects.toThrow(/multiple of 4096/);
    await expect(writeEveryBlock(join(dir, 'odd.img'), 4096, { direct: true })).rejects.toThrow(/multiple of 1048576/);
  });
});
