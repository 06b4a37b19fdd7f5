import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { measureLoopbackTcp, parseIperf3Json } from '../src/bench/loopback.js';
import { compare, evaluateTargets, type WorkloadRecord } from '../src/bench/report.js';

function hasIperf3(): boolean {
  try {
    execFileSync('iperf3', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('loopback TCP reference', () => {
  it("reads the received rate from iperf3's JSON report", () => {
    const report = JSON.stringify({ end: { sum_sent: { bits_per_second: 9e9 }, sum_received: { bits_per_second: 8 * 2 ** 20 * 2500 } } });
    expect(parseIperf3Json(report)).toBe(2500);
    expect(parseIperf3Json(JSON.stringify({ error: 'unable to connect to server: Connection refused' }))).toBeUndefined();
    expect(parseIperf3Json(JSON.stringify({ end: { sum_received: { bits_per_second: 0 } } }))).toBeUndefined();
    expect(parseIperf3Json('iperf3: error')).toBeUndefined();
  });

  it('names its source next to the 70 % check', () => {
    const rec = (target: 'vtgt' | 'tgt', mib: number): WorkloadRecord => ({
      target,
      backing: 'null',
      workload: 'seqread_128k_qd8',
      tool: 'iscsi-perf',
      iops: mib * 8,
      mib_s: mib,
    });
    const checks = evaluateTargets(compare([rec('vtgt', 2000), rec('tgt', 900)]), {
      loopbackMiBs: 2500,
      loopbackSource: 'iperf3 3.12, one stream, median of 2400, 2500, 2600 MiB/s in this run',
    });
    const seq = checks.find((c) => c.goal.startsWith('128 KiB sequential read'))!;
    expect(seq.result).toBe('met'); // 2000 ≥ 0.7 × 2500
    expect(seq.detail).toBe('2,000 MiB/s = 80 % of 2,500 MiB/s (iperf3 3.12, one stream, median of 2400, 2500, 2600 MiB/s in this run)');
  });

  it.runIf(hasIperf3())('measures one stream over 127.0.0.1 with iperf3', async () => {
    const m = await measureLoopbackTcp(1, 1);
    if ('error' in m) throw new Error(m.error);
    expect(m.runsMiBs).toHaveLength(1);
    expect(m.mibS).toBe(m.runsMiBs[0]);
    expect(m.mibS).toBeGreaterThan(0);
    expect(m.tool).toMatch(/^iperf 3\./);
  }, 20_000);
});
