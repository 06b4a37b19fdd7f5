import { describe, expect, it } from 'vitest';
import { BackstoreError } from '../src/backstores/backstore.js';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { NullBackstore } from '../src/backstores/null.js';

const GiB = 1 << 30;
function pattern(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 5 + seed) & 0xff;
  return b;
}

describe('memory backstore', () => {
  it('a 1 GiB store costs nothing until written', async () => {
    const m = new MemoryBackstore({ name: 'm', size: GiB });
    expect(m.allocatedBytes).toBe(0);
    expect((await m.read(GiB - 4096, 4096)).every((v) => v === 0)).toBe(true);
    expect(m.allocatedBytes).toBe(0);
    expect(await m.mapStatus(0, GiB)).toEqual([{ offset: 0, length: GiB, mapped: false }]);
  });

  it('round-trips writes that span chunks', async () => {
    const m = new MemoryBackstore({ name: 'm', size: 4 << 20, chunkSize: 65536 });
    const data = pattern(200 * 512, 3);
    await m.write(65536 - 1024, data, true);
    expect((await m.read(65536 - 1024, data.length)).equals(data)).toBe(true);
    expect(m.allocatedBytes).toBe(3 * 65536);
    const into = Buffer.alloc(2048, 0xff);
    await m.read(65536 - 1024, 1024, into);
    expect(into.subarray(0, 1024).equals(data.subarray(0, 1024))).toBe(true);
    expect(into[1024]).toBe(0xff);
  });

  it('discard frees whole chunks and zeroes partial ones; mapStatus follows', async () => {
    const cs = 65536;
    const m = new MemoryBackstore({ name: 'm', size: 16 * cs, chunkSize: cs });
    await m.write(0, pattern(4 * cs), false);
    await m.discard(cs, 2 * cs);
    expect(m.allocatedBytes).toBe(2 * cs);
    await m.discard(3 * cs, 512); // partial: stays allocated, reads zero
    expect(m.allocatedBytes).toBe(2 * cs);
    expect((await m.read(3 * cs, 512)).every((v) => v === 0)).toBe(true);
    expect((await m.read(3 * cs + 512, 512)).equals(pattern(4 * cs).subarray(3 * cs + 512, 3 * cs + 1024))).toBe(true);
    expect(await m.mapStatus(0, 16 * cs)).toEqual([
      { offset: 0, length: cs, mapped: true },
      { offset: cs, length: 2 * cs, mapped: false },
      { offset: 3 * cs, length: cs, mapped: true },
      { offset: 4 * cs, length: 12 * cs, mapped: false },
    ]);
    expect(await m.mapStatus(3 * cs + 512, 512)).toEqual([{ offset: 3 * cs + 512, length: cs - 512, mapped: true }]);
    await m.writeZeroes(0, cs, false);
    expect(m.allocatedBytes).toBe(cs);
  });

  it('maps status of a huge sparse store quickly (walks allocations, not the address space)', async () => {
    const size = 2 ** 50; // 1 PiB
    const m = new MemoryBackstore({ name: 'huge', size, blockSize: 4096 });
    await m.write(size - 4096, pattern(4096), false);
    const st = await m.mapStatus(0, size);
    const chunk = 1 << 20; // the default allocation unit
    expect(st).toEqual([
      { offset: 0, length: size - chunk, mapped: false },
      { offset: size - chunk, length: chunk, mapped: true },
    ]);
  });

  it('lends a READ the stored bytes; writes and discards while they are lent land in a copy', async () => {
    const cs = 65536;
    const m = new MemoryBackstore({ name: 'm', size: 4 * cs, chunkSize: cs });
    await m.write(cs, pattern(cs, 1), false);
    const loan = m.lendRead(cs + 4096, 8192)!;
    expect(loan.data.equals(pattern(cs, 1).subarray(4096, 4096 + 8192))).toBe(true);
    const second = m.lendRead(cs + 4096, 8192)!;
    expect(second.data.buffer).toBe(loan.data.buffer); // the same stored bytes, not copies
    await m.write(cs + 4096, pattern(512, 7), false);
    await m.discard(cs + 8192, 512);
    // Both READs still see the data as it was when they ran...
    expect(loan.data.equals(pattern(cs, 1).subarray(4096, 4096 + 8192))).toBe(true);
    expect(second.data.equals(pattern(cs, 1).subarray(4096, 4096 + 8192))).toBe(true);
    // ...while the store has the new data, in the same allocation.
    const now = await m.read(cs + 4096, 8192);
    expect(now.subarray(0, 512).equals(pattern(512, 7))).toBe(true);
    expect(now.subarray(4096, 4608).every((v) => v === 0)).toBe(true);
    expect(m.allocatedBytes).toBe(cs);
    loan.release();
    loan.release(); // a second release changes nothing
    second.release();
    // Nothing is lent any more: a write changes the chunk in place, which a new loan sees.
    const third = m.lendRead(cs, 512)!;
    third.release();
    await m.write(cs, pattern(512, 9), false);
    expect(third.data.equals(pattern(512, 9))).toBe(true);
  });

  it('writes beside the bytes a READ is sending go in place; only overlapping ones copy the chunk', async () => {
    const cs = 1 << 20;
    const m = new MemoryBackstore({ name: 'm', size: 2 * cs });
    await m.write(0, pattern(cs, 2), false);
    const loan = m.lendRead(4096, 4096)!;
    await m.write(8192, pattern(512, 3), false); // beside the loan
    m.lendWrite(0, 4096)!.fill(0x44); // right before it, ends where it starts
    const beside = m.lendRead(8192, 512)!;
    expect(beside.data.buffer).toBe(loan.data.buffer); // the same chunk: nothing was copied
    expect(beside.data.equals(pattern(512, 3))).toBe(true);
    beside.release();
    await m.write(4096 + 3584, pattern(512, 4), false); // the loan's last block
    const after = m.lendRead(8192, 512)!;
    expect(after.data.buffer).not.toBe(loan.data.buffer); // copied first
    expect(after.data.equals(pattern(512, 3))).toBe(true); // with everything written before
    expect(loan.data.equals(pattern(cs, 2).subarray(4096, 8192))).toBe(true);
    expect((await m.read(0, 4096)).every((v) => v === 0x44)).toBe(true);
    after.release();
    loan.release();
  });

  it('lends zeroes for unwritten ranges and nothing across chunks; checks ranges like read', async () => {
    const cs = 65536;
    const m = new MemoryBackstore({ name: 'm', size: 4 * cs, chunkSize: cs });
    const zero = m.lendRead(2 * cs, cs)!;
    expect(zero.data.length).toBe(cs);
    expect(zero.data.every((v) => v === 0)).toBe(true);
    expect(m.allocatedBytes).toBe(0);
    await m.write(cs - 512, pattern(1024), false);
    expect(m.lendRead(cs - 512, 1024)).toBeUndefined(); // spans two chunks: the caller reads instead
    expect(m.lendRead(0, 0)).toBeUndefined();
    expect(() => m.lendRead(100, 512)).toThrow(RangeError);
    expect(() => m.lendRead(4 * cs, 512)).toThrow(/past the end/);
    await m.write(2 * cs, pattern(512, 4), false);
    expect(zero.data.every((v) => v === 0)).toBe(true); // the shared zeroes are never written
  });

  it('lends a WRITE the bytes to fill: never those a READ holds; refuses as write does', async () => {
    const cs = 65536;
    const m = new MemoryBackstore({ name: 'm', size: 4 * cs, chunkSize: cs, maxAllocatedBytes: 2 * cs });
    const target = m.lendWrite(cs + 512, 1024)!;
    target.fill(0x71);
    expect(m.allocatedBytes).toBe(cs);
    expect((await m.read(cs, 2048)).equals(Buffer.concat([Buffer.alloc(512), Buffer.alloc(1024, 0x71), Buffer.alloc(512)]))).toBe(true);
    const held = m.lendRead(cs + 512, 1024)!;
    m.lendWrite(cs + 512, 1024)!.fill(0x72);
    expect(held.data.every((v) => v === 0x71)).toBe(true);
    expect((await m.read(cs + 512, 1024)).every((v) => v === 0x72)).toBe(true);
    held.release();
    expect(m.lendWrite(cs - 512, 1024)).toBeUndefined(); // across two chunks
    m.lendWrite(0, 512);
    expect(() => m.lendWrite(2 * cs, 512)).toThrow(/memory limit of 131072 bytes/);
    // Across chunks at the limit: not lent, and the usual write refuses it (counting its memory once).
    expect(m.lendWrite(3 * cs - 512, 1024)).toBeUndefined();
    await expect(m.write(3 * cs - 512, pattern(1024, 5), false)).rejects.toThrow(/memory limit of 131072 bytes/);
    expect(m.allocatedBytes).toBe(2 * cs);
    expect(() => m.lendWrite(100, 512)).toThrow(RangeError);
    const ro = new MemoryBackstore({ name: 'ro', size: cs, readOnly: true });
    expect(() => ro.lendWrite(0, 512)).toThrow(BackstoreError);
  });

  it('a store whose size is not a multiple of the chunk fills to its size (the last chunk is short)', async () => {
    const cs = 65536;
    const size = 2 * cs + 8192;
    const m = new MemoryBackstore({ name: 'm', size, chunkSize: cs });
    expect(m.maxAllocatedBytes).toBe(size);
    await m.write(0, pattern(size, 5), false);
    expect(m.allocatedBytes).toBe(size);
    expect((await m.read(0, size)).equals(pattern(size, 5))).toBe(true);
    expect(m.lendRead(2 * cs, 8192)!.data.equals(pattern(size, 5).subarray(2 * cs))).toBe(true);
    await m.discard(2 * cs, 8192); // the whole short chunk: freed
    expect(m.allocatedBytes).toBe(2 * cs);
    // A store smaller than the default chunk is one short chunk.
    const small = new MemoryBackstore({ name: 's', size: 8192 });
    await small.write(0, pattern(8192), false);
    expect(small.allocatedBytes).toBe(8192);
  });

  it('a write past the memory limit fails as nospace and leaves the store intact', async () => {
    const cs = 65536;
    const m = new MemoryBackstore({ name: 'm', size: 1 << 30, chunkSize: cs, maxAllocatedBytes: 2 * cs });
    await m.write(0, pattern(2 * cs), false);
    const err = await m.write(2 * cs, pattern(512), false).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BackstoreError);
    expect((err as BackstoreError).kind).toBe('nospace');
    expect((err as BackstoreError).message).toMatch(/memory limit of 131072 bytes/);
    expect(m.allocatedBytes).toBe(2 * cs);
    await m.write(cs, pattern(512, 9), false); // rewriting allocated chunks is still fine
    await m.discard(0, cs);
    await m.write(2 * cs, pattern(512), false); // space came back
    expect(m.allocatedBytes).toBe(2 * cs);
    expect(new MemoryBackstore({ name: 'd', size: 1 << 20 }).maxAllocatedBytes).toBe(1 << 20);
  });

  it('read-only refuses modification; bad ranges are programming errors', async () => {
    const m = new MemoryBackstore({ name: 'm', size: 1 << 20, readOnly: true });
    await expect(m.write(0, Buffer.alloc(512), false)).rejects.toBeInstanceOf(BackstoreError);
    await expect(m.discard(0, 512)).rejects.toMatchObject({ kind: 'readonly' });
    await expect(m.read(100, 512)).rejects.toThrow(RangeError);
    await expect(m.read(1 << 20, 512)).rejects.toThrow(/past the end/);
    expect(() => new MemoryBackstore({ name: 'm', size: 1 << 20, chunkSize: 1000 })).toThrow(/power of two/);
  });
});

