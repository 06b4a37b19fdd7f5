/** CHAP secrets may live in the config, in a file (mode 0600 recommended) or in an environment variable. */
import { readFileSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { SecretSource } from './types.js';

export type SecretResult = { ok: true; value: string; warning?: string } | { ok: false; error: string };

export function resolveSecret(src: SecretSource, baseDir: string, env: NodeJS.ProcessEnv = process.env): SecretResult {
  switch (src.kind) {
    case 'inline':
      return { ok: true, value: src.value };
    case 'env': {
      const v = env[src.name];
      if (v === undefined || v === '') {
        return { ok: false, error: `environment variable ${src.name} is not set (it should hold the CHAP secret)` };
      }
      return { ok: true, value: v };
    }
    case 'file': {
      const path = isAbsolute(src.path) ? src.path : resolve(baseDir, src.path);
      try {
        // One trailing newline is what editors and `echo` add; it is not part of the secret.
        const value = readFileSync(path, 'utf8').replace(/\r?\n$/, '');
        const mode = statSync(path).mode & 0o077;
        const warning = mode !== 0 ? `secret file ${path} is readable by group/others; chmod 600 it` : undefined;
        return warning ? { ok: true, value, warning } : { ok: true, value };
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code ?? String(e);
        return { ok: false, error: `cannot read secret file ${path} (${code})` };
      }
    }
  }
}
