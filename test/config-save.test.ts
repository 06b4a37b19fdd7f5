// Atomic config saves: the file is replaced whole or not at all, with owner-only permissions.
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/service/config/default.js';
import { loadConfigFile, writeFileAtomic } from '../src/service/config/file.js';
import { configToYaml } from '../src/service/config/serialize.js';

const dir = mkdtempSync(join(tmpdir(), 'vtgt-save-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('writeFileAtomic', () => {
  it('replaces the file with mode 0600 and leaves no temporary files', async () => {
    const f = join(dir, 'vtgt.yaml');
    writeFileSync(f, 'old\n', { mode: 0o644 });
    await writeFileAtomic(f, configToYaml(defaultConfig()));
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['vtgt.yaml']);
    const back = await loadConfigFile(f);
    expect(back.ok && back.config).toEqual(defaultConfig());
  });

  it('keeps the old file when the new one cannot be put in place', async () => {
    const sub = join(dir, 'blocked');
    mkdirSync(sub);
    const target = join(sub, 'is-a-directory');
    mkdirSync(target);
    writeFileSync(join(target, 'keep'), 'x');
    await expect(writeFileAtomic(target, 'new\n')).rejects.toThrow();
    expect(readdirSync(sub)).toEqual(['is-a-directory']); // temp file removed
    expect(readFileSync(join(target, 'keep'), 'utf8')).toBe('x');
  });

  it('warns when a file with inline CHAP secrets is readable by others', async () => {
    const f = join(dir, 'open.yaml');
    writeFileSync(f, 'accounts: [{name: a, user: u, secret: twelve-bytes-at-least}]\n', { mode: 0o644 });
    const r = await loadConfigFile(f);
    expect(r.ok && r.warnings).toEqual([`${f} holds CHAP secrets and is readable by group/others; chmod 600 it (or use secretFile/secretEnv)`]);
    await writeFileAtomic(f, 'accounts: [{name: a, user: u, secret: twelve-bytes-at-least}]\n');
    const again = await loadConfigFile(f);
    expect(again.ok && again.warnings).toEqual([]);
  });

  it('reports an unreadable config file with a hint', async () => {
    const r = await loadConfigFile(join(dir, 'missing.yaml'));
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.issues[0]).toMatchObject({ file: join(dir, 'missing.yaml'), line: 1, col: 1 });
      expect(r.issues[0]!.message).toContain('cannot read the config file (ENOENT)');
    }
  });
});
