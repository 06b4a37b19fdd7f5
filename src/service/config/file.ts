/** Reading a config file from disk and saving one atomically (temp file, fsync, rename, fsync dir). */
import { open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseConfig, type ParseOptions, type ParseResult } from './schema.js';
import { formatIssue } from './yaml-reader.js';

export async function loadConfigFile(path: string, opts: ParseOptions = {}): Promise<ParseResult> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    const hint = code === 'ENOENT' ? 'check the path, or omit --config to use the data directory\'s vtgt.yaml' : 'check its permissions';
    return { ok: false, issues: [{ file: path, line: 1, col: 1, path: '', message: `cannot read the config file (${code}); ${hint}` }] };
  }
  const r = parseConfig(path, text, opts);
  if (r.ok && r.config.accounts.some((a) => a.secret.kind === 'inline')) {
    const mode = await stat(path).then((st) => st.mode & 0o077, () => 0);
    if (mode !== 0) r.warnings.push(`${path} holds CHAP secrets and is readable by group/others; chmod 600 it (or use secretFile/secretEnv)`);
  }
  return r;
}

/** One message listing every problem, for logs, CLI output and control-socket errors. */
export function issuesMessage(result: Extract<ParseResult, { ok: false }>): string {
  const n = result.issues.length;
  const shown = result.issues.slice(0, 20).map(formatIssue);
  if (n > shown.length) shown.push(`... and ${n - shown.length} more`);
  return `invalid configuration (${n} problem${n === 1 ? '' : 's'}):\n  ${shown.join('\n  ')}`;
}

/**
 * Write `text` to `path` so that a crash leaves either the old or the new file, never a mix:
 * write a temp file in the same directory, fsync it, rename over the target, fsync the directory.
 */
export async function writeFileAtomic(path: string, text: string, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(text, 'utf8');
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  }
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
