import { describe, expect, it } from 'vitest';
import { runIbmvioSim } from '../src/ibmvio/sim/run.js';

// Client partitions run in their own processes against the simulated PowerVM and the real core.
describe('vtgt sim ibmvio (end to end, short runs)', () => {
  it('Linux partitions: scan, verified random I/O, abort, LUN reset, server restart ridden through', async () => {
    const r = await runIbmvioSim({ clients: 2, seconds: 1.5, aix: false, hostile: false, restart: true });
    expect(r.lines.join('\n')).not.toMatch(/errors?: [1-9]|mismatch|fatal/);
    expect(r.errors).toBe(0);
    expect(r.ok).toBe(true);
    expect(r.commands).toBeGreaterThan(100);
    expect(r.bytesVerified).toBeGreaterThan(0);
    expect(r.lines).toContain('server adapter vhost0 restarted midway: yes');
    expect(r.lines.join('\n')).toMatch(/lpar0 scan: LUN 0 VTGT\/\S+.*, LUN 1 /);
    // The restarted partition saw the transport event and re-logged in.
    expect(r.lines[0]).toMatch(/[1-9]\d* host resets/);
  }, 30_000);

  it('AIX profile: fast fail + capabilities, IBM VDASD identity, AIX LUN numbering', async () => {
    const r = await runIbmvioSim({ clients: 1, seconds: 1.5, aix: true, hostile: false, restart: false });
    expect(r.errors).toBe(0);
    expect(r.ok).toBe(true);
    expect(r.commands).toBeGreaterThan(50);
    expect(r.lines[0]).toMatch(/AIX/);
    // Both disks found through AIX numbering (0x8000..., 0x8100...) with the VIOS identity.
    expect(r.lines.join('\n')).toMatch(/scan: LUN 0 IBM\/VDASD blkdev\/0001 \d+x512, LUN 1 IBM\/VDASD blkdev\/0001/);
  }, 30_000);
});
