import { mkdtempSync, readFileSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BackstoreError } from '../src/backstores/backstore.js';
import { FileBackstore, type FileIoEngine } from '../src/backstores/file.js';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { NullBackstore } from '../src/backstores/null.js';
import { transfersInFlight } from '../src/native/transfer-slots.js';
import { startRead, startWrite } from './helpers/start-io.js';
import { withSmallTmpfs } from './helpers/small-tmpfs.js';

/**
 * startRead / startWrite: the promise-free form the core's READ and WRITE use. A store either finishes
 * before returning (true, nobody is told) or tells the completion exactly once, after returning.
 */

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vtgt-start-io-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MiB = 1 << 20;
const pattern = (n: number, seed: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 11 + seed * 17 + 3) & 0xff));

for (const engine of ['native', 'native-threadpool', 'fs'] as FileIoEngine[]) {
  describe(`file backstore startRead/startWrite (${engine} engine)`, () => {
    it('round-trips data through the engine, told after returning', async () => {
      const path = join(dir, `rt-${engine}.img`);
      // No synchronous fast path: every transfer waits for the engine.
      const b = FileBackstore.open({ name: 'd0', path, size: 4 * MiB, engine, syncFastPath: false });
      const data = pattern(3 * 4096, 1);
      expect(await startWrite(b, MiB, data, true)).toEqual({ now: false, error: undefined });
      const into = Buffer.alloc(3 * 4096, 0xee);
      expect(await startRead(b, MiB, into)).toEqual({ now: false, error: undefined });
      expect(into.equals(data)).toBe(true);
      // Many at once: each told once, with its own data.
      const n = 300;
      const writes = await Promise.all(Array.from({ length: n }, (_, i) => startWrite(b, i * 4096, pattern(4096, i))));
      expect(writes.every((t) => t.error === undefined)).toBe(true);
      const outs = Array.from({ length: n }, () => Buffer.alloc(4096));
      const reads = await Promise.all(outs.map((o, i) => startRead(b, i * 4096, o)));
      expect(reads.every((t) => t.error === undefined)).toBe(true);
      for (let i = 0; i < n; i++) expect(outs[i]!.equals(pattern(4096, i))).toBe(true);
      expect(transfersInFlight()).toBe(0);
      await b.close();
      expect(readFileSync(path).subarray(0, 4096).equals(pattern(4096, 0))).toBe(true);
    });

    it('O_DIRECT: an unaligned buffer is copied through one aligned buffer per transfer, not two', async (ctx) => {
      // /var/tmp is a disk file system on most hosts; tmpfs refuses O_DIRECT.
      const ddir = mkdtempSync(join('/var/tmp', 'vtgt-start-io-direct-'));
      try {
        let b: FileBackstore;
        try {
          b = FileBackstore.open({ name: 'dio', path: join(ddir, 'd.img'), size: MiB, engine, direct: true });
        } catch (e) {
          expect((e as Error).message).toMatch(/O_DIRECT/);
          ctx.skip();
          return;
        }
        // One byte into a larger allocation: not 4096-aligned whatever the allocator returned.
        const data = Buffer.concat([Buffer.alloc(1), pattern(8192, 5)]).subarray(1);
        expect((await startWrite(b, 4096, data)).error).toBeUndefined();
        expect(b.bounced).toBe(1);
        const into = Buffer.alloc(8193, 0xee).subarray(1);
        expect((await startRead(b, 4096, into)).error).toBeUndefined();
        expect(b.bounced).toBe(2);
        expect(into.equals(pattern(8192, 5))).toBe(true);
        await b.close();
      } finally {
        rmSync(ddir, { recursive: true, force: true });
      }
    });

    it('zero-fills a read past the end of a file truncated underneath', async () => {
      const path = join(dir, `shrunk-${engine}.img`);
      const b = FileBackstore.open({ name: 's', path, size: MiB, engine, syncFastPath: false });
      expect((await startWrite(b, 0, pattern(8192, 2))).error).toBeUndefined();
      truncateSync(path, 4096);
      const into = Buffer.alloc(8192, 0xff);
      expect(await startRead(b, 0, into)).toEqual({ now: false, error: undefined });
      expect(into.subarray(0, 4096).equals(pattern(8192, 2).subarray(0, 4096))).toBe(true);
      expect(into.subarray(4096).every((v) => v === 0)).toBe(true);
      await b.close();
    });
  });
}

