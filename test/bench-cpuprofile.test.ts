/** The .cpuprofile summarizer used for profiles/: self and inclusive time per function. */
import { describe, expect, it } from 'vitest';
import { formatSummary, summarizeProfile, type CpuProfile } from '../src/bench/cpuprofile-summary.js';

const frame = (functionName: string, line: number) => ({ functionName, url: 'file:///repo/dist/iscsi/x.js', lineNumber: line - 1 });

// root → a → b, root → a → a (recursion), root → (idle)
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2, 5] },
    { id: 2, callFrame: frame('a', 10), children: [3, 4] },
    { id: 3, callFrame: frame('b', 20) },
    { id: 4, callFrame: frame('a', 10) },
    { id: 5, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } },
  ],
  samples: [3, 3, 4, 2, 5, 5, 5, 5],
  timeDeltas: [100, 100, 100, 100, 100, 100, 100, 100],
};

describe('summarizeProfile', () => {
  it('attributes self time to the sampled function and inclusive time once per ancestor', () => {
    const s = summarizeProfile(profile);
    expect(s.totalMicros).toBe(800);
    const self = Object.fromEntries(s.self.map((r) => [r.key, r.micros]));
    expect(self['(idle) :0']).toBe(400);
    expect(self['b dist/iscsi/x.js:20']).toBe(200);
    expect(self['a dist/iscsi/x.js:10']).toBe(200); // node 4 (recursive a) + node 2
    const incl = Object.fromEntries(s.inclusive.map((r) => [r.key, r.micros]));
    expect(incl['a dist/iscsi/x.js:10']).toBe(400); // recursion counted once per sample
    expect(incl['(root) :0']).toBe(800);
    expect(s.self[0]!.share).toBeCloseTo(0.5, 10);
  });

  it('formats the top rows as percentages', () => {
    const text = formatSummary(summarizeProfile(profile), 2, true);
    expect(text).toContain('== self time (0.00 s sampled)');
    expect(text).toContain(' 50.0%  (idle) :0');
    expect(text).toContain('== inclusive time');
    expect(text.split('\n').filter((l) => l.includes('%')).length).toBe(4);
  });
});
