import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScsiCore, LunMap } from '../src/vscsi/core.js';
import { createBackstore } from '../src/backstores/index.js';
import { IscsiServer } from '../src/iscsi/server.js';
import { IscsiTestClient, cdb } from './helpers/iscsi-client.js';
import { startTarget, IQN } from './helpers/iscsi-harness.js';
import { LoginStatus } from '../src/iscsi/constants.js';

const A = 'iqn.2026-11.test:alpha';
const B = 'iqn.2026-11.test:beta';
const T1 = 'iqn.2026-11.org.vtgt:acl';
const T2 = 'iqn.2026-11.org.vtgt:open';

describe('IscsiServer administration: ACLs, LUN maps, CHAP, targets and portals', () => {
  let core: ScsiCore;
  let server: IscsiServer;
  let port: number;
  const clients: IscsiTestClient[] = [];
  const connect = async () => {
    const c = await IscsiTestClient.connect(port);
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    core = new ScsiCore();
    const lu0 = core.addLogicalUnit({ id: 'small', backstore: createBackstore({ type: 'memory', name: 'small', size: 1 << 20 }) });
    const lu3 = core.addLogicalUnit({ id: 'big', backstore: createBackstore({ type: 'memory', name: 'big', size: 8 << 20 }) });
    const t1 = core.createTarget({ name: T1 });
    t1.luns.set(0, lu0);
    t1.luns.set(3, lu3);
    const t2 = core.createTarget({ name: T2 });
    t2.luns.set(0, lu0);
    const alphaMap = new LunMap();
    alphaMap.set(0, lu3); // alpha sees LUN 3 as its LUN 0
    server = new IscsiServer({ core, nopInterval: 0 });
    server.addTarget({ target: t1, acls: [{ initiator: A, addresses: ['127.0.0.0/8', '::1/128'], lunMap: alphaMap }, { initiator: 'iqn.2026-11.test:remote', addresses: ['10.0.0.0/8'] }] });
    server.addTarget({ target: t2 });
    port = (await server.addPortal({ host: '127.0.0.1', port: 0 })).port;
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await server.close();
  });

  it('lets an ACL initiator in with its own LUN map and refuses others with 0x0202', async () => {
    const a = await connect();
    expect((await a.login({ initiator: A, target: T1 })).status).toBe(0);
    const cap = await a.scsi(cdb.readCapacity10(), { read: 8 });
    expect(cap.data.readUInt32BE(0) + 1).toBe((8 << 20) / 512); // LUN 0 is the 8 MiB unit
    const b = await connect();
    expect((await b.login({ initiator: B, target: T1 })).status).toBe(LoginStatus.AUTHORIZATION_FAILURE);
    const remote = await connect();
    expect((await remote.login({ initiator: 'iqn.2026-11.test:remote', target: T1 })).status).toBe(LoginStatus.AUTHORIZATION_FAILURE);
    const nf = await connect();
    expect((await nf.login({ initiator: A, target: 'iqn.2026-11.org.vtgt:nope' })).status).toBe(LoginStatus.NOT_FOUND);
  });

  it('shows each initiator only the targets it may log in to', async () => {
    const names = async (who: string) => {
      const c = await connect();
      expect((await c.login({ initiator: who, discovery: true })).status).toBe(0);
      const st = await c.text([['SendTargets', 'All']]);
      return st.filter(([k]) => k === 'TargetName').map(([, v]) => v);
    };
    expect((await names(A)).sort()).toEqual([T1, T2].sort());
    expect(await names(B)).toEqual([T2]);
  });

  it('requires CHAP after updateTarget for new logins, and for discovery when set', async () => {
    const t2 = core.getTarget(T2)!;
    server.updateTarget({ target: t2, chap: { user: 'u1', secret: 'secret-of-u1' } });
    const c = await connect();
    expect((await c.login({ initiator: B, target: T2 })).status).toBe(LoginStatus.AUTHENTICATION_FAILURE);
    const ok = await connect();
    expect((await ok.login({ initiator: B, target: T2, chap: { user: 'u1', secret: 'secret-of-u1', algorithms: '7,5' } })).status).toBe(0);
    server.setDiscoveryAuth({ user: 'd', secret: 'discovery-secret' });
    const d1 = await connect();
    expect((await d1.login({ initiator: B, discovery: true })).status).toBe(LoginStatus.AUTHENTICATION_FAILURE);
    const d2 = await connect();
    expect((await d2.login({ initiator: B, discovery: true, chap: { user: 'd', secret: 'discovery-secret' } })).status).toBe(0);
    server.setDiscoveryAuth();
    server.updateTarget({ target: t2 });
  });

  it('reports sessions and connections, and removeTarget drops its sessions', async () => {
    const c = await connect();
    expect((await c.login({ initiator: B, target: T2, keys: [['HeaderDigest', 'CRC32C']] })).status).toBe(0);
    await c.scsi(cdb.testUnitReady());
    const info = server.sessions().find((s) => s.initiator === B && s.target === T2 && s.connections.length === 1)!;
    expect(info).toBeDefined();
    expect(info.connections[0]!.headerDigest).toBe('CRC32C');
    expect(info.connections[0]!.peerAddress).toContain('127.0.0.1');
    expect(info.commands).toBeGreaterThanOrEqual(1);
    expect(info.isid).toMatch(/^[0-9a-f]{12}$/);
    await server.removeTarget(T2);
    expect(await c.waitClosed()).toBe(true);
    expect(server.sessions().some((s) => s.target === T2)).toBe(false);
    const again = await connect();
    expect((await again.login({ initiator: B, target: T2 })).status).toBe(LoginStatus.NOT_FOUND);
  });

  it('rejects bad administrator input with messages that name it', async () => {
    const t1 = core.getTarget(T1)!;
    expect(() => server.addTarget({ target: t1 })).toThrow(/already exists/);
    expect(() => server.updateTarget({ target: t1, acls: [{ initiator: A, addresses: ['300.1.1.1/8'] }] })).toThrow(/300\.1\.1\.1/);
    expect(() => server.updateTarget({ target: t1, params: { MaxBurstLength: '1' } })).toThrow(/MaxBurstLength/);
    await expect(server.removePortal('127.0.0.1', 1)).rejects.toThrow(/no iSCSI portal/);
  });

  it('listens on IPv6 loopback too', async () => {
    const p = await server.addPortal({ host: '::1', port: 0, tpgt: 1 });
    const c = await IscsiTestClient.connect(p.port, '::1');
    clients.push(c);
    expect((await c.login({ initiator: A, target: T1 })).status).toBe(0);
    const st = await c.text([['SendTargets', '']]);
    expect(st).toContainEqual(['TargetAddress', `[::1]:${p.port},1`]);
    await server.removePortal('::1', p.port);
  });
});

