// The `vtgt sim` commands run the fabric simulators as a process and report what they verified.
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { BIN } from './service-helpers.js';

function sim(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, 'sim', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('vtgt sim', () => {
  it('xen: simulated domains verify their data through the pvSCSI backend', () => {
    const r = sim('xen', '--domains', '1', '--seconds', '1');
    expect(r.code).toBe(0);
    const m = /^xen-sim: (\d+) commands, (\d+) errors, (\d+) bytes verified$/m.exec(r.out);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(Number(m![2])).toBe(0);
    expect(Number(m![3])).toBeGreaterThan(0);
  });

  it('ibmvio: simulated client partitions verify their data through the VIO server', () => {
    const r = sim('ibmvio', '--clients', '1', '--seconds', '1');
    expect(r.code).toBe(0);
    const m = /^ibmvio-sim: (\d+) commands, (\d+) errors, (\d+) bytes verified$/m.exec(r.out);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(Number(m![3])).toBeGreaterThan(0);
  });

  it('refuses out-of-range arguments with exit code 2', () => {
    expect(sim('xen', '--domains', '0').code).toBe(2);
    expect(sim('ibmvio', '--seconds', 'forever').code).toBe(2);
  });
});
