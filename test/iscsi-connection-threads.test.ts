// Connections continued on a connection thread (performance.iscsiThreads) against a spawned
// `vtgt serve` whose placement sends every movable session to a thread: data written through one
// moved session is read back through another, R2T-solicited data, text, task management, logout,
// session and connection reinstatement, and the management view all behave as on the main thread.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cdb, IscsiTestClient } from './helpers/iscsi-client.js';
import { ProcessScope, vtgt } from './service-helpers.js';

const T = 'iqn.2026-11.org.test:threads';
const scope = new ProcessScope();
afterEach(() => scope.killAll());
afterAll(() => scope.cleanup());

function start(): Promise<{ port: number; data: string; stderr: () => string }> {
  return scope.startWithConfig(
    [
      'backstores:',
      '  - { name: mem0, type: memory, size: 16MiB }',
      'targets:',
      `  - name: ${T}`,
      '    luns: [{ lun: 0, backstore: mem0 }]',
      'performance:',
      '  iscsiThreads: 1',
      '',
    ].join('\n'),
    { VTGT_ISCSI_PLACEMENT: 'threads' },
  );
}

async function loggedIn(port: number, initiator: string, keys: [string, string][] = [], isid?: Buffer): Promise<IscsiTestClient> {
  const c = await IscsiTestClient.connect(port);
  const r = await c.login({ initiator, target: T, keys, ...(isid ? { isid } : {}) });
  expect(r.status).toBe(0);
  for (let i = 0; i < 3; i++) if ((await c.scsi(cdb.testUnitReady())).status === 0) break;
  return c;
}

interface ShownSession {
  initiator: string;
  tsih: number;
  commands: number;
  writeBytes: number;
  connections: Array<{ thread: number }>;
}

function shownSessions(data: string): ShownSession[] {
  const show = JSON.parse(vtgt(data, 'show', '--json').out) as { targets: Array<{ name: string; sessions: ShownSession[] }> };
  return show.targets.find((t) => t.name === T)?.sessions ?? [];
}

