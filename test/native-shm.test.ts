import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SharedRegion } from '../src/native/shm.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vtgt-shm-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('SharedRegion basics', () => {
  it('creates a file of the requested size and shares writes with the file', () => {
    const path = join(dir, 'a.shm');
    const r = SharedRegion.create(path, 8192);
    expect(r.size).toBe(8192);
    expect(statSync(path).size).toBe(8192);
    r.write(100, Buffer.from('hello guest'));
    // MAP_SHARED: the file's page cache is the mapping.
    expect(readFileSync(path).subarray(100, 111).toString()).toBe('hello guest');
    const out = Buffer.alloc(11);
    r.read(100, out);
    expect(out.toString()).toBe('hello guest');
    r.close();
  });

  it('opens an existing file whole, read-only refuses writes', () => {
    const path = join(dir, 'b.shm');
    writeFileSync(path, pattern(5000));
    const r = SharedRegion.open(path, { readOnly: true });
    expect(r.size).toBe(5000);
    const out = Buffer.alloc(5000);
    r.read(0, out);
    expect(out.equals(pattern(5000))).toBe(true);
    expect(() => r.write(0, Buffer.alloc(1))).toThrow(/read-only/);
    expect(() => r.store32le(0, 1)).toThrow(/read-only/);
    r.close();
  });

  it('reads and writes with buffer offsets and explicit lengths', () => {
    const r = SharedRegion.createAnonymous(4096);
    const src = pattern(64, 7);
    r.write(10, src, 8, 16);
    const dst = Buffer.alloc(32, 0xee);
    r.read(10, dst, 4, 16);
    expect(dst.subarray(4, 20).equals(src.subarray(8, 24))).toBe(true);
    expect(dst[3]).toBe(0xee);
    expect(dst[20]).toBe(0xee);
    r.close();
  });

  it('gathers and scatters segment lists', () => {
    const r = SharedRegion.createAnonymous(1 << 16);
    const segs = [
      { offset: 4096, length: 100 },
      { offset: 0, length: 10 },
      { offset: 60000, length: 5536 }, // ends exactly at the region end
      { offset: 77, length: 0 },
    ];
    const src = pattern(100 + 10 + 5536, 3);
    expect(r.scatter(segs, src)).toBe(5646);
    const check = Buffer.alloc(100);
    r.read(4096, check);
    expect(check.equals(src.subarray(0, 100))).toBe(true);
    const dst = Buffer.alloc(5646 + 5);
    expect(r.gather(segs, dst, 5)).toBe(5646);
    expect(dst.subarray(5).equals(src)).toBe(true);
    r.close();
  });

  it('compares segment lists with a buffer where they lie', () => {
    const r = SharedRegion.createAnonymous(1 << 16);
    const segs = [
      { offset: 8192, length: 4096 },
      { offset: 0, length: 100 },
      { offset: 60000, length: 5536 },
    ];
    const src = pattern(4096 + 100 + 5536, 7);
    r.scatter(segs, src);
    expect(r.equals(segs, src)).toBe(true);
    const longer = Buffer.concat([Buffer.alloc(3, 0xee), src, Buffer.alloc(9, 0xee)]);
    expect(r.equals(segs, longer, 3)).toBe(true); // compares as many bytes as the segments hold
    for (const at of [0, 4095, 4096, 4196, src.length - 1]) {
      const other = Buffer.from(src);
      other[at] ^= 0x01;
      expect(r.equals(segs, other)).toBe(false);
    }
    expect(() => r.equals(segs, src.subarray(1))).toThrow(/total 9732 bytes but the buffer has room for 9731/);
    expect(() => r.equals([{ offset: 65000, length: 1000 }], Buffer.alloc(1000))).toThrow(/exceeds region size/);
    expect(() => r.equals(segs, 'x' as unknown as Buffer)).toThrow(/expected must be a Buffer/);
    r.close();
    expect(() => r.equals(segs, src)).toThrow(/closed/);
  });

  it('copies between regions and within one region (overlapping)', () => {
    const a = SharedRegion.createAnonymous(4096);
    const b = SharedRegion.createAnonymous(8192);
    a.write(0, pattern(4096, 9));
    SharedRegion.copy(a, 1000, b, 8000, 192);
    const out = Buffer.alloc(192);
    b.read(8000, out);
    expect(out.equals(pattern(4096, 9).subarray(1000, 1192))).toBe(true);
    SharedRegion.copy(a, 0, a, 1, 100); // memmove semantics
    const o2 = Buffer.alloc(100);
    a.read(1, o2);
    expect(o2.equals(pattern(4096, 9).subarray(0, 100))).toBe(true);
    expect(() => SharedRegion.copy(a, 4000, b, 0, 97)).toThrow(/4000 \+ length 97 exceeds source region size 4096/);
    expect(() => SharedRegion.copy(a, 0, b, 8100, 93)).toThrow(RangeError);
    a.close();
    b.close();
  });

  it('loads and stores 32-bit ring indices in both byte orders', () => {
    const r = SharedRegion.createAnonymous(64);
    r.store32le(8, 0x11223344);
    const raw = Buffer.alloc(4);
    r.read(8, raw);
    expect([...raw]).toEqual([0x44, 0x33, 0x22, 0x11]);
    expect(r.load32le(8)).toBe(0x11223344);
    expect(r.load32be(8)).toBe(0x44332211);
    r.store32be(60, 0xdeadbeef);
    r.read(60, raw);
    expect([...raw]).toEqual([0xde, 0xad, 0xbe, 0xef]);
    expect(r.load32le(60)).toBe(0xefbeadde);
    expect(() => r.store32le(4, 2 ** 32)).toThrow(RangeError);
    r.close();
  });
});

