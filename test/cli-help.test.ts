// Every vtgt command documents itself with an example, and usage errors exit 2.
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { buildProgram, runCli } from '../src/cli/program.js';

function leaves(cmd: Command, path: string[] = []): string[][] {
  const subs = cmd.commands.filter((c) => c.name() !== 'help');
  if (subs.length === 0) return [path];
  return subs.flatMap((c) => leaves(c, [...path, c.name()]));
}

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(args, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('vtgt --help', () => {
  const program = buildProgram({ out: () => undefined, err: () => undefined });
  const paths = leaves(program);

  it('covers the management commands the service offers', () => {
    const names = paths.map((p) => p.join(' '));
    for (const noun of ['target', 'lun', 'portal', 'acl', 'account', 'backstore']) {
      for (const verb of ['create', 'delete', 'list']) expect(names).toContain(`${noun} ${verb}`);
    }
    for (const c of ['serve', 'show', 'stats', 'config save', 'config load']) expect(names).toContain(c);
  });

  it.each(paths.map((p) => [p.join(' '), p]))('%s --help shows an example and exits 0', async (_name, path) => {
    const r = await run([...(path as string[]), '--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Examples?:\n\s+\$ (npx )?vtgt /);
  });

  it('exits 2 on usage errors without contacting a service', async () => {
    expect((await run(['target', 'create'])).code).toBe(2);
    expect((await run(['target'])).code).toBe(2);
    expect((await run([])).code).toBe(2);
    expect((await run(['lun', 'create', 'iqn.2026-11.x:y', '--no-such-option'])).code).toBe(2);
    expect((await run(['backstore', 'create', 'x', '--type', 'tape'])).code).toBe(2);
    const bad = await run(['serve', '--portal', '127.0.0.1:99999']);
    expect(bad.code).toBe(2);
    expect(bad.err).toContain('port 99999 is out of range');
  });
});
