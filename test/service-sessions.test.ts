// Logged-in iSCSI sessions across live changes of a spawned `vtgt serve`: a hot-added LUN raises
// REPORTED LUNS DATA HAS CHANGED, a SIGHUP reload leaves the session alone, and SIGTERM asks the
// initiator to log out (Async Message) and keeps every acknowledged write.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cdb, IscsiTestClient } from './helpers/iscsi-client.js';
import { DEFAULT_TARGET as T, ProcessScope, senseCode, vtgt } from './service-helpers.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const scope = new ProcessScope();
afterEach(() => scope.killAll());
afterAll(() => scope.cleanup());

const REPORT_LUNS = Buffer.from([0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]);
const SCSI_OP_ASYNC_MESSAGE = 0x32; // RFC 7143 11.9
const ASYNC_EVENT_LOGOUT_REQUEST = 1; // RFC 7143 11.9.1

async function loggedIn(port: number, initiator: string): Promise<IscsiTestClient> {
  const c = await IscsiTestClient.connect(port);
  const r = await c.login({ initiator, target: T });
  expect(r.status).toBe(0);
  // Clear the power-on unit attention every new nexus starts with.
  for (let i = 0; i < 3; i++) if ((await c.scsi(cdb.testUnitReady())).status === 0) break;
  return c;
}

function lunsOf(data: Buffer): number[] {
  const n = data.readUInt32BE(0) / 8;
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(((data[8 + i * 8]! & 0x3f) << 8) | data[9 + i * 8]!);
  return out;
}

