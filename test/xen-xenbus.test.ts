import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XenStoreDb, XsError } from '../src/xen/sim/xenstore-db.js';
import { SimXenServer } from '../src/xen/sim/server.js';
import { SimXenClient } from '../src/xen/sim/client.js';
import { parseDevName, parseState, parseUnsigned, parseVirtualAddress } from '../src/xen/xenbus-nodes.js';
import { xenAttach, xenDetach } from '../src/xen/toolstack.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('xenstore node parsing (guest-written, untrusted)', () => {
  it('accepts strict unsigned decimals only', () => {
    expect(parseUnsigned('0', 10)).toBe(0);
    expect(parseUnsigned('4294967295', 0xffffffff)).toBe(0xffffffff);
    for (const bad of ['', ' 1', '1 ', '+1', '-1', '01', '0x10', '1e3', '12abc', '4294967296', undefined]) {
      expect(parseUnsigned(bad, 0xffffffff), String(bad)).toBeUndefined();
    }
    expect(parseState('4')).toBe(4);
    expect(parseState('9')).toBeUndefined();
  });
  it('parses v-dev h:c:t:l and dev-N names', () => {
    expect(parseVirtualAddress('0:0:3:7')).toEqual({ host: 0, channel: 0, id: 3, lun: 7 });
    for (const bad of ['0:0:0', '0:0:0:0:0', 'a:0:0:0', '0:0:0:65536', '']) expect(parseVirtualAddress(bad)).toBeUndefined();
    expect(parseDevName('dev-12')).toBe(12);
    expect(parseDevName('dev-012')).toBeUndefined();
    expect(parseDevName('other')).toBeUndefined();
  });
});

describe('simulated xenstore', () => {
  it('fires a watch once when set, then on changes at or below the path and on ancestor removal', async () => {
    const db = new XenStoreDb();
    const seen: string[] = [];
    db.watch({ path: '/a/b', fire: (p) => seen.push(p) });
    await Promise.resolve();
    db.write('/a/b/c', '1');
    db.write('/a/x', '2');
    db.rm('/a');
    expect(seen).toEqual(['/a/b', '/a/b/c', '/a/b']);
    expect(db.read('/a/b/c')).toBeUndefined();
  });
  it('creates parents implicitly, lists children, rejects bad paths', () => {
    const db = new XenStoreDb();
    db.write('/local/domain/1/x', 'v');
    expect(db.directory('/local/domain')).toEqual(['1']);
    expect(db.read('/local/domain/1')).toBe('');
    expect(() => db.write('relative', 'v')).toThrow(XsError);
    expect(() => db.write('/a/../b', 'v')).toThrow(XsError);
  });
  it('transactions fail with EAGAIN after a concurrent change and are retried by the client', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtgt-xs-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const srv = new SimXenServer();
    await srv.listen(join(dir, 's'));
    cleanups.push(() => srv.close());
    const a = await SimXenClient.connect(join(dir, 's'), 0);
    const b = await SimXenClient.connect(join(dir, 's'), 1, { tokenFile: srv.createDomain(1) });
    cleanups.push(() => a.close(), () => b.close());
    await a.xenstore.write('/counter', '0');
    let attempts = 0;
    await a.xenstore.transaction(async (tx) => {
      attempts++;
      const v = Number(await tx.read('/counter'));
      if (attempts === 1) await srv.db.write('/counter', '10'); // conflicting writer
      await tx.write('/counter', String(v + 1));
    });
    expect(attempts).toBe(2);
    expect(await a.xenstore.read('/counter')).toBe('11');
    expect(() => srv.db.commit(srv.db.generation - 1, [])).toThrow(/conflict/);
    // A guest writes only below its own home; dom0 anywhere.
    await expect(b.xenstore.write('/local/domain/0/backend/vscsi/1/0/state', '4')).rejects.toThrow(/EACCES|may not write/);
    await expect(b.xenstore.transaction(async (tx) => tx.write('/counter', '0'))).rejects.toThrow(/may not write/);
    await b.xenstore.write('/local/domain/1/device/vscsi/0/state', '1');
    expect(await a.xenstore.read('/local/domain/1/device/vscsi/0/state')).toBe('1');
  });
});

