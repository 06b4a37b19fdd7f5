/**
 * The many-sessions workload: N concurrent sessions, each at queue depth 32, half doing 4 KiB random
 * reads (iscsi-perf, time-bounded) and half 4 KiB strided writes (qemu-img bench, run in back-to-back
 * batches until the time is up). Every client is its own process and its own iSCSI session.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { processCpuSeconds, processRssBytes } from './processes.js';

export interface ManySessionsResult {
  sessions: number;
  seconds: number;
  readIops: number;
  writeIops: number;
  iops: number;
  mibS: number;
  targetCpuS: number | undefined;
  iosPerTargetCpuS: number | undefined;
  maxRssBytes: number | undefined;
  errors: string[];
}

function runTool(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

async function reader(url: string, initiator: string, seconds: number): Promise<{ ios: number; error?: string }> {
  const r = await runTool('iscsi-perf', ['-i', initiator, '-r', '-m', '32', '-b', '8', '-t', String(seconds), url], (seconds + 15) * 1000);
  const all = [...r.out.matchAll(/iops average (\d+)/g)];
  if (r.code !== 0 || all.length === 0) return { ios: 0, error: `iscsi-perf rc=${r.code}: ${r.out.trim().slice(-200)}` };
  return { ios: Number(all[all.length - 1]![1]) * seconds };
}

/** qemu-img --image-opts for an iscsi:// URL with its own initiator name (one distinct session per client). */
export function qemuImageOpts(url: string, initiator: string): string {
  const m = /^iscsi:\/\/([^/]+)\/([^/]+)\/(\d+)$/.exec(url);
  if (!m) throw new Error(`not an iscsi://HOST:PORT/IQN/LUN URL: ${url}`);
  return `driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=${m[1]},file.target=${m[2]},file.lun=${m[3]},file.initiator-name=${initiator}`;
}

async function writer(url: string, initiator: string, seconds: number, stride: number): Promise<{ ios: number; error?: string }> {
  const end = Date.now() + seconds * 1000;
  let ios = 0;
  const batch = 1000;
  while (Date.now() < end) {
    const r = await runTool(
      'qemu-img',
      ['bench', '--image-opts', '-t', 'none', '-w', '-d', '32', '-s', '4096', '-S', String(stride), '-c', String(batch), qemuImageOpts(url, initiator)],
      60_000,
    );
    if (r.code !== 0) return { ios, error: `qemu-img bench rc=${r.code}: ${r.out.trim().slice(-200)}` };
    ios += batch;
  }
  return { ios };
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
  const jobs: Promise<{ ios: number; error?: string }>[] = [];
  const readers = Math.ceil(sessions / 2);
  for (let i = 0; i < sessions; i++) {
    jobs.push(i < readers ? reader(url, `iqn.2026-11.org.vtgt:bench-client-${i}`, seconds) : writer(url, `iqn.2026-11.org.vtgt:bench-client-${i}`, seconds, stride));
  }
  const results = await Promise.all(jobs);
  const wall = (Date.now() - t0) / 1000;
  clearInterval(sampler);
  const cpu1 = processCpuSeconds(targetPid, read);
  const readIos = results.slice(0, readers).reduce((a, r) => a + r.ios, 0);
  const writeIos = results.slice(readers).reduce((a, r) => a + r.ios, 0);
  const targetCpuS = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined;
  const iops = (readIos + writeIos) / wall;
  return {
    sessions,
    seconds: wall,
    readIops: readIos / wall,
    writeIops: writeIos / wall,
    iops,
    mibS: (iops * 4096) / 2 ** 20,
    targetCpuS,
    iosPerTargetCpuS: targetCpuS ? (readIos + writeIos) / targetCpuS : undefined,
    maxRssBytes: maxRss,
    errors: results.flatMap((r) => (r.error ? [r.error] : [])),
  };
}
