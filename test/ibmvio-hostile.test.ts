import { describe, expect, it } from 'vitest';
import { runIbmvioSim } from '../src/ibmvio/sim/run.js';

describe('vtgt sim ibmvio --hostile', () => {
  it('answers every attack as the protocol says, never touches unmapped pages, and a normal LPAR sees no error', async () => {
    const r = await runIbmvioSim({ clients: 1, seconds: 2, aix: false, hostile: true, restart: false });
    const hostile = r.lines.filter((l) => l.startsWith('hostile '));
    expect(hostile.length).toBeGreaterThan(25);
    expect(hostile.filter((l) => l.includes('UNEXPECTED'))).toEqual([]);
    expect(r.lines.join('\n')).toMatch(/INIT handshake -> INIT COMPLETE/);
    expect(r.lines.join('\n')).toMatch(/valid SRP_LOGIN_REQ -> SRP_LOGIN_RSP/);
    expect(r.lines.join('\n')).toMatch(/\(credit overrun\) -> connection reset by the server/);
    expect(r.lines.join('\n')).toMatch(/attach to lpar adapter 0x71000000 with our own credential -> refused \(no valid credential/);
    expect(r.lines.join('\n')).toMatch(/with a forged credential -> refused/);
    expect(r.lines.join('\n')).toMatch(/guard pages never mapped in the TCE table -> untouched/);
    expect(r.lines.join('\n')).toMatch(/fuzz: 200 random .* server alive/);
    expect(r.lines.join('\n')).toMatch(/H_COPY_RDMA refused/);
    expect(r.errors).toBe(0);
    expect(r.commands).toBeGreaterThan(50);
    expect(r.ok).toBe(true);
  }, 30_000);
});