function pattern(bytes: number, seed: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

describe('iSCSI connections on a connection thread', () => {
  it('serves commands, solicited data, text, TMF and logout from a thread', async () => {
    const svc = await start();
    // A discovery session stays on the main thread (and takes a connection number there first).
    const disco = await IscsiTestClient.connect(svc.port);
    expect((await disco.login({ initiator: 'iqn.2026-11.org.test:disco', discovery: true })).status).toBe(0);
    expect(await disco.logout()).toBe(0);
    // InitialR2T=Yes and no immediate data: every write's data is fetched through R2T round trips.
    const a = await loggedIn(svc.port, 'iqn.2026-11.org.test:a', [
      ['InitialR2T', 'Yes'],
      ['ImmediateData', 'No'],
    ]);
    const b = await loggedIn(svc.port, 'iqn.2026-11.org.test:b');
    const sessions = shownSessions(svc.data);
    expect(sessions).toHaveLength(2);
    for (const s of sessions) expect(s.connections[0]!.thread).toBeGreaterThan(0);

    const big = pattern(256 * 1024, 7);
    expect((await a.scsi(cdb.write10(64, 512), { write: big })).status).toBe(0);
    const small = pattern(4096, 99);
    expect((await b.scsi(cdb.write10(8, 8), { write: small })).status).toBe(0);

    const readBig = await b.scsi(cdb.read10(64, 512), { read: big.length });
    expect(readBig.status).toBe(0);
    expect(readBig.data.equals(big)).toBe(true);
    const readSmall = await a.scsi(cdb.read10(8, 8), { read: 4096 });
    expect(readSmall.data.equals(small)).toBe(true);

    // An error completion carries its sense data back from the core: LBA beyond the 16 MiB LU.
    const bad = await a.scsi(cdb.read10(0x100000, 1), { read: 512 });
    expect(bad.status).toBe(2);
    expect(bad.sense![2]! & 0x0f).toBe(5);

    const text = await a.text([['SendTargets', 'All']]);
    expect(text).toContainEqual(['TargetName', T]);
    // A portal added while the session lives on the thread shows among its target's addresses (a
    // normal session's SendTargets answers for its own target, §13.3).
    const addresses = (kv: [string, string][]) => kv.filter(([k]) => k === 'TargetAddress').map(([, v]) => v);
    expect(addresses(text)).toHaveLength(1);
    expect(vtgt(svc.data, 'portal', 'create', '127.0.0.2:0').code).toBe(0);
    let now: string[] = [];
    for (let i = 0; i < 40 && now.length < 2; i++) {
      now = addresses(await a.text([['SendTargets', 'All']]));
      if (now.length < 2) await new Promise((r) => setTimeout(r, 50));
    }
    expect(now).toHaveLength(2);
    expect(now.some((v) => v.startsWith('127.0.0.2:'))).toBe(true);

    // LOGICAL UNIT RESET goes to the core and back; the initiators then see the reset's unit attention.
    expect(await a.tmf(5)).toBe(0);
    const ua = await b.scsi(cdb.testUnitReady());
    expect(ua.status).toBe(2);
    expect(ua.sense![12]).toBe(0x29);

    const counted = shownSessions(svc.data).find((s) => s.initiator === 'iqn.2026-11.org.test:a')!;
    expect(counted.writeBytes).toBeGreaterThanOrEqual(big.length);

    expect(await a.logout()).toBe(0);
    expect(await b.logout()).toBe(0);
    for (let i = 0; i < 50 && shownSessions(svc.data).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(shownSessions(svc.data)).toHaveLength(0);

    // Both halves of a moved connection log under one connection number: the main thread's login
    // line and the thread's logout line name the same `conn` for each initiator's peer address.
    const lines = svc
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; conn?: number; peer?: string; thread?: number; initiator?: string });
    const logins = lines.filter((l) => l.msg === 'iSCSI login complete' && l.thread === 1);
    expect(logins).toHaveLength(2);
    expect(new Set(logins.map((l) => l.conn)).size).toBe(2);
    for (const login of logins) {
      const logout = lines.find((l) => l.msg === 'iSCSI logout' && l.peer === login.peer);
      expect(logout?.thread).toBe(1);
      expect(logout?.conn).toBe(login.conn);
    }
  });

  it('reinstates a session and a connection that live on a thread', async () => {
    const svc = await start();
    const isid = Buffer.from([0x80, 0x12, 0x34, 0x56, 0x78, 0x9a]);
    const first = await loggedIn(svc.port, 'iqn.2026-11.org.test:re', [], isid);
    expect((await first.scsi(cdb.write10(0, 1), { write: pattern(512, 3) })).status).toBe(0);

    // Session reinstatement (§6.3.5): same ISID, TSIH 0 — the old connection is dropped.
    const second = await loggedIn(svc.port, 'iqn.2026-11.org.test:re', [], isid);
    expect(await first.waitClosed()).toBe(true);
    const r = await second.scsi(cdb.read10(0, 1), { read: 512 });
    expect(r.data.equals(pattern(512, 3))).toBe(true);

    // Connection reinstatement (§6.3.4): same TSIH and CID; the session's command window comes back
    // from the connection thread and goes on with the new connection (moved to a thread again).
    const third = await IscsiTestClient.connect(svc.port);
    third.cmdSn = second.cmdSn;
    const login = await third.login({ initiator: 'iqn.2026-11.org.test:re', target: T, isid, tsih: second.tsih, cid: 0 });
    expect(login.status).toBe(0);
    expect(await second.waitClosed()).toBe(true);
    const again = await third.scsi(cdb.read10(0, 1), { read: 512 });
    expect(again.status).toBe(0);
    expect(again.data.equals(pattern(512, 3))).toBe(true);
    const shown = shownSessions(svc.data);
    expect(shown).toHaveLength(1);
    expect(shown[0]!.connections).toHaveLength(1);
    expect(shown[0]!.connections[0]!.thread).toBeGreaterThan(0);
    expect(await third.logout()).toBe(0);
  });
});
