import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * In Node 20 `Buffer`, `process` and `performance` are accessor properties of globalThis: optimized
 * code reaches them through a generic global load that calls the getter on every use (BENCHMARKS.md
 * section 27). Source files import `Buffer` and `performance` instead, where a binding is a constant.
 */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const code = (path: string): string =>
  readFileSync(path, 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');

describe('source files use imported bindings for accessor globals', () => {
  const files = sourceFiles(new URL('../src', import.meta.url).pathname);

  it('finds the sources', () => {
    expect(files.length).toBeGreaterThan(100);
  });

  it('every file that uses Buffer as a value imports it from node:buffer', () => {
    const valueUse = /\bBuffer\.[a-zA-Z]+\(|instanceof Buffer\b|\bnew Buffer\(/;
    const missing = files.filter((f) => {
      const c = code(f);
      return valueUse.test(c) && !/import \{[^}]*\bBuffer\b[^}]*\} from 'node:buffer'/.test(c);
    });
    expect(missing).toEqual([]);
  });

  it('no file reads the performance global', () => {
    const missing = files.filter((f) => {
      const c = code(f);
      return /(?<![.\w])performance\.now\(/.test(c) && !/import \{[^}]*\bperformance\b[^}]*\} from 'node:perf_hooks'/.test(c);
    });
    expect(missing).toEqual([]);
  });
});