describe('SharedRegion hostile offsets', () => {
  const r = SharedRegion.createAnonymous(4096);
  const buf = Buffer.alloc(64);
  const bad: Array<[string, () => unknown, RegExp | typeof RangeError]> = [
    ['negative offset', () => r.read(-1, buf), RangeError],
    ['fractional offset', () => r.read(1.5, buf), RangeError],
    ['NaN offset', () => r.read(Number.NaN, buf), RangeError],
    ['Infinity offset', () => r.read(Number.POSITIVE_INFINITY, buf), RangeError],
    ['offset past end', () => r.read(4096, buf, 0, 1), /offset 4096 \+ length 1 exceeds region size 4096/],
    ['offset + length past end', () => r.write(4090, buf, 0, 7), /4090 \+ length 7 exceeds region size 4096/],
    ['huge offset (overflow)', () => r.read(2 ** 53 - 1, buf, 0, 2), RangeError],
    ['length past buffer', () => r.read(0, buf, 0, 65), /buffer offset 0 \+ length 65 exceeds buffer size 64/],
    ['buffer offset past buffer', () => r.read(0, buf, 65), RangeError],
    ['string offset', () => r.read('0' as unknown as number, buf), RangeError],
    ['non-buffer dst', () => r.read(0, [1, 2] as unknown as Buffer), TypeError],
    ['segment past end', () => r.gather([{ offset: 4000, length: 97 }], Buffer.alloc(200)), /segment 0 offset 4000/],
    ['segment negative length', () => r.gather([{ offset: 0, length: -1 }], buf), RangeError],
    ['segments overflow dst', () => r.gather([{ offset: 0, length: 40 }, { offset: 0, length: 40 }], buf), /total 80/],
    ['segment not an object', () => r.scatter([null as unknown as { offset: number; length: number }], buf), TypeError],
    ['scatter beyond src', () => r.scatter([{ offset: 0, length: 10 }], buf, 60), /room for 4/],
    ['unaligned load', () => r.load32le(2), /not 4-byte aligned/],
    ['load at end', () => r.load32le(4096), RangeError],
  ];
  for (const [name, fn, want] of bad) {
    it(`rejects ${name}`, () => {
      expect(fn).toThrow(want);
    });
  }

  it('rejects zero-sized regions and any use after close', () => {
    expect(() => SharedRegion.createAnonymous(0)).toThrow(RangeError);
    expect(() => SharedRegion.create(join(dir, 'z'), 0)).toThrow(RangeError);
    const c = SharedRegion.createAnonymous(128);
    c.close();
    c.close();
    expect(() => c.read(0, buf, 0, 1)).toThrow(/closed/);
    expect(() => c.load32le(0)).toThrow(/closed/);
    expect(() => SharedRegion.copy(r, 0, c, 0, 1)).toThrow(/closed/);
  });

  it('the C++ layer rechecks bounds when the TypeScript checks are bypassed', async () => {
    const { loadNative } = await import('../src/native/index.js');
    const n = loadNative();
    const h = n.shmCreateAnonymous(256);
    expect(() => h.read(250, Buffer.alloc(16), 0, 16)).toThrow(/250 \+ length 16 exceeds region size 256/);
    expect(() => h.read(0, Buffer.alloc(16), 8, 16)).toThrow(/exceeds buffer size 16/);
    expect(() => h.read(-1, Buffer.alloc(16), 0, 1)).toThrow(TypeError);
    expect(() => h.gather(new Float64Array([0, 300]), Buffer.alloc(400), 0)).toThrow(/segment 0/);
    expect(() => h.gather(new Float64Array([0, 1.5]), Buffer.alloc(400), 0)).toThrow(/integers/);
    expect(() => h.gather(new Float64Array([0, 100, 0, 100]), Buffer.alloc(150), 0)).toThrow(/total 200/);
    expect(() => h.gather(new Float64Array([0]), Buffer.alloc(150), 0)).toThrow(/pairs/);
    expect(() => h.load32(3, false)).toThrow(/aligned/);
    expect(() => n.shmCopy(h, 0, {} as never, 0, 1)).toThrow(TypeError);
    h.close();
    expect(() => h.read(0, Buffer.alloc(1), 0, 1)).toThrow(/closed/);
  });

  it('reports missing files with the path', () => {
    expect(() => SharedRegion.open(join(dir, 'missing.shm'))).toThrow(/ENOENT.*missing\.shm|missing\.shm.*ENOENT/);
  });
});

