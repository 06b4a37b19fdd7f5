/** The benchmark's arithmetic: medians, vtgt/tgt ratios, the issue-7 target checks, many-session aggregation. */
import { describe, expect, it } from 'vitest';
import { compare, evaluateTargets, markdownTable, median, targetsMarkdown, type WorkloadRecord } from '../src/bench/report.js';
import {
  aggregateSessions,
  commonWindow,
  jainIndex,
  parseIscsiPerfCurrent,
  nextBatch,
  parseIscsiPerfAverage,
  parseQemuRunSeconds,
  type SessionRate,
} from '../src/bench/many-sessions.js';
import { processCpuSeconds, processRssBytes } from '../src/bench/processes.js';

const rec = (target: 'vtgt' | 'tgt', workload: string, iops: number, extra: Partial<WorkloadRecord> = {}): WorkloadRecord => ({
  target,
  backing: 'tmpfs',
  workload,
  tool: 'iscsi-perf',
  iops,
  mib_s: (iops * 4096) / 2 ** 20,
  lat_us: 1e6 / iops,
  ...extra,
});

describe('median', () => {
  it('takes the middle value, or the mean of the two middle values, without reordering the input', () => {
    const input = [5, 1, 3];
    expect(median(input)).toBe(3);
    expect(input).toEqual([5, 1, 3]);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeUndefined();
  });
});

describe('compare', () => {
  it('reports medians per target, the IOPS ratio and the CPU-efficiency ratio', () => {
    const rows = compare([
      rec('vtgt', 'randread_4k_qd32', 30_000, { target_cpu_s: 1.0, ios: 100_000 }),
      rec('vtgt', 'randread_4k_qd32', 10_000, { target_cpu_s: 1.0, ios: 50_000 }),
      rec('vtgt', 'randread_4k_qd32', 20_000, { target_cpu_s: 1.0, ios: 200_000 }),
      rec('tgt', 'randread_4k_qd32', 16_000, { target_cpu_s: 2.0, ios: 100_000 }),
      rec('tgt', 'randread_4k_qd32', 0, { error: 'rc=1' }),
    ]);
    expect(rows).toHaveLength(1);
    const r = rows[0]!;
    expect(r.vtgt.iops).toBe(20_000);
    expect(r.tgt.iops).toBe(16_000);
    expect(r.ratio).toBeCloseTo(1.25, 10);
    expect(r.runs).toEqual({ vtgt: 3, tgt: 2 });
    expect(r.errors).toEqual({ vtgt: 0, tgt: 1 });
    // vtgt CPU/IO median = 1/100000 = 10 µs, tgt = 20 µs → vtgt twice as efficient.
    expect(r.vtgt.cpuSecondsPerIo).toBeCloseTo(1e-5, 12);
    expect(r.cpuEfficiencyRatio).toBeCloseTo(2, 10);
  });

  it('keeps workloads, tools and backings apart and leaves the ratio empty without tgt data', () => {
    const rows = compare([
      rec('vtgt', 'a', 1),
      rec('vtgt', 'a', 2, { tool: 'qemu-img' }),
      rec('vtgt', 'a', 3, { backing: 'null' }),
      rec('tgt', 'a', 0, { error: 'down' }),
    ]);
    expect(rows.map((r) => `${r.backing}/${r.workload}/${r.tool}`)).toEqual(['tmpfs/a/iscsi-perf', 'tmpfs/a/qemu-img', 'null/a/iscsi-perf']);
    expect(rows[0]!.ratio).toBeUndefined();
    expect(markdownTable(rows)).toContain('| tmpfs | a | iscsi-perf | 1 | – | – |');
  });
});

describe('evaluateTargets', () => {
  const rows = compare([
    rec('vtgt', 'randread_4k_qd1', 8_000, { target_cpu_s: 1, ios: 40_000 }),
    rec('tgt', 'randread_4k_qd1', 6_000, { target_cpu_s: 1, ios: 30_000 }),
    rec('vtgt', 'seqread_128k_qd8', 9_000, { backing: 'null', mib_s: 1125 }),
    rec('tgt', 'seqread_128k_qd8', 7_000, { backing: 'null', mib_s: 875 }),
    rec('vtgt', 'mixed_4k_qd32_8sessions', 40_000, { max_rss_bytes: 100 * 2 ** 20 }),
    rec('vtgt', 'mixed_4k_qd32_64sessions', 35_000, { max_rss_bytes: 120 * 2 ** 20 }),
  ]);
  const checks = evaluateTargets(rows, { loopbackMiBs: 1800 });
  const find = (goal: string, backing = 'tmpfs') => checks.find((c) => c.goal.startsWith(goal) && c.backing === backing);

  it('checks the IOPS and CPU targets per workload', () => {
    expect(find('IOPS ≥ 1.0× tgt: randread_4k_qd1')!.result).toBe('met');
    expect(find('less target CPU per I/O than tgt: randread_4k_qd1')!.result).toBe('met'); // 25 µs vs 33 µs
  });

  it('checks QD1 latency, the null sequential-read share of loopback TCP and many-session scaling', () => {
    expect(find('QD1 latency')!.result).toBe('met');
    const seq = find('128 KiB sequential read', 'null')!;
    expect(seq.result).toBe('not met'); // 1125 < 0.7 * 1800 = 1260
    expect(seq.detail).toContain('63 %');
    const many = find('64 sessions within 10 % of 8 sessions')!;
    expect(many.result).toBe('not met'); // 35k < 36k
    expect(many.detail).toContain('max RSS 120 MiB');
    expect(find('IOPS ≥ 1.0× tgt: mixed_4k_qd32_8sessions')!.result).toBe('no data');
    expect(targetsMarkdown(checks)).toContain('| QD1 latency no worse than tgt | tmpfs | **met** |');
  });
});

