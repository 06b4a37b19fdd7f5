/**
 * The many-sessions workload: N concurrent sessions, each at queue depth 32, half doing 4 KiB random
 * reads (iscsi-perf, time-bounded) and half 4 KiB strided writes (qemu-img bench). Every client is its
 * own process and its own iSCSI session.
 *
 * qemu-img bench is count-based and logs in and out on every run, so a writer runs back-to-back
 * batches whose count is re-sized from the previous batch's rate to last about BATCH_SECONDS: short
 * enough to stop near the deadline, long enough that process start-up and login stay a small share.
 * A writer's rate is its I/Os divided by the time qemu-img itself reports for its I/O phases, a
 * reader's is iscsi-perf's average; the aggregate is the sum of the per-session rates (throughput
 * while all sessions are active), and the per-session rates also give a fairness figure.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { processCpuSeconds, processRssBytes } from './processes.js';

/** I/Os a client completed in [startMs, endMs] (epoch ms), assumed spread evenly over it. */
export interface ActivityInterval {
  startMs: number;
  endMs: number;
  ios: number;
}

export interface SessionRate {
  kind: 'read' | 'write';
  ios: number;
  /** When the client moved data: iscsi-perf's per-second reports, qemu-img's timed batches. */
  intervals?: ActivityInterval[];
  /** Seconds the client was moving data (iscsi-perf: its run time; qemu-img: the sum of "Run completed in"). */
  activeSeconds: number;
  iops: number;
  error?: string;
}

export interface ManySessionsResult {
  sessions: number;
  /** Wall time of the whole workload, from the first client start to the last client exit. */
  seconds: number;
  readIops: number;
  writeIops: number;
  /**
   * I/Os per second while every session was active: the window from the moment the last session
   * started moving data to the moment the first one stopped (client start-up and logins of 64
   * processes are staggered on a small machine). When the sessions never all overlapped for a second
   * (some target made sessions wait), it falls back to total I/Os / wall time, the conservative figure.
   */
  iops: number;
  /** Length of that window in seconds (0 when the fallback was used). */
  windowSeconds: number;
  /** Sum of the per-session rates, each over its own active time (an upper bound when sessions are staggered). */
  sumOfRatesIops: number;
  mibS: number;
  /** Total I/Os divided by wall time (includes client start-up, login and the tail): a lower bound. */
  wallIops: number;
  targetCpuS: number | undefined;
  iosPerTargetCpuS: number | undefined;
  maxRssBytes: number | undefined;
  /** Jain's fairness index over the per-session rates of each kind (1 = all equal), averaged. */
  fairness: number | undefined;
  minSessionIops: number | undefined;
  maxSessionIops: number | undefined;
  perSession: SessionRate[];
  errors: string[];
}

/** qemu-img bench batches aim at this duration. */
const BATCH_SECONDS = 1.5;
const FIRST_BATCH = 500;
const MAX_BATCH = 2_000_000;

