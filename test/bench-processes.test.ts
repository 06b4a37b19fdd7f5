/**
 * The benchmark starts vtgt the way tgt-up.sh starts tgtd: in a session of its own. Under the kernel's
 * autogroup scheduling a target left in the benchmark's session would share one scheduling group with
 * every client process the benchmark starts, while tgtd has a group to itself (BENCHMARKS.md section 19).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startVtgt } from '../src/bench/processes.js';

const root = resolve(__dirname, '..');

/** Session id of a process (field 6 of /proc/PID/stat; the command name may contain spaces). */
function sessionOf(pid: number | 'self'): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
}

describe('benchmark target processes', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vtgt-bench-proc-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('starts vtgt in a session (and scheduling autogroup) of its own, like tgtd, and stops it', async () => {
    const t = await startVtgt(root, dir, { kind: 'null', sizeBytes: 64 << 20 });
    try {
      expect(t.url).toMatch(/^iscsi:\/\/127\.0\.0\.1:\d+\//);
      expect(sessionOf(t.pid)).toBe(t.pid);
      expect(sessionOf(t.pid)).not.toBe(sessionOf('self'));
      if (existsSync('/proc/self/autogroup')) {
        expect(readFileSync(`/proc/${t.pid}/autogroup`, 'utf8')).not.toBe(readFileSync('/proc/self/autogroup', 'utf8'));
      }
    } finally {
      await t.stop();
    }
    expect(existsSync(`/proc/${t.pid}`) && !readFileSync(`/proc/${t.pid}/stat`, 'utf8').includes(') Z ')).toBe(false);
  }, 30_000);
});
