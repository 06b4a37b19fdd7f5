import { describe, expect, it } from 'vitest';
import { runXenSim } from '../src/xen/sim/run.js';

describe('vtgt sim xen (domUs in their own processes)', () => {
  it('two normal domUs and a hostile one: verified I/O, hot-plug, backend restart, every attack answered', async () => {
    const r = await runXenSim({ domains: 2, seconds: 6, hostile: true });
    const text = r.lines.join('\n');
    expect(r.ok, text).toBe(true);
    expect(r.errors, text).toBe(0);
    expect(r.commands).toBeGreaterThan(100);
    expect(r.bytesVerified).toBeGreaterThan(0);
    expect(text).toMatch(/hot-plug: dom 1 vhost 0 gained/);
    expect(text).toMatch(/backend restart: stopped/);
    expect(text).toMatch(/hostile dom 3: producer index jump/);
    expect(text).toMatch(/backend: halted the ring of dom 3 \(hostile\)/);
    expect(text).not.toMatch(/UNEXPECTED/);
    // A guest process holding only its own credential cannot become dom0 or another domU.
    expect(text).toMatch(/hostile dom 3: claim dom0: sent hello domid=0 with our own token -> refused/);
    expect(text).toMatch(/hostile dom 3: claim another guest: .* -> refused/);
    // Large transfers went through indirect segments.
    const m = /backend: (\d+) requests on \d+ rings since the last start, (\d+) with indirect segments/.exec(text);
    expect(m, text).not.toBeNull();
    expect(Number(m![2])).toBeGreaterThan(0);
    // dom 1 scanned the hot-plugged LUN and ran I/O on it.
    expect(text).toMatch(/dom 1: .* over 2 LUN\(s\)/);
    expect(text).toMatch(/dom 2: 2 vhost\(s\) \[0,1\]; guest memory mapped shared through the addon/);
    expect(text).toMatch(/dom 2: .* errors, .* over 1 LUN\(s\) \(vhost 1\)/);
  }, 60_000);
});
