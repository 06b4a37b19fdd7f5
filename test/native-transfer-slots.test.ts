import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadNative } from '../src/native/index.js';
import { IoFile, IoOp, NativeIoError, type IoEngineKind } from '../src/native/io.js';
import { transferSlotCount, transfersInFlight } from '../src/native/transfer-slots.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vtgt-xfer-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const block = (i: number): Buffer => Buffer.alloc(4096, (i * 29 + 7) & 0xff);

for (const engine of ['io_uring', 'threadpool'] as IoEngineKind[]) {
  describe(`transfers through the completion sink (${engine})`, () => {
    it('settles every read and write with its own result and frees its slot', async () => {
      const path = join(dir, `many-${engine}`);
      // No fast path: every transfer goes through the engine and the sink.
      const f = IoFile.openSync(path, { create: true, engine, syncFastPath: false });
      const n = 700; // more than one sink call's worth (256) and more than the ring (256)
      const writes = await Promise.all(Array.from({ length: n }, (_, i) => f.write(block(i), 0, 4096, i * 4096)));
      expect(writes.every((c) => c === 4096)).toBe(true);
      expect(transfersInFlight()).toBe(0);
      const slots = transferSlotCount();
      const outs = Array.from({ length: n }, () => Buffer.alloc(4096));
      const reads = await Promise.all(outs.map((b, i) => f.read(b, 0, 4096, i * 4096)));
      expect(reads.every((c) => c === 4096)).toBe(true);
      for (let i = 0; i < n; i++) expect(outs[i]!.equals(block(i))).toBe(true);
      expect(transfersInFlight()).toBe(0);
      // The second batch reused the first one's slots.
      expect(transferSlotCount()).toBe(slots);
      // A read past the end resolves with the short count, not an error.
      expect(await f.read(Buffer.alloc(8192), 0, 8192, (n - 1) * 4096)).toBe(4096);
      await f.close();
      expect(readFileSync(path).length).toBe(n * 4096);
    });

    it("a failed write rejects with its own position and length, and the file goes on working", async () => {
      const path = join(dir, `ro-${engine}`);
      writeFileSync(path, Buffer.concat([block(0), block(1), block(2), block(3)]));
      // Writable as far as IoFile knows, read-only for the kernel: the write fails in the engine (EBADF).
      const fd = openSync(path, 'r');
      const f = IoFile.fromFd(fd, path, { engine, syncFastPath: false });
      const [bad, good, worse] = await Promise.allSettled([
        f.write(block(9), 0, 4096, 8192),
        f.read(Buffer.alloc(4096), 0, 4096, 4096),
        f.write(block(9), 0, 2048, 1024),
      ]);
      expect(bad.status).toBe('rejected');
      const e = (bad as PromiseRejectedResult).reason as NativeIoError;
      expect(e).toBeInstanceOf(NativeIoError);
      expect(e.code).toBe('EBADF');
      expect(e.syscall).toBe('pwrite');
      expect(e.message).toMatch(new RegExp(`^pwrite failed on ${path} at offset 8192 length 4096: pwrite: EBADF`));
      expect(good).toEqual({ status: 'fulfilled', value: 4096 });
      expect(((worse as PromiseRejectedResult).reason as Error).message).toContain('at offset 1024 length 2048');
      expect(transfersInFlight()).toBe(0);
      const again = Buffer.alloc(4096);
      expect(await f.read(again, 0, 4096, 12288)).toBe(4096);
      expect(again.equals(block(3))).toBe(true);
      await f.close();
      expect(() => closeSync(fd)).toThrow(/EBADF/); // close() closed the adopted descriptor
    });

    it('readTo/writeFrom tell their listener after returning, errors with their own position', async () => {
      const path = join(dir, `listen-${engine}`);
      writeFileSync(path, Buffer.concat([block(0), block(1)]));
      const fd = openSync(path, 'r'); // read-only for the kernel: writes fail in the engine (EBADF)
      const f = IoFile.fromFd(fd, path, { engine, syncFastPath: false });
      const told: Array<{ bytes: number; error: Error | undefined; early: boolean }> = [];
      let returned = false;
      const listener = {
        transferComplete(bytes: number, error: Error | undefined) {
          told.push({ bytes, error, early: !returned });
        },
      };
      const out = Buffer.alloc(4096);
      expect(f.readTo(out, 0, 4096, 4096, listener)).toBe(-1);
      expect(f.writeFrom(block(5), 0, 4096, 0, false, listener)).toBe(-1);
      returned = true;
      for (let i = 0; i < 200 && told.length < 2; i++) await new Promise((r) => setImmediate(r));
      expect(told).toHaveLength(2);
      expect(told.every((t) => !t.early)).toBe(true);
      const read = told.find((t) => t.error === undefined)!;
      expect(read.bytes).toBe(4096);
      expect(out.equals(block(1))).toBe(true);
      const write = told.find((t) => t.error !== undefined)!;
      expect(write.error).toBeInstanceOf(NativeIoError);
      expect(write.error!.message).toMatch(new RegExp(`^pwrite failed on ${path} at offset 0 length 4096`));
      expect(transfersInFlight()).toBe(0);
      await f.close();
      // A closed file refuses at once, and nothing is left in flight.
      expect(() => f.readTo(out, 0, 4096, 0, listener)).toThrow(/is closed/);
      expect(transfersInFlight()).toBe(0);
    });
  });
}

describe('the addon side of the completion sink', () => {
  it('checks what it is given before submitting anything', () => {
    const n = loadNative();
    const b = Buffer.alloc(8);
    expect(() => n.ioSubmitTransfer(IoOp.FSYNC, 0, b, 0, 8, 0, 0, true, false, 0)).toThrow(/READ or WRITE/);
    expect(() => n.ioSubmitTransfer(IoOp.READ, 0, b, 4, 8, 0, 0, true, false, 0)).toThrow(/exceeds buffer size 8/);
    expect(() => n.ioSubmitTransfer(IoOp.READ, 0, b, 0, 8, 0, 0, true, false, -1)).toThrow(TypeError);
    expect(() => n.ioSubmitTransfer(IoOp.READ, 0, b, 0, 8, 2 ** 63, 0, true, false, 0)).toThrow(TypeError);
    expect(() => n.ioSetTransferSink(() => undefined, new Float64Array(2))).toThrow(/at least 3 elements/);
    expect(transfersInFlight()).toBe(0);
  });

  it('builds the same error a promise-per-request submission rejects with', () => {
    const e = loadNative().ioTransferError(5, IoOp.READ, 4096, 512, 0) as Error & Record<string, unknown>;
    expect(e.message).toBe('pread: EIO (Input/output error)');
    expect(e).toMatchObject({ code: 'EIO', syscall: 'pread', op: IoOp.READ, position: 4096, length: 512, bytesDone: 0 });
    expect(() => loadNative().ioTransferError(0, IoOp.READ, 0, 0, 0)).toThrow(TypeError);
  });
});