describe('sessions across live changes', () => {
  it('hot add raises REPORTED LUNS DATA HAS CHANGED; reload keeps the session; remove unmaps', async () => {
    const data = scope.tempDir();
    const svc = await scope.startService(data);
    const c = await loggedIn(svc.port, 'iqn.2026-11.org.test:hot');

    expect(vtgt(data, 'lun', 'create', T, '--null', '64MiB', '--lun', '2').code).toBe(0);
    const ua = await c.scsi(cdb.testUnitReady());
    expect(ua.status).toBe(2);
    expect(senseCode(ua.sense)).toEqual({ key: 6, asc: 0x3f, ascq: 0x0e });
    const rl = await c.scsi(REPORT_LUNS, { read: 4096 });
    expect(rl.status).toBe(0);
    expect(lunsOf(rl.data)).toEqual([0, 2]);

    // Reload adding an unrelated target: the session keeps working without a new unit attention.
    const file = join(data, 'vtgt.yaml');
    expect(vtgt(data, 'config', 'save').code).toBe(0);
    writeFileSync(file, readFileSync(file, 'utf8').replace('targets:\n', 'targets:\n  - name: iqn.2026-11.org.vtgt:other\n    luns: []\n'));
    svc.proc.kill('SIGHUP');
    for (let i = 0; i < 50 && !svc.stderr().includes('reload applied'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(svc.stderr()).toContain('reload applied');
    const after = await c.scsi(cdb.read10(0, 8), { read: 4096 });
    expect(after.status).toBe(0);
    expect(after.data.length).toBe(4096);

    // Growing the image while logged in: CAPACITY DATA HAS CHANGED, then the new capacity.
    const grow = vtgt(data, 'backstore', 'resize', 'disk0', '--size', '2GiB');
    expect(grow.code).toBe(0);
    expect(grow.out).toContain('grew from 1GiB to 2GiB');
    const ua3 = await c.scsi(cdb.testUnitReady());
    expect(senseCode(ua3.sense)).toEqual({ key: 6, asc: 0x2a, ascq: 0x09 });
    const cap = await c.scsi(cdb.readCapacity10(), { read: 8 });
    expect(cap.data.readUInt32BE(0) + 1).toBe((2 * 1024 ** 3) / 512);
    expect(vtgt(data, 'backstore', 'resize', 'disk0', '--size', '1GiB').err).toContain('shrinking would cut off data');
    expect(vtgt(data, 'config', 'show').out).toContain('size: 2GiB');

    // A persistent reservation registration shows up in `vtgt show`.
    const prOut = Buffer.from([0x5f, 0x00, 0, 0, 0, 0, 0, 0, 24, 0]); // PR OUT, REGISTER, 24-byte list
    const params = Buffer.alloc(24);
    params.writeBigUInt64BE(0xabcn, 8); // SERVICE ACTION RESERVATION KEY
    expect((await c.scsi(prOut, { write: params })).status).toBe(0);
    const shown = JSON.parse(vtgt(data, 'show', '--json').out).backstores.find((b: { name: string }) => b.name === 'disk0');
    expect(shown.reservations.registrations).toEqual([expect.objectContaining({ key: '0x0000000000000abc', initiator: 'iqn.2026-11.org.test:hot' })]);
    expect(vtgt(data, 'show').out).toContain('0x0000000000000abc  iqn.2026-11.org.test:hot');
    const cleared = vtgt(data, 'backstore', 'clear-reservations', 'disk0');
    expect(cleared.code).toBe(0);
    expect(JSON.parse(vtgt(data, 'show', '--json').out).backstores.find((b: { name: string }) => b.name === 'disk0').reservations.registrations).toEqual([]);
    const ua4 = await c.scsi(cdb.testUnitReady());
    expect(senseCode(ua4.sense)).toEqual({ key: 6, asc: 0x2a, ascq: 0x03 }); // RESERVATIONS PREEMPTED

    expect(vtgt(data, 'lun', 'delete', T, '2').code).toBe(0);
    const ua2 = await c.scsi(cdb.testUnitReady());
    expect(senseCode(ua2.sense)).toEqual({ key: 6, asc: 0x3f, ascq: 0x0e });
    expect(lunsOf((await c.scsi(REPORT_LUNS, { read: 4096 })).data)).toEqual([0]);
    c.close();
    svc.proc.kill('SIGTERM');
    expect((await svc.exited).code).toBe(0);
  });

  it('enforces ACLs and CHAP with secrets from the environment and from a file', async () => {
    const data = scope.tempDir();
    writeFileSync(join(data, 'mutual.secret'), 'target-side-secret-1\n', { mode: 0o600 });
    writeFileSync(
      join(data, 'vtgt.yaml'),
      [
        'backstores: [{name: d0, type: memory, size: 8MiB, serial: VT-SN-0042, physicalBlockSize: 4096}]',
        'accounts:',
        '  - {name: alice, user: alice, secretEnv: VTGT_TEST_ALICE}',
        '  - {name: tgt, user: vtgt-target, secretFile: mutual.secret}',
        'targets:',
        `  - name: ${T}`,
        '    luns: [{lun: 0, backstore: d0}]',
        '    acls:',
        '      - {initiator: "iqn.2026-11.org.test:alice", chap: alice, mutualChap: tgt}',
        'iscsi: {portals: ["127.0.0.1:3260"]}',
      ].join('\n'),
    );
    const svc = await scope.startService(data, [], { VTGT_TEST_ALICE: 'alice-secret-from-env' });
    const attempt = async (initiator: string, chap?: { user: string; secret: string }) => {
      const c = await IscsiTestClient.connect(svc.port);
      try {
        return (await c.login({ initiator, target: T, ...(chap ? { chap, mutual: { user: 'vtgt-target', secret: 'target-side-secret-1' } } : {}) })).status;
      } catch {
        return -1; // the target ended the login
      } finally {
        c.close();
      }
    };
    expect(await attempt('iqn.2026-11.org.test:alice', { user: 'alice', secret: 'alice-secret-from-env' })).toBe(0);
    // The configured serial number is what the LU reports (VPD page 0x80).
    const c = await IscsiTestClient.connect(svc.port);
    await c.login({ initiator: 'iqn.2026-11.org.test:alice', target: T, chap: { user: 'alice', secret: 'alice-secret-from-env' }, mutual: { user: 'vtgt-target', secret: 'target-side-secret-1' } });
    let vpd = await c.scsi(Buffer.from([0x12, 0x01, 0x80, 0, 255, 0]), { read: 255 });
    if (vpd.status !== 0) vpd = await c.scsi(Buffer.from([0x12, 0x01, 0x80, 0, 255, 0]), { read: 255 }); // power-on UA first
    expect(vpd.status).toBe(0);
    expect(vpd.data.subarray(4, 4 + vpd.data.readUInt16BE(2)).toString('ascii').trim()).toBe('VT-SN-0042');
    // physicalBlockSize 4096 on 512-byte blocks: READ CAPACITY(16) LBPPBE = 3 (8 logical per physical).
    const rc16 = await c.scsi(Buffer.from([0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]), { read: 32 });
    expect(rc16.status).toBe(0);
    expect(rc16.data[13]! & 0x0f).toBe(3);
    c.close();
    expect(await attempt('iqn.2026-11.org.test:alice', { user: 'alice', secret: 'not-the-right-secret' })).not.toBe(0);
    expect(await attempt('iqn.2026-11.org.test:alice')).not.toBe(0); // no CHAP offered
    expect(await attempt('iqn.2026-11.org.test:mallory', { user: 'alice', secret: 'alice-secret-from-env' })).not.toBe(0);
    svc.proc.kill('SIGTERM');
    expect((await svc.exited).code).toBe(0);
    expect(svc.stderr()).not.toContain('alice-secret-from-env');
  });

  it('a second signal exits at once while an initiator ignores the logout request', async () => {
    const data = scope.tempDir();
    const svc = await scope.startService(data, ['--shutdown-timeout', '60']);
    const c = await loggedIn(svc.port, 'iqn.2026-11.org.test:stubborn');
    svc.proc.kill('SIGTERM');
    const msg = await c.next(10_000); // the logout request, which this initiator ignores
    expect(msg!.bhs[0]! & 0x3f).toBe(SCSI_OP_ASYNC_MESSAGE);
    expect(svc.proc.exitCode).toBeNull(); // still waiting for the initiator
    svc.proc.kill('SIGTERM');
    expect(await svc.exited).toEqual({ code: 143, signal: null });
    expect(svc.stderr()).toContain('second signal: exiting now');
    c.close();
  });

  it('SIGTERM asks the logged-in initiator to log out, exits 0, and the acknowledged write survives', async () => {
    const data = scope.tempDir();
    const svc = await scope.startService(data);
    const c = await loggedIn(svc.port, 'iqn.2026-11.org.test:stop');
    const pattern = Buffer.alloc(8 * 512);
    for (let i = 0; i < pattern.length; i++) pattern[i] = (i * 7 + 3) & 0xff;
    const w = await c.scsi(cdb.write10(100, 8), { write: pattern });
    expect(w.status).toBe(0); // acknowledged, no SYNCHRONIZE CACHE sent

    svc.proc.kill('SIGTERM');
    const msg = await c.next(10_000);
    expect(msg).toBeDefined();
    expect(msg!.bhs[0]! & 0x3f).toBe(SCSI_OP_ASYNC_MESSAGE);
    expect(msg!.bhs[36]).toBe(ASYNC_EVENT_LOGOUT_REQUEST);
    await c.logout();
    c.close();
    expect(await svc.exited).toEqual({ code: 0, signal: null });

    const again = await scope.startService(data);
    const r = await loggedIn(again.port, 'iqn.2026-11.org.test:verify');
    const back = await r.scsi(cdb.read10(100, 8), { read: pattern.length });
    expect(back.status).toBe(0);
    expect(back.data.equals(pattern)).toBe(true);
    r.close();
    again.proc.kill('SIGINT');
    expect((await again.exited).code).toBe(0);
  });
});
