/**
 * Identities in the simulated hypervisors (Xen domains, PowerVM client partitions). On real
 * hardware a guest cannot choose who it is: the hypervisor knows the caller. The simulators'
 * equivalent is a secret token per identity, issued by the simulated hypervisor, written to a file
 * only its user can read (mode 0600 in a 0700 directory beside the socket) and handed to that
 * guest's process, which must present it when it connects. Files separate users, not processes of
 * one user.
 */
import { Buffer } from 'node:buffer';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const TOKEN_BYTES = 32;
const NAME_RE = /^[a-z0-9-]{1,40}$/;
const TOKEN_FILE_RE = /^[a-z0-9-]{1,40}\.token$/;

/** Directory holding the token files of the simulated hypervisor listening at `socketPath`. */
export const credentialDir = (socketPath: string): string => `${socketPath}.cred`;
/** Token file of identity `name` (e.g. `dom3`, `unit-71000000`) of the hypervisor at `socketPath`. */
export const credentialFile = (socketPath: string, name: string): string => join(credentialDir(socketPath), `${name}.token`);

/** Read a token file (what a guest process does with the path it was given). `who` names it in errors. */
export function readCredential(path: string, who: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new Error(
      `cannot read the simulated-hypervisor credential of ${who} at ${path}: ${(e as Error).message} ` +
        '(the simulated hypervisor writes it when it creates the guest; it is readable only by its user)',
    );
  }
}

export class SimCredentials {
  private readonly tokens = new Map<string, Buffer>();

  constructor(readonly dir: string) {}

  /** Create (or take over) the directory, owner-only, and remove tokens of an earlier run. */
  init(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(this.dir);
    if (!st.isDirectory()) throw new Error(`${this.dir} is not a directory: cannot keep simulated guest credentials there`);
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
      throw new Error(`${this.dir} belongs to uid ${st.uid}, not to us: refusing to keep simulated guest credentials there`);
    }
    chmodSync(this.dir, 0o700);
    for (const f of readdirSync(this.dir)) if (TOKEN_FILE_RE.test(f)) unlinkSync(join(this.dir, f));
  }

  /** A fresh token for `name` (any earlier one is revoked); returns the token file's path. */
  issue(name: string): string {
    if (!NAME_RE.test(name)) throw new RangeError(`bad credential name ${JSON.stringify(name)}`);
    const token = randomBytes(TOKEN_BYTES).toString('hex');
    const path = join(this.dir, `${name}.token`);
    rmSync(path, { force: true });
    // 'wx': never follow or reuse a file someone else put there.
    writeFileSync(path, token + '\n', { mode: 0o600, flag: 'wx' });
    this.tokens.set(name, Buffer.from(token));
    return path;
  }

  verify(name: string, token: unknown): boolean {
    if (typeof token !== 'string') return false;
    const want = this.tokens.get(name);
    const got = Buffer.from(token);
    return want !== undefined && got.length === want.length && timingSafeEqual(got, want);
  }

  revoke(name: string): void {
    if (!this.tokens.delete(name)) return;
    rmSync(join(this.dir, `${name}.token`), { force: true });
  }

  dispose(): void {
    this.tokens.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