describe('SharedRegion fuzz', () => {
  it('random hostile offsets and lengths either copy in bounds or throw RangeError, never crash', () => {
    const size = 8192;
    const r = SharedRegion.createAnonymous(size);
    const buf = Buffer.alloc(4096);
    let seed = 0x9e3779b9;
    const rnd = (): number => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return seed >>> 0;
    };
    const pick = (): number => {
      const k = rnd() % 8;
      if (k === 0) return -(rnd() % 100);
      if (k === 1) return 2 ** 53 - (rnd() % 4);
      if (k === 2) return size - (rnd() % 8);
      if (k === 3) return (rnd() % 1000) + 0.5;
      return rnd() % (size + 64);
    };
    let ok = 0;
    let rejected = 0;
    for (let i = 0; i < 3000; i++) {
      const off = pick();
      const len = pick();
      const bufOff = rnd() % 4200;
      const inBounds =
        Number.isSafeInteger(off) && Number.isSafeInteger(len) && off >= 0 && len >= 0 &&
        off + len <= size && bufOff + len <= buf.length;
      try {
        if (i % 3 === 0) r.read(off, buf, bufOff, len);
        else if (i % 3 === 1) r.write(off, buf, bufOff, len);
        else r.gather([{ offset: off, length: len }], buf, bufOff);
        expect(inBounds).toBe(true);
        ok++;
      } catch (e) {
        expect(e).toBeInstanceOf(RangeError);
        expect(inBounds).toBe(false);
        rejected++;
      }
    }
    expect(ok).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(100);
    r.close();
  });
});