describe('null backstore', () => {
  it('reads zeroes, discards writes, and checks ranges', async () => {
    const n = new NullBackstore({ name: 'n', size: GiB, blockSize: 4096 });
    await n.write(0, pattern(4096), true);
    const into = Buffer.alloc(8192, 0xaa);
    const out = await n.read(0, 8192, into);
    expect(out.every((v) => v === 0)).toBe(true);
    expect(n.cacheMode).toBe('writethrough');
    await expect(n.read(512, 4096)).rejects.toThrow(RangeError);
    const ro = new NullBackstore({ name: 'n', size: GiB, readOnly: true });
    await expect(ro.write(0, Buffer.alloc(512), false)).rejects.toMatchObject({ kind: 'readonly' });
    expect(await ro.mapStatus(0, 512)).toEqual([{ offset: 0, length: GiB, mapped: true }]);
  });

  it('lends READs shared zeroes up to 1 MiB; longer ones read into a buffer of their own', () => {
    const n = new NullBackstore({ name: 'n', size: GiB, blockSize: 4096 });
    const small = n.lendRead(4096, 8192)!;
    const big = n.lendRead(0, 1 << 20)!;
    expect(small.data.length).toBe(8192);
    expect(big.data.length).toBe(1 << 20);
    expect(small.data.every((v) => v === 0) && big.data.every((v) => v === 0)).toBe(true);
    expect(n.lendRead(0, (1 << 20) + 4096)).toBeUndefined();
    expect(() => n.lendRead(512, 4096)).toThrow(RangeError);
    expect(() => n.lendRead(GiB, 4096)).toThrow(/past the end/);
    small.release();
    big.release();
  });
});
