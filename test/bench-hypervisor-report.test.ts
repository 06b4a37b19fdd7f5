import { describe, expect, it } from 'vitest';
import { hvRows, hypervisorChecks, mibPerSecond, percentOf, renderMarkdown, type HvMeasurement } from '../src/bench/hypervisor-report.js';

const m = (over: Partial<HvMeasurement>): HvMeasurement => ({
  path: 'ibmvio', op: 'read', pattern: 'random', blockSize: 4096, queueDepth: 98, commands: 0, bytes: 0, elapsedMs: 1000, bytesVerified: 0, ok: true, ...over,
});

describe('hypervisor bench arithmetic', () => {
  it('computes MiB/s from bytes and milliseconds', () => {
    expect(mibPerSecond(3 * 1048576, 2000)).toBe(1.5);
    expect(mibPerSecond(1048576, 0)).toBe(0);
  });

  it('computes percent of the ceiling, 0 without a ceiling', () => {
    expect(percentOf(250, 1000)).toBe(25);
    expect(percentOf(10, 0)).toBe(0);
  });

  it('matches each row to the ceiling of its own transfer size and judges the 50 % goal', () => {
    const rows = hvRows(
      [
        m({ bytes: 400 * 1048576, commands: 102400, elapsedMs: 2000 }),
        m({ path: 'xen', pattern: 'sequential', blockSize: 131072, bytes: 600 * 1048576, commands: 4800, elapsedMs: 1000 }),
        m({ blockSize: 131072, bytes: 900 * 1048576, elapsedMs: 1000, ok: false }),
      ],
      [
        { blockSize: 4096, copyMiBs: 1000, gatherMiBs: 900 },
        { blockSize: 131072, copyMiBs: 1500, gatherMiBs: 1400 },
      ],
    );
    expect(rows[0]).toMatchObject({ mibs: 200, iops: 51200, ceilingMiBs: 1000, percentOfCeiling: 20, meetsGoal: false });
    expect(rows[1]).toMatchObject({ mibs: 600, iops: 4800, ceilingMiBs: 1500, percentOfCeiling: 40, meetsGoal: false });
    expect(rows[2]!.percentOfCeiling).toBe(60);
    expect(rows[2]!.meetsGoal).toBe(false); // failed verification never meets the goal
    const ok = hvRows([m({ bytes: 600 * 1048576 })], [{ blockSize: 4096, copyMiBs: 1000, gatherMiBs: 1 }]);
    expect(ok[0]!.meetsGoal).toBe(true);
  });

  it('renders one table line per measurement and per ceiling size', () => {
    const rows = hvRows([m({ bytes: 100 * 1048576, commands: 25600 })], [{ blockSize: 4096, copyMiBs: 400, gatherMiBs: 300 }]);
    const md = renderMarkdown(rows, [{ blockSize: 4096, copyMiBs: 400, gatherMiBs: 300 }]);
    expect(md).toContain('| ibmvio | 4k random read | 98 | 25600 | 100.0 | 400 | 25.0 % | yes (0 MiB) | no |');
    expect(md).toContain('| 4k | 400 | 300 |');
    expect(md.split('\n').filter((l) => l.startsWith('| ibmvio'))).toHaveLength(1);
  });

  it('turns each row into a check of the harness targets list: met, not met, or failed verification', () => {
    const ceilings = [{ blockSize: 4096, copyMiBs: 1000, gatherMiBs: 900 }];
    const checks = hypervisorChecks(
      hvRows(
        [
          m({ bytes: 600 * 1048576 }),
          m({ path: 'xen', op: 'write', bytes: 30 * 1048576, queueDepth: 16 }),
          m({ bytes: 900 * 1048576, ok: false }),
        ],
        ceilings,
      ),
    );
    expect(checks.map((c) => c.result)).toEqual(['met', 'not met', 'not met']);
    expect(checks[1]).toEqual({
      goal: '≥ 50 % of the copy ceiling: xen 4k random write',
      backing: 'memory (simulator)',
      result: 'not met',
      detail: '30.0 of 1000 MiB/s = 3.0 % (QD 16)',
    });
    expect(checks[2]!.detail).toBe('run FAILED verification');
  });
});
