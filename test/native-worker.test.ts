import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { afterAll, beforeAll, expect, it } from 'vitest';

// The addon keeps per-environment state (I/O engine, region class); worker threads each get their own,
// and tearing a worker down runs the engine's cleanup hook while the main thread keeps working.
let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vtgt-worker-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const addon = process.env.VTGT_NATIVE_ADDON ?? join(process.cwd(), 'build', 'Release', 'vtgt_native.node');

const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const n = require(workerData.addon);
// Reads and writes complete through a sink of this environment's own (src/native/transfer-slots.ts does
// the same for the service).
const ring = new Float64Array(3 * 64);
const waiting = new Map();
n.ioSetTransferSink((k) => {
  for (let i = 0; i < k; i++) waiting.get(ring[3 * i])(ring[3 * i + 1], ring[3 * i + 2]);
}, ring);
let nextSlot = 0;
function transfer(fd, op, buf, length, position, uring) {
  const slot = nextSlot++;
  return new Promise((resolve, reject) => {
    waiting.set(slot, (bytes, errno) => (errno ? reject(new Error('errno ' + errno)) : resolve(bytes)));
    n.ioSubmitTransfer(op, fd, buf, 0, length, position, 0, uring, false, slot);
  });
}
(async () => {
  const fd = fs.openSync(workerData.path, 'w+');
  const data = Buffer.alloc(65536, workerData.fill);
  const inflight = [];
  for (let i = 0; i < 16; i++) inflight.push(transfer(fd, 1, data.subarray(i * 4096, (i + 1) * 4096), 4096, i * 4096, true));
  await Promise.all(inflight);
  const back = Buffer.alloc(65536);
  const got = await transfer(fd, 0, back, 65536, 0, workerData.uring);
  const region = n.shmCreateAnonymous(4096);
  region.write(0, data, 0, 16);
  const r = Buffer.alloc(16);
  region.read(0, r, 0, 16);
  // Leave native objects alive and operations in flight on purpose: terminate() must tear them down safely.
  globalThis.keep = [n.alignedBuffer(8192, 4096), region, n.shmCreateAnonymous(8192), data];
  for (let i = 0; i < 8; i++) n.ioSubmit(2, fd, 0, 0, 0, true).catch(() => {});
  for (let i = 0; i < 8; i++) transfer(fd, 1, data, 65536, 65536 * (i + 1), i % 2 === 0).catch(() => {});
  parentPort.postMessage({ got, ok: back.equals(data) && r[0] === workerData.fill });
})().catch((e) => parentPort.postMessage({ error: String(e) }));
`;

function runWorker(path: string, fill: number, uring: boolean): Promise<{ got: number; ok: boolean; error?: string }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(workerSource, { eval: true, workerData: { addon, path, fill, uring } });
    w.once('message', (m) => {
      void w.terminate().then(() => resolve(m));
    });
    w.once('error', reject);
  });
}

it('each worker thread gets its own engine, and terminating workers tears them down cleanly', async () => {
  const results = await Promise.all([
    runWorker(join(dir, 'a'), 0x11, true),
    runWorker(join(dir, 'b'), 0x22, false),
  ]);
  for (const r of results) {
    expect(r.error).toBeUndefined();
    expect(r.got).toBe(65536);
    expect(r.ok).toBe(true);
  }
  // A new worker after the others were torn down still works, and so does the main thread.
  expect((await runWorker(join(dir, 'c'), 0x33, true)).ok).toBe(true);
  const { IoFile } = await import('../src/native/io.js');
  const f = IoFile.openSync(join(dir, 'a'), { readOnly: true });
  const b = Buffer.alloc(4096);
  expect(await f.read(b, 0, 4096, 0)).toBe(4096);
  expect(b.every((v) => v === 0x11)).toBe(true);
  await f.close();
});