describe('toolstack attach/detach (what xl lacks)', () => {
  it('writes the backend and frontend directories of vscsiif.h, and refuses duplicates and bad input', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtgt-xs-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const srv = new SimXenServer();
    await srv.listen(join(dir, 's'));
    cleanups.push(() => srv.close());
    const c = await SimXenClient.connect(join(dir, 's'), 0);
    cleanups.push(() => c.close());
    const perms = new Map<string, string>();
    const xs = {
      ...c.xenstore,
      setPermissions: async (p: string, list: Array<{ domid: number; read: boolean; write: boolean }>) =>
        void perms.set(p, list.map((x) => `${x.read ? 'r' : x.write ? 'w' : 'n'}${x.domid}`).join(',')),
    };
    expect(await xenAttach({ xs, backendDomid: 0, domid: 4, vhost: 1, luns: [{ pdev: 'disk0', vdev: '0:0:0:0' }, { pdev: 'disk1', vdev: '0:0:0:1' }] })).toEqual([0, 1]);
    const be = '/local/domain/0/backend/vscsi/4/1';
    const fe = '/local/domain/4/device/vscsi/1';
    // Backend nodes: owned by dom0, readable by the guest; frontend nodes: owned by the guest.
    expect(perms.get(be)).toBe('n0,r4');
    expect(perms.get(`${be}/vscsi-devs/dev-1/v-dev`)).toBe('n0,r4');
    expect(perms.get(fe)).toBe('n4,r0');
    expect(perms.get(`${fe}/state`)).toBe('n4,r0');
    expect(await xs.read(`${be}/frontend`)).toBe(fe);
    expect(await xs.read(`${be}/frontend-id`)).toBe('4');
    expect(await xs.read(`${be}/online`)).toBe('1');
    expect(await xs.read(`${be}/state`)).toBe('1');
    expect(await xs.read(`${be}/feature-host`)).toBe('0');
    expect(await xs.read(`${be}/vscsi-devs/dev-1/p-dev`)).toBe('disk1');
    expect(await xs.read(`${be}/vscsi-devs/dev-1/v-dev`)).toBe('0:0:0:1');
    expect(await xs.read(`${be}/vscsi-devs/dev-1/state`)).toBe('1');
    expect(await xs.read(`${fe}/backend`)).toBe(be);
    expect(await xs.read(`${fe}/backend-id`)).toBe('0');
    expect(await xs.read(`${fe}/state`)).toBe('1');
    await expect(xenAttach({ xs, backendDomid: 0, domid: 4, vhost: 1, luns: [{ pdev: 'disk2', vdev: '0:0:0:1' }] })).rejects.toThrow(/already has a LUN at 0:0:0:1/);
    await expect(xenAttach({ xs, backendDomid: 0, domid: 4, vhost: 1, luns: [{ pdev: 'disk2', vdev: '0:0:1' }] })).rejects.toThrow(/host:channel:target:lun/);
    await expect(xenAttach({ xs, backendDomid: 0, domid: 0, vhost: 1, luns: [{ pdev: 'd', vdev: '0:0:0:0' }] })).rejects.toThrow(/backend domain itself/);
    // Not connected: a new LUN is just added in state 1 (picked up at connect), no Reconfiguring.
    expect(await xenAttach({ xs, backendDomid: 0, domid: 4, vhost: 1, luns: [{ pdev: 'disk2', vdev: '0:0:0:2' }] })).toEqual([2]);
    expect(await xs.read(`${be}/state`)).toBe('1');
    await xenDetach({ xs, backendDomid: 0, domid: 4, vhost: 1, vdev: '0:0:0:2' });
    expect(await xs.directory(`${be}/vscsi-devs`)).toEqual(['dev-0', 'dev-1']);
    await expect(xenDetach({ xs, backendDomid: 0, domid: 4, vhost: 9 })).rejects.toThrow(/no vscsi vhost 9/);
    // No frontend ever connected: the whole vhost goes at once, without waiting for a backend.
    await xenDetach({ xs, backendDomid: 0, domid: 4, vhost: 1, timeoutMs: 200 });
    expect(await xs.directory('/local/domain/0/backend/vscsi/4')).toEqual([]);
    expect(await xs.directory('/local/domain/4/device/vscsi')).toEqual([]);
  });
});
