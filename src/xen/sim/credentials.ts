/**
 * Domain identities of the simulated hypervisor. On Xen a domain cannot choose its domid: the
 * hypervisor knows who is calling. The simulator's equivalent is a per-domain secret token issued
 * by the daemon when the domain is created, written to a file only the daemon's user can read
 * (mode 0600 in a 0700 directory) and handed to that domain's process; `hello` must present it.
 * dom0's token sits beside the socket, so the service and an operator's `vtgt xen attach` (same
 * user) can act as dom0 while a guest process given only its own token cannot.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** Largest domid a guest can have (DOMID_FIRST_RESERVED - 1, xen/include/public/xen.h). */
export const SIM_MAX_DOMID = 0x7fef;
const TOKEN_BYTES = 32;
const TOKEN_FILE = /^dom\d+\.token$/;

/** Directory holding the token files of the daemon listening at `socketPath`. */
export const credentialDir = (socketPath: string): string => `${socketPath}.cred`;
/** Token file of `domid` for the daemon listening at `socketPath`. */
export const credentialPath = (socketPath: string, domid: number): string => join(credentialDir(socketPath), `dom${domid}.token`);

export const isDomid = (d: unknown): d is number => typeof d === 'number' && Number.isInteger(d) && d >= 0 && d <= SIM_MAX_DOMID;

/** Read a token file (what a domain process does with the path it was given). */
export function readCredential(path: string, domid: number): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new Error(
      `cannot read the simulated-hypervisor credential of dom ${domid} at ${path}: ${(e as Error).message} ` +
        '(the daemon writes it when the domain is created; dom0\'s is readable only by the service\'s user)',
    );
  }
}

export class DomainCredentials {
  private readonly tokens = new Map<number, Buffer>();

  constructor(readonly dir: string) {}

  /** Create (or take over) the directory, owner-only, and remove tokens of an earlier daemon. */
  init(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(this.dir);
    if (!st.isDirectory()) throw new Error(`${this.dir} is not a directory: cannot keep simulated domain credentials there`);
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
      throw new Error(`${this.dir} belongs to uid ${st.uid}, not to us: refusing to keep simulated domain credentials there`);
    }
    chmodSync(this.dir, 0o700);
    for (const f of readdirSync(this.dir)) if (TOKEN_FILE.test(f)) unlinkSync(join(this.dir, f));
  }

  /** A fresh token for `domid` (any earlier one is revoked); returns the token file's path. */
  issue(domid: number): string {
    if (!isDomid(domid)) throw new RangeError(`bad domid ${String(domid)}`);
    const token = randomBytes(TOKEN_BYTES).toString('hex');
    const path = join(this.dir, `dom${domid}.token`);
    rmSync(path, { force: true });
    // 'wx': never follow or reuse a file someone else put there.
    writeFileSync(path, token + '\n', { mode: 0o600, flag: 'wx' });
    this.tokens.set(domid, Buffer.from(token));
    return path;
  }

  verify(domid: unknown, token: unknown): boolean {
    if (!isDomid(domid) || typeof token !== 'string') return false;
    const want = this.tokens.get(domid);
    const got = Buffer.from(token);
    return want !== undefined && got.length === want.length && timingSafeEqual(got, want);
  }

  has(domid: number): boolean {
    return this.tokens.has(domid);
  }

  revoke(domid: number): void {
    this.tokens.delete(domid);
    rmSync(join(this.dir, `dom${domid}.token`), { force: true });
  }

  dispose(): void {
    this.tokens.clear();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