function runTool(
  cmd: string,
  args: string[],
  timeoutMs: number,
  onStdout?: (text: string, atMs: number) => void,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      const text = d.toString();
      out += text;
      onStdout?.(text, Date.now());
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

/** The last "iops average N" figure iscsi-perf printed (it rewrites its progress line with \r). */
export function parseIscsiPerfAverage(out: string): number | undefined {
  const all = [...out.matchAll(/iops average (\d+)/g)];
  return all.length ? Number(all[all.length - 1]![1]) : undefined;
}

/** "Run completed in 1.234 seconds." from qemu-img bench. */
export function parseQemuRunSeconds(out: string): number | undefined {
  const m = /Run completed in ([\d.]+) seconds/.exec(out);
  return m ? Number(m[1]) : undefined;
}

/** Next batch size: the measured rate times the target duration, bounded by the time left. */
export function nextBatch(lastCount: number, lastSeconds: number, secondsLeft: number): number {
  if (!(lastSeconds > 0)) return Math.min(MAX_BATCH, lastCount * 4);
  const rate = lastCount / lastSeconds;
  const want = rate * Math.min(BATCH_SECONDS, Math.max(0.2, secondsLeft));
  return Math.max(100, Math.min(MAX_BATCH, Math.round(want)));
}

/** iscsi-perf prints "iops current N" once a second (unbuffered, even into a pipe). */
export function parseIscsiPerfCurrent(text: string): number[] {
  return [...text.matchAll(/iops current (\d+)/g)].map((m) => Number(m[1]));
}

async function reader(url: string, initiator: string, seconds: number): Promise<SessionRate> {
  const intervals: ActivityInterval[] = [];
  const r = await runTool('iscsi-perf', ['-i', initiator, '-r', '-m', '32', '-b', '8', '-t', String(seconds), url], (seconds + 15) * 1000, (text, at) => {
    for (const n of parseIscsiPerfCurrent(text)) intervals.push({ startMs: at - 1000, endMs: at, ios: n });
  });
  const avg = parseIscsiPerfAverage(r.out);
  if (r.code !== 0 || avg === undefined) {
    return { kind: 'read', ios: 0, activeSeconds: 0, iops: 0, error: `iscsi-perf rc=${r.code}: ${r.out.trim().slice(-200)}` };
  }
  return { kind: 'read', ios: avg * seconds, activeSeconds: seconds, iops: avg, intervals };
}

/** qemu-img --image-opts for an iscsi:// URL with its own initiator name (one distinct session per client). */
export function qemuImageOpts(url: string, initiator: string): string {
  const m = /^iscsi:\/\/([^/]+)\/([^/]+)\/(\d+)$/.exec(url);
  if (!m) throw new Error(`not an iscsi://HOST:PORT/IQN/LUN URL: ${url}`);
  return `driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=${m[1]},file.target=${m[2]},file.lun=${m[3]},file.initiator-name=${initiator}`;
}

async function writer(url: string, initiator: string, seconds: number, stride: number): Promise<SessionRate> {
  const end = Date.now() + seconds * 1000;
  let ios = 0;
  let active = 0;
  let batch = FIRST_BATCH;
  const intervals: ActivityInterval[] = [];
  while (Date.now() < end) {
    const r = await runTool(
      'qemu-img',
      ['bench', '--image-opts', '-t', 'none', '-w', '-d', '32', '-s', '4096', '-S', String(stride), '-c', String(batch), qemuImageOpts(url, initiator)],
      60_000,
    );
    const secs = parseQemuRunSeconds(r.out);
    if (r.code !== 0 || secs === undefined) {
      return { kind: 'write', ios, activeSeconds: active, iops: active ? ios / active : 0, error: `qemu-img bench rc=${r.code}: ${r.out.trim().slice(-200)}` };
    }
    ios += batch;
    active += secs;
    // The I/O phase ends just before the process exits (logout is quick); start-up and login precede it.
    const done = Date.now();
    intervals.push({ startMs: done - secs * 1000, endMs: done, ios: batch });
    batch = nextBatch(batch, secs, (end - Date.now()) / 1000);
  }
  return { kind: 'write', ios, activeSeconds: active, iops: active ? ios / active : 0, intervals };
}

/**
 * The window in which every session was moving data, and each session's I/Os inside it (intervals
 * cut by the window count in proportion to their overlap). Undefined when the sessions never all
 * overlapped for at least `minSeconds`.
 */
export function commonWindow(
  sessions: Array<{ intervals?: ActivityInterval[] }>,
  minSeconds = 1,
): { startMs: number; endMs: number; iosPerSession: number[] } | undefined {
  if (sessions.length === 0 || sessions.some((s) => !s.intervals || s.intervals.length === 0)) return undefined;
  const startMs = Math.max(...sessions.map((s) => Math.min(...s.intervals!.map((i) => i.startMs))));
  const endMs = Math.min(...sessions.map((s) => Math.max(...s.intervals!.map((i) => i.endMs))));
  if (endMs - startMs < minSeconds * 1000) return undefined;
  const iosPerSession = sessions.map((s) =>
    s.intervals!.reduce((sum, i) => {
      const overlap = Math.min(endMs, i.endMs) - Math.max(startMs, i.startMs);
      const len = i.endMs - i.startMs;
      return overlap > 0 && len > 0 ? sum + (i.ios * overlap) / len : sum;
    }, 0),
  );
  return { startMs, endMs, iosPerSession };
}

/** Jain's fairness index (Σx)² / (n·Σx²): 1 when every session gets the same rate, 1/n when one gets all. */
export function jainIndex(rates: number[]): number | undefined {
  if (rates.length === 0) return undefined;
  const sum = rates.reduce((a, b) => a + b, 0);
  const sq = rates.reduce((a, b) => a + b * b, 0);
  return sq > 0 ? (sum * sum) / (rates.length * sq) : undefined;
}

/** Aggregate per-session rates into the workload figures (pure; exported for tests). */
export function aggregateSessions(
  perSession: SessionRate[],
  wallSeconds: number,
  targetCpuS: number | undefined,
): Omit<ManySessionsResult, 'sessions' | 'seconds' | 'maxRssBytes'> {
  const ok = perSession.filter((s) => !s.error);
  const sumOf = (k: 'read' | 'write') => ok.filter((s) => s.kind === k).reduce((a, s) => a + s.iops, 0);
  const sumOfRatesIops = sumOf('read') + sumOf('write');
  const ios = perSession.reduce((a, s) => a + s.ios, 0);
  // Rates inside the common window when there is one (all sessions healthy), else each over its own time.
  const win = ok.length === perSession.length ? commonWindow(ok) : undefined;
  const windowSeconds = win ? (win.endMs - win.startMs) / 1000 : 0;
  const rateOf = ok.map((s, i) => (win ? win.iosPerSession[i]! / windowSeconds : s.iops));
  const kindSum = (k: 'read' | 'write') => ok.reduce((a, s, i) => (s.kind === k ? a + rateOf[i]! : a), 0);
  const wallIops = wallSeconds > 0 ? ios / wallSeconds : 0;
  // Without a common window, per-session rates over different times would overstate the aggregate.
  const scale = win || sumOfRatesIops === 0 ? 1 : wallIops / sumOfRatesIops;
  const readIops = kindSum('read') * scale;
  const writeIops = kindSum('write') * scale;
  const iops = readIops + writeIops;
  const fair = (['read', 'write'] as const)
    .map((k) => jainIndex(ok.flatMap((s, i) => (s.kind === k ? [rateOf[i]!] : []))))
    .filter((v): v is number => v !== undefined);
  const rates = rateOf;
  return {
    readIops,
    writeIops,
    iops,
    windowSeconds,
    sumOfRatesIops,
    mibS: (iops * 4096) / 2 ** 20,
    wallIops,
    targetCpuS,
    iosPerTargetCpuS: targetCpuS ? ios / targetCpuS : undefined,
    fairness: fair.length ? fair.reduce((a, b) => a + b, 0) / fair.length : undefined,
    minSessionIops: rates.length ? Math.min(...rates) : undefined,
    maxSessionIops: rates.length ? Math.max(...rates) : undefined,
    perSession,
    errors: perSession.flatMap((s) => (s.error ? [s.error] : [])),
  };
}

export async function manySessions(url: string, targetPid: number, sessions: number, seconds: number): Promise<ManySessionsResult> {
  const read = (p: string) => readFileSync(p, 'utf8');
  const cpu0 = processCpuSeconds(targetPid, read);
  let maxRss = processRssBytes(targetPid, read);
  const sampler = setInterval(() => {
    const rss = processRssBytes(targetPid, read);
    if (rss !== undefined && (maxRss === undefined || rss > maxRss)) maxRss = rss;
  }, 250);
  const t0 = Date.now();
  // An odd stride of ~4/10 of a 1 GiB LUN in 4 KiB units, so writes spread over the LUN without locality.
  const stride = 4096 * 104_857;
  const jobs: Promise<SessionRate>[] = [];
  const readers = Math.ceil(sessions / 2);
  for (let i = 0; i < sessions; i++) {
    const initiator = `iqn.2026-11.org.vtgt:bench-client-${i}`;
    jobs.push(i < readers ? reader(url, initiator, seconds) : writer(url, initiator, seconds, stride));
  }
  const perSession = await Promise.all(jobs);
  const wall = (Date.now() - t0) / 1000;
  clearInterval(sampler);
  const cpu1 = processCpuSeconds(targetPid, read);
  const targetCpuS = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined;
  return { sessions, seconds: wall, maxRssBytes: maxRss, ...aggregateSessions(perSession, wall, targetCpuS) };
}
