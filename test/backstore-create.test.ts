import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BackstoreError,
  BackstoreSpecError,
  createBackstore,
  FileBackstore,
  MemoryBackstore,
  NullBackstore,
  validateBackstoreSpec,
  type BackstoreSpec,
} from '../src/backstores/index.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vtgt-bs-create-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('createBackstore', () => {
  it('builds each type from a spec', async () => {
    const m = createBackstore({ type: 'memory', name: 'm0', size: 1 << 20, blockSize: 4096 });
    expect(m).toBeInstanceOf(MemoryBackstore);
    expect(m.blockSize).toBe(4096);
    const n = createBackstore({ type: 'null', name: 'n0', size: 1 << 30, removable: true });
    expect(n).toBeInstanceOf(NullBackstore);
    expect(n.capabilities.removable).toBe(true);
    const path = join(dir, 'disk0.img');
    const f = createBackstore({ type: 'file', name: 'disk0', path, size: 1 << 24, cacheMode: 'writethrough' });
    expect(f).toBeInstanceOf(FileBackstore);
    expect(f.cacheMode).toBe('writethrough');
    expect(f.describe).toBe(`file backstore disk0 (${path})`);
    expect(statSync(path).size).toBe(1 << 24);
    await f.close();
    // Reopen without a size: the file's size is used.
    const again = createBackstore({ type: 'file', name: 'disk0', path, readOnly: true, engine: 'fs' });
    expect(again.sizeBytes).toBe(1 << 24);
    expect(again.readOnly).toBe(true);
    await again.close();
  });

  const bad: Array<[string, unknown, RegExp]> = [
    ['not an object', 'file', /must be an object/],
    ['missing name', { type: 'memory', size: 512 }, /name/],
    ['name with spaces', { type: 'memory', name: 'a b', size: 512 }, /name "a b" is invalid/],
    ['unknown type', { type: 'rbd', name: 'x' }, /type must be one of file, block, memory, null/],
    ['unknown field', { type: 'memory', name: 'x', size: 512, sise: 1 }, /unknown field "sise"/],
    ['odd block size', { type: 'memory', name: 'x', size: 1024, blockSize: 1024 }, /blockSize must be 512 or 4096/],
    ['size not a block multiple', { type: 'memory', name: 'x', size: 1000 }, /not a multiple of the 512-byte/],
    ['negative size', { type: 'memory', name: 'x', size: -512 }, /positive whole number/],
    ['string size', { type: 'memory', name: 'x', size: '1G' }, /positive whole number/],
    ['memory without size', { type: 'memory', name: 'x' }, /size is required/],
    ['memory with path', { type: 'memory', name: 'x', size: 512, path: '/tmp/x' }, /takes no path/],
    ['memory write-back', { type: 'memory', name: 'x', size: 512, cacheMode: 'writeback' }, /no write cache/],
    ['file without path', { type: 'file', name: 'x', size: 512 }, /path is required/],
    ['block with size', { type: 'block', name: 'x', path: '/dev/null', size: 512 }, /size comes from the device/],
    ['bad cache mode', { type: 'file', name: 'x', path: '/tmp/x', cacheMode: 'none' }, /cacheMode must be/],
    ['non-boolean readOnly', { type: 'null', name: 'x', size: 512, readOnly: 'yes' }, /readOnly must be true or false/],
    ['engine on memory', { type: 'memory', name: 'x', size: 512, engine: 'fs' }, /file backstores only/],
    ['a device window without O_DIRECT', { type: 'file', name: 'x', path: '/tmp/x', deviceWindowBytes: 1 << 20 }, /O_DIRECT stores only/],
    ['a negative device window', { type: 'file', name: 'x', path: '/tmp/x', direct: true, deviceWindowBytes: -1 }, /whole number of bytes/],
  ];
  for (const [what, spec, msg] of bad) {
    it(`rejects a spec with ${what}`, () => {
      expect(() => validateBackstoreSpec(spec)).toThrow(msg);
      expect(() => createBackstore(spec as BackstoreSpec)).toThrow(BackstoreSpecError);
    });
  }

  it('logs opening with the name and path under their own keys', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'debug' }, { write: (l: string) => void lines.push(l) });
    const path = join(dir, 'logged "odd" name.img');
    const f = createBackstore({ type: 'file', name: 'logged', path, size: 1 << 20 }, { logger });
    await f.close();
    const rec = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((r) => r.msg === 'file backstore created');
    expect(rec).toMatchObject({ backstore: 'logged', path, size: 1 << 20, cacheMode: 'writeback' });
  });

  it('gives an O_DIRECT file store the device window it is asked for, the default, or none', async () => {
    // /var/tmp: tmpfs refuses O_DIRECT.
    const d = mkdtempSync(join('/var/tmp', 'vtgt-window-spec-'));
    try {
      const open = (deviceWindowBytes?: number) =>
        createBackstore({ type: 'file', name: 'w', path: join(d, 'w.img'), size: 1 << 20, direct: true, ...(deviceWindowBytes === undefined ? {} : { deviceWindowBytes }) }) as FileBackstore;
      let f: FileBackstore;
      try {
        f = open();
      } catch (e) {
        expect((e as Error).message).toMatch(/O_DIRECT/);
        return;
      }
      expect(f.deviceWindowBytes).toBe(512 * 1024);
      await f.close();
      for (const w of [2 << 20, 0]) {
        const g = open(w);
        expect(g.deviceWindowBytes).toBe(w);
        await g.close();
      }
      const buffered = createBackstore({ type: 'file', name: 'b', path: join(d, 'b.img'), size: 1 << 20 }) as FileBackstore;
      expect(buffered.deviceWindowBytes).toBe(0);
      await buffered.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });

  it('reports the failing field', () => {
    try {
      validateBackstoreSpec({ type: 'memory', name: 'x', size: 3 });
    } catch (e) {
      expect((e as BackstoreSpecError).field).toBe('size');
      return;
    }
    throw new Error('expected a BackstoreSpecError');
  });

  it('refuses a block backstore on something that is not a block device', () => {
    expect(() => createBackstore({ type: 'block', name: 'b', path: '/dev/null' })).toThrow(BackstoreError);
    expect(() => createBackstore({ type: 'block', name: 'b', path: '/dev/null' })).toThrow(/not a block device/);
    expect(() => createBackstore({ type: 'file', name: 'b', path: join(dir, 'nofile.img') })).toThrow(/give a size/);
  });
});
