import { readFileSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SimCallError, SimXenClient } from '../src/xen/sim/client.js';
import { credentialDir } from '../src/sim/credentials.js';
import { credentialPath } from '../src/xen/sim/domain-credentials.js';
import { simXenDaemon } from './helpers/xen-daemon.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const daemon = () => simXenDaemon(cleanups, 'vtgt-xen-cred-');

async function refused(p: Promise<SimXenClient>): Promise<string> {
  try {
    const c = await p;
    await c.close();
    return 'accepted';
  } catch (e) {
    return e instanceof SimCallError ? e.code : (e as Error).message;
  }
}

/** One raw line exchange, to see the daemon hang up after a refused hello. */
function rawHello(sock: string, line: string): Promise<{ reply: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = connect(sock, () => s.write(line + '\n'));
    let reply = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (reply += d));
    const t = setTimeout(() => {
      s.destroy();
      resolve({ reply, closed: false });
    }, 2000);
    s.on('close', () => {
      clearTimeout(t);
      resolve({ reply, closed: true });
    });
  });
}

describe('simulated hypervisor: domain credentials', () => {
  it('issues owner-only token files, one per domain', async () => {
    const { sock, srv } = await daemon();
    const path = srv.createDomain(3);
    expect(path).toBe(credentialPath(sock, 3));
    expect(statSync(credentialDir(sock)).mode & 0o777).toBe(0o700);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(credentialPath(sock, 0)).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8').trim()).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(path, 'utf8')).not.toBe(readFileSync(credentialPath(sock, 0), 'utf8'));
  });

  it('accepts a domain with its own credential and refuses every claim to another identity', async () => {
    const { sock, srv } = await daemon();
    const tokenFile = srv.createDomain(3);
    srv.createDomain(4);
    const own = readFileSync(tokenFile, 'utf8').trim();
    const guest = await SimXenClient.connect(sock, 3, { tokenFile });
    cleanups.push(() => guest.close());
    await guest.xenstore.write('/local/domain/3/data/x', '1');
    expect(await refused(SimXenClient.connect(sock, 0, { token: own }))).toBe('EACCES');
    expect(await refused(SimXenClient.connect(sock, 4, { token: own }))).toBe('EACCES');
    expect(await refused(SimXenClient.connect(sock, 3, { token: 'f'.repeat(64) }))).toBe('EACCES');
    expect(await refused(SimXenClient.connect(sock, 3, { token: '' }))).toBe('EACCES');
    // A domain never created has no credential at all.
    expect(await refused(SimXenClient.connect(sock, 9, { token: own }))).toBe('EACCES');
    expect(srv.refusedHellos).toBe(5);
    // dom0's privileges stay dom0's.
    await expect(guest.createDomain(5)).rejects.toMatchObject({ code: 'EACCES' });
    await expect(guest.destroyDomain(4)).rejects.toMatchObject({ code: 'EACCES' });
    await expect(guest.xenstore.write('/local/domain/0/name', 'x')).rejects.toMatchObject({ code: 'EACCES' });
  });

  it('hangs up after a refused hello, and refuses a second hello on an identified connection', async () => {
    const { sock, srv } = await daemon();
    srv.createDomain(2);
    const r = await rawHello(sock, JSON.stringify({ id: 1, op: 'hello', domid: 0, token: 'guess' }));
    expect(JSON.parse(r.reply.split('\n')[0]!)).toMatchObject({ id: 1, ok: false, code: 'EACCES' });
    expect(r.closed).toBe(true);
    const junk = await rawHello(sock, JSON.stringify({ id: 1, op: 'hello', domid: 0, token: { length: 64 } }));
    expect(JSON.parse(junk.reply.split('\n')[0]!)).toMatchObject({ ok: false, code: 'EACCES' });
    const guest = await SimXenClient.connect(sock, 2);
    cleanups.push(() => guest.close());
    await expect(guest.call('hello', { domid: 0, token: readFileSync(credentialPath(sock, 0), 'utf8').trim() })).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('dom0 creates and destroys domains: re-creation revokes the old credential, destruction disconnects', async () => {
    const { sock } = await daemon();
    const dom0 = await SimXenClient.connect(sock, 0);
    cleanups.push(() => dom0.close());
    const first = readFileSync(await dom0.createDomain(6), 'utf8').trim();
    const second = readFileSync(await dom0.createDomain(6), 'utf8').trim();
    expect(second).not.toBe(first);
    expect(await refused(SimXenClient.connect(sock, 6, { token: first }))).toBe('EACCES');
    const guest = await SimXenClient.connect(sock, 6, { token: second });
    const gone = new Promise<void>((r) => (guest as unknown as { socket: { once(e: string, f: () => void): void } }).socket.once('close', () => r()));
    await dom0.destroyDomain(6);
    await gone;
    await expect(guest.xenstore.read('/local/domain/6')).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(await refused(SimXenClient.connect(sock, 6, { token: second }))).toBe('EACCES');
    await expect(dom0.createDomain(0)).rejects.toMatchObject({ code: 'EINVAL' });
  });

  it('a client without a readable credential file says where it looked', async () => {
    const { sock } = await daemon();
    await expect(SimXenClient.connect(sock, 8)).rejects.toThrow(/credential of dom 8 at .*dom8\.token/);
  });
});