describe('many-sessions aggregation', () => {
  it("parses iscsi-perf's last average and qemu-img's run time", () => {
    const perf = 'iops average 100 (0 MB/s)\r00:00:01 - lba 7, iops current 9, iops average 250 (1 MB/s)\r\niops average 240 (0 MB/s)\nfinished.';
    expect(parseIscsiPerfAverage(perf)).toBe(240);
    expect(parseIscsiPerfAverage('connect failed')).toBeUndefined();
    expect(parseQemuRunSeconds('Sending 1000 write requests...\nRun completed in 0.512 seconds.\n')).toBe(0.512);
    expect(parseQemuRunSeconds('qemu-img: Could not open')).toBeUndefined();
  });

  it('sizes the next qemu-img batch from the last rate, bounded by the time left', () => {
    expect(nextBatch(1000, 0.5, 10)).toBe(3000); // 2000/s for 1.5 s
    expect(nextBatch(1000, 0.5, 0.5)).toBe(1000); // only 0.5 s left
    expect(nextBatch(1000, 0.5, 0.01)).toBe(400); // at least 0.2 s worth
    expect(nextBatch(1000, 0, 10)).toBe(4000); // no timing: grow
    expect(nextBatch(10, 1, 10)).toBe(100); // floor
  });

  it("computes Jain's fairness index", () => {
    expect(jainIndex([5, 5, 5, 5])).toBeCloseTo(1, 12);
    expect(jainIndex([4, 0, 0, 0])).toBeCloseTo(0.25, 12);
    expect(jainIndex([])).toBeUndefined();
    expect(jainIndex([0, 0])).toBeUndefined();
  });

  it('falls back to wall-time IOPS without a common window, counts CPU per I/O, and keeps errors', () => {
    const s: SessionRate[] = [
      { kind: 'read', ios: 5000, activeSeconds: 5, iops: 1000 },
      { kind: 'read', ios: 15000, activeSeconds: 5, iops: 3000 },
      { kind: 'write', ios: 4000, activeSeconds: 2, iops: 2000 },
      { kind: 'write', ios: 0, activeSeconds: 0, iops: 0, error: 'qemu-img bench rc=1: boom' },
    ];
    const a = aggregateSessions(s, 8, 2);
    // No common window (a session failed): the conservative total I/Os / wall time, split by kind.
    expect(a.sumOfRatesIops).toBe(6000);
    expect(a.wallIops).toBe(24000 / 8);
    expect(a.iops).toBeCloseTo(3000, 10);
    expect(a.readIops).toBeCloseTo(2000, 10);
    expect(a.writeIops).toBeCloseTo(1000, 10);
    expect(a.mibS).toBeCloseTo((3000 * 4096) / 2 ** 20, 10);
    expect(a.iosPerTargetCpuS).toBe(12000);
    // reads: (4000)²/(2·(1e6+9e6)) = 0.8; writes (one healthy session): 1 → mean 0.9
    expect(a.fairness).toBeCloseTo(0.9, 12);
    expect(a.minSessionIops).toBe(1000);
    expect(a.maxSessionIops).toBe(3000);
    expect(a.errors).toEqual(['qemu-img bench rc=1: boom']);
    expect(a.windowSeconds).toBe(0); // a failed session: no common window, per-session rates summed
  });

  it("reads iscsi-perf's per-second reports", () => {
    expect(parseIscsiPerfCurrent('\r00:00:01 - lba 1, iops current 2000 (7 MB/s), iops average 1900\r00:00:02 - lba 9, iops current 2100 (8 MB/s)')).toEqual([
      2000, 2100,
    ]);
    expect(parseIscsiPerfCurrent('connected')).toEqual([]);
  });

  it('counts only the window in which every session was active, prorating cut intervals', () => {
    const early = { intervals: [0, 1, 2, 3].map((k) => ({ startMs: k * 1000, endMs: (k + 1) * 1000, ios: 100 })) }; // 0–4 s
    const late = { intervals: [{ startMs: 2000, endMs: 6000, ios: 800 }] }; // 2–6 s, 200/s
    const w = commonWindow([early, late])!;
    expect([w.startMs, w.endMs]).toEqual([2000, 4000]);
    expect(w.iosPerSession[0]).toBeCloseTo(200, 10);
    expect(w.iosPerSession[1]).toBeCloseTo(400, 10);
    expect(commonWindow([early, { intervals: [{ startMs: 3500, endMs: 9000, ios: 1 }] }])).toBeUndefined(); // 0.5 s overlap
    expect(commonWindow([early, {}])).toBeUndefined();

    const a = aggregateSessions(
      [
        { kind: 'read', ios: 400, activeSeconds: 4, iops: 100, intervals: early.intervals },
        { kind: 'write', ios: 800, activeSeconds: 4, iops: 200, intervals: late.intervals },
      ],
      6,
      undefined,
    );
    expect(a.windowSeconds).toBe(2);
    expect(a.readIops).toBeCloseTo(100, 10);
    expect(a.writeIops).toBeCloseTo(200, 10);
    expect(a.sumOfRatesIops).toBe(300);
    expect(a.wallIops).toBe(200);
  });
});

describe('process accounting from /proc', () => {
  it('reads utime+stime and VmRSS, and gives undefined when the process is gone', () => {
    const stat = '1234 (node with) spaces) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 11 0';
    expect(processCpuSeconds(1234, () => stat)).toBe(3);
    expect(processRssBytes(1234, () => 'Name:\tnode\nVmRSS:\t  2048 kB\n')).toBe(2048 * 1024);
    const gone = () => {
      throw new Error('ENOENT');
    };
    expect(processCpuSeconds(1, gone)).toBeUndefined();
    expect(processRssBytes(1, gone)).toBeUndefined();
  });
});
