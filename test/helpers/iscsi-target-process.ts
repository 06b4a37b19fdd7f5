/** Start src/iscsi/dev-target.ts as a separate process (from dist/, built by `npm run build`). */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DEV_TARGET_JS = join(root, 'dist', 'iscsi', 'dev-target.js');

export interface TargetProcess {
  ports: number[];
  target: string;
  child: ChildProcess;
  /** What the process wrote to stderr so far (its log with VTGT_LOG set). */
  log(): string;
  stop(): Promise<void>;
}

export function ensureBuilt(): void {
  if (existsSync(DEV_TARGET_JS)) return;
  const r = spawnSync(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')], { stdio: 'inherit' });
  if (!existsSync(DEV_TARGET_JS)) throw new Error(`building dist/ failed (tsc exit ${r.status}); run "npm run build"`);
}

/** Start the process; retried a few times because another build may be rewriting dist/ at that moment. */
export async function startTargetProcess(args: string[], env: Record<string, string> = {}): Promise<TargetProcess> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      return await startOnce(args, env);
    } catch (e) {
      lastError = e;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  throw lastError;
}

async function startOnce(args: string[], env: Record<string, string>): Promise<TargetProcess> {
  ensureBuilt();
  const child = spawn(process.execPath, [DEV_TARGET_JS, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`dev-target exited with ${code}: ${stderr}`)));
  });
  const info = JSON.parse(line) as { ports: number[]; target: string };
  return {
    ...info,
    child,
    log: () => stderr,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

export function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`]).status === 0;
}

/**
 * Start the real service (`bin/vtgt.js serve`) with a YAML config in `dataDir`; resolves with the
 * ports it prints ("vtgt: listening on iscsi://HOST:PORT") once it prints "vtgt: ready".
 */
export async function startServiceProcess(dataDir: string, configYaml: string): Promise<TargetProcess> {
  ensureBuilt();
  const { writeFile } = await import('node:fs/promises');
  const config = join(dataDir, 'vtgt-test.yaml');
  await writeFile(config, configYaml);
  const child = spawn(process.execPath, [join(root, 'bin', 'vtgt.js'), 'serve', '--data', dataDir, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const ports: number[] = [];
  await new Promise<void>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      const m = /^vtgt: listening on iscsi:\/\/(?:\[[^\]]+\]|[^:]+):(\d+)$/.exec(line);
      if (m) ports.push(Number(m[1]));
      if (line.startsWith('vtgt: ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`vtgt serve exited with ${code}: ${stderr}`)));
  });
  return {
    ports,
    target: '',
    child,
    log: () => stderr,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}
