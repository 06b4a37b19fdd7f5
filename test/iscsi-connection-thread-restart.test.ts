// A connection thread that exits is started again (new sessions can use it), a thread that keeps
// exiting is left stopped, and closing the pool starts nothing. The worker runs the built entry
// script (dist/, made by `npm run build` before the tests).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { describe, expect, it, vi } from 'vitest';
import { ConnectionThreads } from '../src/iscsi/connection-threads.js';

const script = new URL('../dist/iscsi/connection-thread.js', import.meta.url);

function pool(): ConnectionThreads {
  return new ConnectionThreads(
    { count: 1, dupSocketFd: () => -1, logLevel: 'silent', prettyLogs: false, placement: 'threads', script, nopInterval: 0, nopTimeout: 0 },
    undefined,
  );
}

const workerOf = (t: unknown): Worker => (t as { worker: Worker }).worker;

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.runIf(existsSync(fileURLToPath(script)))('connection thread restarts', () => {
  it('starts an exited thread again, and new sessions can be placed on it', async () => {
    const threads = pool();
    try {
      const first = threads.choose(0);
      expect(first).toBeDefined();
      await workerOf(first).terminate();
      expect(threads.choose(0)).toBeUndefined(); // nothing alive until the restart
      await until('the restarted thread', () => threads.choose(0) !== undefined);
      const second = threads.choose(0);
      expect(workerOf(second)).not.toBe(workerOf(first));
      expect(workerOf(second).threadId).toBeGreaterThan(0);
    } finally {
      await threads.close();
    }
  });

  it('gives up on a thread that keeps exiting, and close() restarts nothing', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'Date'] });
    const threads = pool();
    try {
      for (let i = 0; i < 5; i++) {
        const t = threads.choose(0)!;
        await workerOf(t).terminate();
        vi.advanceTimersByTime(1_000); // the restart delay
        expect(threads.choose(0)).toBeDefined();
      }
      await workerOf(threads.choose(0)).terminate(); // the sixth exit within a minute
      vi.advanceTimersByTime(5_000);
      expect(threads.choose(0)).toBeUndefined();
    } finally {
      vi.useRealTimers();
      await threads.close();
    }
    const again = pool();
    const t = again.choose(0)!;
    await again.close();
    expect(workerOf(t).threadId).toBe(-1); // terminated
    await new Promise((r) => setTimeout(r, 1_500));
    expect(again.choose(0)).toBeUndefined();
  });
});
