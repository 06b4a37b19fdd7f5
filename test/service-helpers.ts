// Spawning `vtgt serve` and the `vtgt` CLI as real processes for the service tests.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const BIN = join(import.meta.dirname, '..', 'bin', 'vtgt.js');
export const DEFAULT_TARGET = 'iqn.2026-11.org.vtgt:default';

export interface SpawnedService {
  proc: ChildProcess;
  port: number;
  stdout: string[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Tracks temp dirs and processes so a failing test leaves nothing behind. */
export class ProcessScope {
  private readonly dirs: string[] = [];
  readonly procs = new Set<ChildProcess>();

  tempDir(): string {
    const d = mkdtempSync(join(tmpdir(), 'vtgt-proc-'));
    this.dirs.push(d);
    return d;
  }

  killAll(): void {
    for (const p of this.procs) p.kill('SIGKILL');
  }

  cleanup(): void {
    this.killAll();
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }

  track(p: ChildProcess): ChildProcess {
    this.procs.add(p);
    p.on('exit', () => this.procs.delete(p));
    return p;
  }

  /** Start `vtgt serve` on a fresh data directory with `yaml` as its configuration file. */
  async startWithConfig(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<SpawnedService & { data: string }> {
    const data = this.tempDir();
    const config = join(data, 'test-config.yaml');
    writeFileSync(config, yaml);
    return { ...(await this.startService(data, ['--config', config], env)), data };
  }

  /** Start `vtgt serve --data DATA --portal 127.0.0.1:0` and wait (bounded) for `vtgt: ready`. */
  async startService(data: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<SpawnedService> {
    const proc = this.track(
      spawn(process.execPath, [BIN, 'serve', '--data', data, '--portal', '127.0.0.1:0', ...extra], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }),
    );
    const stdout: string[] = [];
    let err = '';
    proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
    const port = await new Promise<number>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error(`vtgt serve did not become ready in 15 s:\n${stdout.join('\n')}\n${err}`)), 15_000);
      proc.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          stdout.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
        if (stdout.includes('vtgt: ready')) {
          clearTimeout(timer);
          const line = stdout.find((l) => l.startsWith('vtgt: listening on iscsi://127.0.0.1:'));
          resolve(Number(line!.split(':').pop()));
        }
      });
      void exited.then(({ code }) => {
        clearTimeout(timer);
        reject(new Error(`vtgt serve exited (${code}) before it was ready:\n${err}`));
      });
    });
    return { proc, port, stdout, stderr: () => err, exited };
  }
}

/** Run the `vtgt` CLI against the service of DATA. */
export function vtgt(data: string, ...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [BIN, '--data', data, ...args], { encoding: 'utf8', timeout: 15_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** Run an external tool (iscsi-ls, qemu-io ...) with a time bound. */
export function tool(cmd: string, ...args: string[]): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 15_000 });
  if (r.error) throw r.error;
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

/** Sense key / ASC / ASCQ of fixed or descriptor format sense data. */
export function senseCode(s: Buffer | undefined): { key: number; asc: number; ascq: number } | undefined {
  if (!s || s.length < 4) return undefined;
  if ((s[0]! & 0x7f) >= 0x72) return { key: s[1]! & 0xf, asc: s[2]!, ascq: s[3]! };
  return { key: s[2]! & 0xf, asc: s[12] ?? 0, ascq: s[13] ?? 0 };
}