describe('file backstore startRead/startWrite: checks and errors', () => {
  it('refuses a range past the end or a write to a read-only store by throwing, with nothing started', async () => {
    const path = join(dir, 'checks.img');
    const b = FileBackstore.open({ name: 'c', path, size: MiB, syncFastPath: false });
    const past = await startRead(b, MiB, Buffer.alloc(512));
    expect(past.now).toBe(true);
    expect((past.error as Error).message).toContain(path);
    await b.close();
    const ro = FileBackstore.open({ name: 'c', path, readOnly: true });
    const refused = await startWrite(ro, 0, Buffer.alloc(512));
    expect(refused.error).toBeInstanceOf(BackstoreError);
    expect((refused.error as BackstoreError).kind).toBe('readonly');
    expect(transfersInFlight()).toBe(0);
    await ro.close();
  });

  it('a small read on a file with the fast path may finish at once; the data is there either way', async () => {
    const path = join(dir, 'fast.img');
    const b = FileBackstore.open({ name: 'f', path, size: MiB });
    expect((await startWrite(b, 8192, pattern(4096, 3))).error).toBeUndefined();
    const into = Buffer.alloc(4096);
    expect((await startRead(b, 8192, into)).error).toBeUndefined();
    expect(into.equals(pattern(4096, 3))).toBe(true);
    await b.close();
  });

  it('an engine error is told later as a "nospace" BackstoreError naming the file (1 MiB tmpfs, root only)', async (ctx) => {
    await withSmallTmpfs(ctx, 'vtgt-start-io-full-', async (mnt) => {
      const path = join(mnt, 'full.img');
      const b = FileBackstore.open({ name: 'full', path, size: 4 * MiB });
      const told = await startWrite(b, 0, pattern(2 * MiB, 5));
      expect(told.now).toBe(false);
      expect(told.error).toBeInstanceOf(BackstoreError);
      expect(told.error).toMatchObject({ kind: 'nospace', errno: 'ENOSPC' });
      expect((told.error as Error).message).toContain(path);
      // The store goes on working after the failure.
      expect((await startWrite(b, 0, pattern(4096, 6))).error).toBeUndefined();
      const into = Buffer.alloc(4096);
      expect((await startRead(b, 0, into)).error).toBeUndefined();
      expect(into.equals(pattern(4096, 6))).toBe(true);
      expect(transfersInFlight()).toBe(0);
      await b.close();
    });
  });
});

describe('memory and null backstores finish at once', () => {
  it('memory: round trip, and a range past the end throws', async () => {
    const m = new MemoryBackstore({ name: 'm', size: MiB });
    expect(await startWrite(m, 4096, pattern(1024, 7))).toEqual({ now: true, error: undefined });
    const into = Buffer.alloc(1024);
    expect(await startRead(m, 4096, into)).toEqual({ now: true, error: undefined });
    expect(into.equals(pattern(1024, 7))).toBe(true);
    expect((await startRead(m, MiB, Buffer.alloc(512))).error).toBeInstanceOf(Error);
  });

  it('null: reads are zeroes, writes are accepted unless read-only', async () => {
    const n = new NullBackstore({ name: 'n', size: MiB });
    const into = Buffer.alloc(1024, 0xaa);
    expect(await startRead(n, 0, into)).toEqual({ now: true, error: undefined });
    expect(into.every((v) => v === 0)).toBe(true);
    expect(await startWrite(n, 0, pattern(512, 8))).toEqual({ now: true, error: undefined });
    const ro = new NullBackstore({ name: 'n', size: MiB, readOnly: true });
    expect((await startWrite(ro, 0, pattern(512, 8))).error).toMatchObject({ kind: 'readonly' });
  });
});
