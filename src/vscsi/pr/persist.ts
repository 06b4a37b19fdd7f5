/**
 * Crash-safe storage of the APTPL state file: write a temporary file in the same directory, fsync it,
 * rename it over the old one, fsync the directory. A failure at any step leaves the previous file whole.
 */
import { promises as fsp } from 'node:fs';
import { constants as fsc } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';

/** The few file operations persistence needs; tests substitute failing ones. */
export interface PersistFs {
  open(p: string, flags: number, mode?: number): Promise<fsp.FileHandle>;
  rename(from: string, to: string): Promise<void>;
  unlink(p: string): Promise<void>;
  readFile(p: string): Promise<string>;
}

export const nodePersistFs: PersistFs = {
  open: (p, flags, mode) => fsp.open(p, flags, mode),
  rename: (a, b) => fsp.rename(a, b),
  unlink: (p) => fsp.unlink(p),
  readFile: (p) => fsp.readFile(p, 'utf8'),
};

async function fsyncDirectory(fs: PersistFs, dir: string): Promise<void> {
  const h = await fs.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    await h.sync();
  } finally {
    await h.close();
  }
}

/** Replace `file` with `contents` atomically and durably. Throws (an Error naming the file) on failure. */
export async function writeFileAtomic(file: string, contents: string, fs: PersistFs = nodePersistFs): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let h: fsp.FileHandle | undefined;
  try {
    h = await fs.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
    await h.writeFile(contents, 'utf8');
    await h.sync();
    await h.close();
    h = undefined;
    await fs.rename(tmp, file);
    await fsyncDirectory(fs, dir);
  } catch (e) {
    if (h) await h.close().catch(() => undefined);
    await fs.unlink(tmp).catch(() => undefined);
    throw new Error(`cannot write persistent reservation state ${file}: ${(e as Error).message}`, { cause: e });
  }
}

/** Remove `file` durably; a file that is already gone is fine. */
export async function removeFileDurably(file: string, fs: PersistFs = nodePersistFs): Promise<void> {
  try {
    await fs.unlink(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new Error(`cannot remove persistent reservation state ${file}: ${(e as Error).message}`, { cause: e });
  }
  await fsyncDirectory(fs, path.dirname(file));
}

/** Read `file`, or undefined when it does not exist. */
export async function readFileIfExists(file: string, fs: PersistFs = nodePersistFs): Promise<string | undefined> {
  try {
    return await fs.readFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read persistent reservation state ${file}: ${(e as Error).message}`, { cause: e });
  }
}
