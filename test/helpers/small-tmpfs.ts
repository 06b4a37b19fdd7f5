/** A 1 MiB tmpfs for tests of a full file system: mounted for `fn`, unmounted after; skips without root. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export async function withSmallTmpfs(ctx: { skip(): void }, prefix: string, fn: (mnt: string) => Promise<void>): Promise<void> {
  const mnt = mkdtempSync(join(tmpdir(), prefix));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt], { stdio: 'ignore' });
  } catch {
    rmSync(mnt, { recursive: true, force: true });
    ctx.skip(); // needs root and permission to mount a tmpfs
    return;
  }
  try {
    await fn(mnt);
  } finally {
    execFileSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
}
