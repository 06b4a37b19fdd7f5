// Module hooks for ts-register.mjs (Node >= 20.6). Transpiled output is cached on disk (keyed by
// path, size and mtime) so repeated partition processes start without loading the compiler.
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cacheDir = join(tmpdir(), `vtgt-ts-cache-${process.getuid?.() ?? 0}`);
let compiler;
let cacheUsable;

/** Only trust a cache directory we own (tmpdir is shared with other users). */
async function cacheReady() {
  if (cacheUsable === undefined) {
    try {
      await mkdir(cacheDir, { recursive: true, mode: 0o700 });
      const s = await stat(cacheDir);
      cacheUsable = s.isDirectory() && (process.getuid === undefined || s.uid === process.getuid()) && (s.mode & 0o022) === 0;
    } catch {
      cacheUsable = false;
    }
  }
  return cacheUsable;
}

export async function resolve(specifier, context, next) {
  try {
    return await next(specifier, context);
  } catch (err) {
    const relative = specifier.startsWith('.') || specifier.startsWith('file:');
    if (relative && specifier.endsWith('.js') && context.parentURL?.endsWith('.ts')) {
      return next(specifier.slice(0, -3) + '.ts', context);
    }
    throw err;
  }
}

export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const path = fileURLToPath(url);
  const st = await stat(path);
  const key = createHash('sha1').update(`${path}\0${st.size}\0${st.mtimeMs}`).digest('hex');
  const cached = join(cacheDir, `${key}.js`);
  const useCache = await cacheReady();
  if (useCache) {
    try {
      return { format: 'module', source: await readFile(cached, 'utf8'), shortCircuit: true };
    } catch {
      // not cached yet
    }
  }
  compiler ??= (await import('typescript')).default;
  const out = compiler.transpileModule(await readFile(path, 'utf8'), {
    fileName: path,
    compilerOptions: { module: compiler.ModuleKind.ESNext, target: compiler.ScriptTarget.ES2022, inlineSourceMap: true },
  });
  if (useCache) {
    try {
      const tmp = `${cached}.${process.pid}.tmp`;
      await writeFile(tmp, out.outputText, { mode: 0o600 });
      await rename(tmp, cached);
    } catch {
      // the cache is an optimisation only
    }
  }
  return { format: 'module', source: out.outputText, shortCircuit: true };
}
