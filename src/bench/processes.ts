/** Starting and stopping the two targets the benchmark compares: vtgt (this checkout) and a private tgtd. */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createInterface } from 'node:readline';

const run = promisify(execFile);

export type BackingKind = 'tmpfs' | 'disk' | 'direct' | 'null';

export interface TargetUnderTest {
  label: 'vtgt' | 'tgt';
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export interface BackingSpec {
  kind: BackingKind;
  /** Backing file (absent for null). */
  path?: string;
  sizeBytes: number;
}

const VTGT_IQN = 'iqn.2026-11.org.vtgt:bench';

function vtgtConfig(backing: BackingSpec): string {
  const bs =
    backing.kind === 'null'
      ? `  - { name: bench0, type: null, size: ${backing.sizeBytes} }`
      : `  - { name: bench0, type: file, path: ${JSON.stringify(backing.path)}, size: ${backing.sizeBytes}, ` +
        `cacheMode: writeback${backing.kind === 'direct' ? ', direct: true' : ''} }`;
  return [
    'backstores:',
    bs,
    'targets:',
    `  - name: ${VTGT_IQN}`,
    '    luns:',
    '      - { lun: 0, backstore: bench0 }',
    'iscsi:',
    '  portals: ["127.0.0.1:0"]',
    'log:',
    '  level: warn',
    '',
  ].join('\n');
}

/** Start `vtgt serve` from this checkout on an ephemeral loopback port and wait until it is ready. */
export async function startVtgt(root: string, dataDir: string, backing: BackingSpec): Promise<TargetUnderTest> {
  const cfg = join(dataDir, 'bench.yaml');
  writeFileSync(cfg, vtgtConfig(backing));
  // In its own session, as tgt-up.sh starts tgtd (setsid). With the kernel's autogroup scheduling
  // (sched_autogroup_enabled, on by default on desktop and Debian kernels) each session is a
  // scheduling group that gets an equal share of a busy CPU: a target left in the benchmark's session
  // competes with the 64 client processes as one task among 65, while tgtd's group has half the
  // machine (BENCHMARKS.md section 19). Both targets must be started alike.
  const child: ChildProcess = spawn(process.execPath, [join(root, 'bin', 'vtgt.js'), 'serve', '--config', cfg, '--data', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  // Detached, it would outlive a benchmark that dies; tgtd is stopped by tgt-down.sh likewise.
  const killOnExit = () => {
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  child.once('exit', () => process.removeListener('exit', killOnExit));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const lines = createInterface({ input: child.stdout! });
  let url: string | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`vtgt did not become ready within 30 s; stderr:\n${stderr}`)), 30_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`vtgt exited with code ${code} before it was ready; stderr:\n${stderr}`));
    });
    lines.on('line', (line) => {
      const m = /^vtgt: listening on (iscsi:\/\/\S+)/.exec(line);
      if (m) url = `${m[1]}/${VTGT_IQN}/0`;
      if (line.startsWith('vtgt: ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await ready;
  if (!url) throw new Error('vtgt reported ready without a "listening on" line');
  return {
    label: 'vtgt',
    url,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await once(child, 'exit');
      clearTimeout(t);
    },
  };
}

/** Start a private tgtd through ../shared/tools/tgt-up.sh with the same kind of backing. */
export async function startTgt(toolsDir: string, port: number, backing: BackingSpec): Promise<TargetUnderTest> {
  const env: NodeJS.ProcessEnv = { ...process.env, TGT_SIZE: String(backing.sizeBytes) };
  if (backing.kind === 'direct') env.TGT_BSOFLAGS = 'direct';
  const bsType = backing.kind === 'null' ? 'null' : 'rdwr';
  const target = backing.kind === 'null' ? `/dev/null-${port}` : backing.path!;
  const { stdout } = await run(join(toolsDir, 'tgt-up.sh'), [String(port), target, bsType], { env });
  const url = stdout.trim().split('\n').pop()!;
  const { stdout: pidText } = await run('cat', [join(process.env.TGT_STATE_DIR ?? '/tmp/tgt-bench', `${port}.pid`)]);
  return {
    label: 'tgt',
    url,
    pid: Number(pidText.trim()),
    async stop() {
      await run(join(toolsDir, 'tgt-down.sh'), [String(port)]).catch(() => undefined);
    },
  };
}

/** utime+stime of a whole process in seconds (all threads). */
export function processCpuSeconds(pid: number, readFile: (p: string) => string): number | undefined {
  try {
    const stat = readFile(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

export function processRssBytes(pid: number, readFile: (p: string) => string): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFile(`/proc/${pid}/status`));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}
