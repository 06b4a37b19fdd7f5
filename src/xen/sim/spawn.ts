/**
 * Start a simulated domU in its own process. From the compiled package (dist/) the sibling
 * `frontend-main.js` is forked directly; when running from TypeScript sources (tests, dev), the
 * entry is first bundled with esbuild (present through the dev toolchain) into a temporary file.
 */
import { fork, ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { existsSync } from 'node:fs';
import type { DomUConfig, DomUReport } from './frontend-main.js';

const here = dirname(fileURLToPath(import.meta.url));
const fromSources = import.meta.url.endsWith('.ts');

let bundled: Promise<string> | undefined;

async function entryScript(workDir: string): Promise<string> {
  if (!fromSources) return join(here, 'frontend-main.js');
  // The bundle lives in the work directory of the run that made it: a later run rebuilds it once
  // that run has cleaned up.
  if (bundled && !existsSync(await bundled)) bundled = undefined;
  bundled ??= (async () => {
    const esbuild = await import('esbuild');
    const out = join(workDir, 'xen-domu.mjs');
    await esbuild.build({
      entryPoints: [join(here, 'frontend-main.ts')],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      outfile: out,
      logLevel: 'silent',
    });
    return out;
  })();
  return bundled;
}

/** A bundled entry lives outside the package: tell it where the addon is (it maps guest memory). */
function addonEnv(): Record<string, string> {
  if (!fromSources || process.env.VTGT_NATIVE_ADDON) return {};
  const addon = join(here, '..', '..', '..', 'build', 'Release', 'vtgt_native.node');
  return existsSync(addon) ? { VTGT_NATIVE_ADDON: addon } : {};
}

export interface DomUProcess {
  child: ChildProcess;
  report: Promise<DomUReport>;
}

/** Fork one domU process; its report resolves when it finishes (or a failure report if it dies). */
export async function spawnDomU(cfg: DomUConfig, timeoutMs: number): Promise<DomUProcess> {
  const script = await entryScript(cfg.dir);
  const child = fork(script, [], {
    env: { ...process.env, ...addonEnv(), VTGT_XEN_DOMU: JSON.stringify(cfg) },
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  const report = new Promise<DomUReport>((resolve) => {
    let done = false;
    const fail = (why: string): void => {
      if (done) return;
      done = true;
      resolve({ domid: cfg.domid, role: cfg.role, commands: 0, errors: 1, bytesVerified: 0, lines: [`dom ${cfg.domid}: ERROR ${why}${stderr ? `: ${stderr.trim().slice(0, 500)}` : ''}`] });
    };
    const timer = setTimeout(() => {
      fail(`did not finish within ${timeoutMs} ms`);
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('message', (m: { type?: string; report?: DomUReport }) => {
      if (m?.type === 'report' && m.report && !done) {
        done = true;
        clearTimeout(timer);
        resolve(m.report);
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      fail(`domU process exited (code ${code}, signal ${signal}) without a report`);
    });
  });
  return { child, report };
}