describe('SharedRegion across processes', () => {
  it('a child process maps the same memfd and sees and publishes data', () => {
    const r = SharedRegion.createAnonymous(8192);
    r.write(1024, Buffer.from('from parent'));
    r.store32le(0, 41);
    const addon = join(process.cwd(), 'build', 'Release', 'vtgt_native.node');
    const child = `
      const n = require(process.env.VTGT_NATIVE_ADDON || ${JSON.stringify(addon)});
      const h = n.shmOpen(process.argv[1], false);
      const b = Buffer.alloc(11);
      h.read(1024, b, 0, 11);
      if (b.toString() !== 'from parent') process.exit(3);
      const idx = h.load32(0, false);
      const m = Buffer.from('from child ' + idx); h.write(2048, m, 0, m.length);
      h.store32(0, idx + 1, false);
      h.close();
    `;
    const res = spawnSync(process.execPath, ['-e', child, `/proc/${process.pid}/fd/${r.fd}`], { encoding: 'utf8' });
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(r.load32le(0)).toBe(42);
    const out = Buffer.alloc(13);
    r.read(2048, out);
    expect(out.toString()).toBe('from child 41');
    r.close();
  });

  it('a peer truncating a file-backed region makes accesses fail with EFAULT instead of killing us', () => {
    const path = join(dir, 'shrink.shm');
    const r = SharedRegion.create(path, 3 * 4096);
    r.write(8192, Buffer.from('tail'));
    const res = spawnSync(process.execPath, ['-e', `require('fs').truncateSync(process.argv[1], 4096)`, path]);
    expect(res.status).toBe(0);
    const out = Buffer.alloc(4);
    expect(() => r.read(8192, out)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    expect(() => r.read(8192, out)).toThrow(/truncated by another process/);
    expect(() => r.store32le(8192, 1)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    expect(() => r.gather([{ offset: 8190, length: 4 }], out)).toThrow(expect.objectContaining({ code: 'EFAULT' }));
    r.read(0, out); // the still-backed part keeps working
    r.close();
  });

  it('ring protocol across processes: producer index published after the entry, consumer sees both', async () => {
    // The child produces 2000 entries into a 64-slot ring (slot = 16 bytes, index at 0, consumer index
    // at 4); the parent consumes. An entry read after its index is visible must be complete.
    const r = SharedRegion.createAnonymous(8 + 64 * 16);
    const addon = join(process.cwd(), 'build', 'Release', 'vtgt_native.node');
    const producer = `
      const n = require(process.env.VTGT_NATIVE_ADDON || ${JSON.stringify(addon)});
      const h = n.shmOpen(process.argv[1], false);
      const e = Buffer.alloc(16);
      for (let i = 0; i < 2000; i++) {
        while (i - h.load32(4, false) >= 64) {}                 // ring full: wait for the consumer
        e.writeUInt32LE(i, 0); e.writeUInt32LE((i ^ 0xa5a5a5a5) >>> 0, 12);
        h.write(8 + (i % 64) * 16, e, 0, 16);
        h.store32(0, i + 1, false);                                // publish
      }
      h.close();
    `;
    const { spawn } = await import('node:child_process');
    const child = spawn(process.execPath, ['-e', producer, `/proc/${process.pid}/fd/${r.fd}`], { stdio: 'inherit' });
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    const e = Buffer.alloc(16);
    let consumed = 0;
    let bad = 0;
    const deadline = Date.now() + 20_000;
    while (consumed < 2000 && Date.now() < deadline) {
      const prod = r.load32le(0);
      while (consumed < prod) {
        r.read(8 + (consumed % 64) * 16, e);
        if (e.readUInt32LE(0) !== consumed || e.readUInt32LE(12) !== (consumed ^ 0xa5a5a5a5) >>> 0) bad++;
        consumed++;
        r.store32le(4, consumed);
      }
      if (consumed < 2000) await new Promise((res) => setImmediate(res));
    }
    expect(await exited).toBe(0);
    expect(consumed).toBe(2000);
    expect(bad).toBe(0);
    r.close();
  });

  it('a child cannot shrink a sealed memfd under the mapping', () => {
    const r = SharedRegion.createAnonymous(8192);
    const res = spawnSync(
      process.execPath,
      ['-e', `require('fs').truncateSync(process.argv[1], 10)`, `/proc/${process.pid}/fd/${r.fd}`],
      { encoding: 'utf8' },
    );
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(/EPERM/);
    const tail = Buffer.alloc(4);
    r.read(8188, tail); // still mapped and readable
    expect(tail.length).toBe(4);
    r.close();
  });
});