describe('keepalive and shutdown', () => {
  let t: Awaited<ReturnType<typeof startTarget>>;
  beforeAll(async () => {
    t = await startTarget(['--lun', '0=memory:4M', '--nop-interval', '1']);
  });
  afterAll(async () => {
    await t.close();
  });

  it('pings idle connections and drops the one that does not answer', async () => {
    const port = t.ports[0]!;
    const silent = await IscsiTestClient.connect(port);
    expect((await silent.login({ initiator: 'iqn.2026-11.test:silent', target: IQN })).status).toBe(0);
    const ping = await silent.next(3000);
    expect(ping!.bhs[0]! & 0x3f).toBe(0x20);
    expect(ping!.bhs.readUInt32BE(20)).not.toBe(0xffffffff);
    expect(await silent.waitClosed(6000)).toBe(true);
  }, 15000);

  it('asks initiators to log out with an Async Message before shutdown', async () => {
    const c = await IscsiTestClient.connect(t.ports[0]!);
    expect((await c.login({ initiator: 'iqn.2026-11.test:polite', target: IQN })).status).toBe(0);
    const done = t.server.requestLogoutAll(3000);
    let msg;
    do msg = await c.next(2000);
    while (msg && (msg.bhs[0]! & 0x3f) === 0x20);
    expect(msg!.bhs[0]! & 0x3f).toBe(0x32);
    expect(msg!.bhs[36]).toBe(1); // target requests logout
    expect(await c.logout()).toBe(0);
    await done;
    expect(t.server.sessions()).toEqual([]);
  });
});
