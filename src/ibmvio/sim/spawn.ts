/** Start a partition emulator (normal or hostile) in its own process. */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface PartitionProcess {
  child: ChildProcess;
  /** Resolves with the exit code and the RESULT object the process printed (if any). */
  done: Promise<{ code: number | null; result: unknown; logs: string[] }>;
}

export function spawnPartition(args: object, onLog?: (line: string) => void): PartitionProcess {
  const fromSource = import.meta.url.endsWith('.ts');
  const main = fileURLToPath(new URL(fromSource ? './client-main.ts' : './client-main.js', import.meta.url));
  const execArgv = fromSource ? ['--import', new URL('./ts-register.mjs', import.meta.url).href] : [];
  const child = spawn(process.execPath, [...execArgv, main, JSON.stringify(args)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  let result: unknown;
  let buf = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (c: string) => {
    buf += c;
    for (;;) {
      const i = buf.indexOf('\n');
      if (i < 0) break;
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('RESULT ')) {
        try {
          result = JSON.parse(line.slice(7));
        } catch {
          logs.push(`unparsable result: ${line.slice(0, 200)}`);
        }
      } else if (line.startsWith('LOG ')) {
        logs.push(line.slice(4));
        onLog?.(line.slice(4));
      }
    }
  });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (c: string) => {
    if (stderr.length < 8192) stderr += c;
  });
  const done = new Promise<{ code: number | null; result: unknown; logs: string[] }>((resolve) => {
    child.on('close', (code) => {
      if (code !== 0 && stderr) logs.push(`stderr: ${stderr.trim().split('\n').slice(0, 8).join(' | ')}`);
      resolve({ code, result, logs });
    });
  });
  return { child, done };
}
