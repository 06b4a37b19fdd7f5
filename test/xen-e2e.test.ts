import { afterEach, describe, expect, it, vi } from "vitest";
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ScsiCore } from '../src/vscsi/core.js';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { SimXenServer } from '../src/xen/sim/server.js';
import { SimHypervisor } from '../src/xen/sim/sim-hypervisor.js';
import { SimXenClient } from '../src/xen/sim/client.js';
import { GuestMemoryFile } from '../src/xen/sim/guest-memory.js';
import { memoryFileName } from '../src/xen/sim/grant-table.js';
import { XenScsiServer } from '../src/xen/server.js';
import { coreHostFactory } from '../src/xen/core-host.js';
import { xenAttach, xenDetach } from '../src/xen/toolstack.js';
import { ScsiFront } from '../src/xen/sim/frontend.js';
import { VerifiedWorkload } from '../src/xen/sim/workload.js';
import { backendPath } from '../src/xen/xenbus-nodes.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'vtgt-xen-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, 'xen.sock');
  const daemon = new SimXenServer();
  await daemon.listen(sock);
  cleanups.push(() => daemon.close());
  const core = new ScsiCore();
  core.addLogicalUnit({ id: 'disk1', backstore: new MemoryBackstore({ name: 'disk1', size: 16 << 20 }) });
  core.addLogicalUnit({ id: 'disk2', backstore: new MemoryBackstore({ name: 'disk2', size: 16 << 20 }) });
  core.addLogicalUnit({ id: 'disk3', backstore: new MemoryBackstore({ name: 'disk3', size: 16 << 20 }) });
  const startBackend = async () => {
    const hv = await SimHypervisor.connect(sock, dir, 0);
    const logger = process.env.XEN_DEBUG ? (await import('pino')).default({ level: 'debug' }, (await import('pino')).default.destination(2)) : undefined;
    const server = new XenScsiServer({ hv, hostFactory: coreHostFactory({ core }), ...(logger ? { logger } : {}) });
    await server.start();
    return { hv, server, stop: async () => { await server.stop(); await hv.close(); } };
  };
  let backend = await startBackend();
  cleanups.push(() => backend.stop());
  const toolstack = await SimXenClient.connect(sock, 0);
  cleanups.push(() => toolstack.close());
  const guest = async (domid: number) => {
    const memory = GuestMemoryFile.create(join(dir, memoryFileName(domid)), 4096);
    const client = await SimXenClient.connect(sock, domid, { tokenFile: daemon.createDomain(domid) });
    const front = new ScsiFront({ client, memory, vhost: 0 });
    cleanups.push(async () => { await front.close(); await client.close(); memory.close(); });
    return front;
  };
  return {
    dir, sock, daemon, core, toolstack, guest,
    get backend() { return backend; },
    restart: async () => { await backend.stop(); backend = await startBackend(); },
  };
}

describe('xen end to end (in-process frontend)', () => {
  it('handshakes, scans and runs a verified workload with abort and reset', async () => {
    const s = await setup();
    await xenAttach({ xs: s.toolstack.xenstore, backendDomid: 0, domid: 1, vhost: 0, luns: [{ pdev: 'disk1', vdev: '0:0:0:0' }] });
    const front = await s.guest(1);
    await front.connect();
    expect(front.deviceList().map((d) => d.addr.lun)).toEqual([0]);
    await vi.waitFor(async () => expect(await s.toolstack.xenstore.read(`${backendPath(0, 1, 0)}/vscsi-devs/dev-0/state`)).toBe('4'));
    const w = new VerifiedWorkload(front, { seconds: 0.6, seed: 7, taskManagement: true });
    const r = await w.run();
    expect(r.errors, r.lines.join('\n')).toBe(0);
    expect(r.bytesVerified).toBeGreaterThan(0);
    expect(r.lines.some((l) => l.includes('ABORT'))).toBe(true);
    expect(r.lines.some((l) => l.includes('LUN RESET'))).toBe(true);
  });

  it('hot-plugs and unplugs a LUN while connected, and detaches the vhost', async () => {
    const s = await setup();
    const xs = s.toolstack.xenstore;
    await xenAttach({ xs, backendDomid: 0, domid: 2, vhost: 0, luns: [{ pdev: 'disk1', vdev: '0:0:0:0' }] });
    const front = await s.guest(2);
    await front.connect();
    await xenAttach({ xs, backendDomid: 0, domid: 2, vhost: 0, luns: [{ pdev: 'disk2', vdev: '0:0:0:1' }], timeoutMs: 5000 });
    expect(front.deviceList().map((d) => d.addr.lun).sort()).toEqual([0, 1]);
    const w = new VerifiedWorkload(front, { seconds: 0.3, seed: 3 });
    const r = await w.run();
    expect(r.errors, r.lines.join('\n')).toBe(0);
    await xenDetach({ xs, backendDomid: 0, domid: 2, vhost: 0, vdev: '0:0:0:1', timeoutMs: 5000 });
    expect(front.deviceList().map((d) => d.addr.lun)).toEqual([0]);
    expect(await xs.directory(`${backendPath(0, 2, 0)}/vscsi-devs`)).toEqual(['dev-0']);
    await xenDetach({ xs, backendDomid: 0, domid: 2, vhost: 0, timeoutMs: 5000 });
    expect(await xs.read(`${backendPath(0, 2, 0)}/state`)).toBeUndefined();
    await vi.waitFor(() => expect(s.backend.server.device(2, 0)).toBeUndefined());
  });

  it('serves two vhosts of one domU at once, each with its own channel:target:lun map', async () => {
    const s = await setup();
    const xs = s.toolstack.xenstore;
    await xenAttach({ xs, backendDomid: 0, domid: 4, vhost: 0, luns: [{ pdev: 'disk1', vdev: '0:0:0:0' }] });
    await xenAttach({ xs, backendDomid: 0, domid: 4, vhost: 1, luns: [{ pdev: 'disk2', vdev: '1:0:1:0' }, { pdev: 'disk3', vdev: '1:0:2:5' }] });
    const memory = GuestMemoryFile.create(join(s.dir, memoryFileName(4)), 4096);
    const client = await SimXenClient.connect(s.sock, 4, { tokenFile: s.daemon.createDomain(4) });
    const fronts = [0, 1].map((v) => new ScsiFront({ client, memory, vhost: v, pages: { first: v * 2048, count: 2048 }, grefs: { first: v * 2048, count: 2048 } }));
    cleanups.push(async () => {
      for (const f of fronts) await f.close();
      await client.close();
      memory.close();
    });
    await Promise.all(fronts.map((f) => f.connect()));
    expect(fronts[1]!.deviceList().map((d) => `${d.addr.id}:${d.addr.lun}`).sort()).toEqual(['1:0', '2:5']);
    const results = await Promise.all(fronts.map((f, i) => new VerifiedWorkload(f, { seconds: 0.5, seed: 21 + i }).run()));
    for (const r of results) expect(r.errors, r.lines.join('\n')).toBe(0);
    const text = results[1]!.lines.join('\n');
    // REPORT LUNS is per target id: target 1 has LUN 0 only, target 2 has LUN 5 (the core may also
    // list a LUN 0 placeholder where none is mapped) and nothing of target 1.
    expect(text).toMatch(/1:0:1:0: .*LUNs \[0\]/);
    expect(text).toMatch(/1:0:2:5: .*LUNs \[(0,)?5\]/);
    expect(results[1]!.lines.at(-1)).toMatch(/over 2 LUN\(s\)/);
    // An address of vhost 1 is unknown on vhost 0.
    const r = await fronts[0]!.command({ channel: 0, id: 2, lun: 5 }, Buffer.alloc(6));
    expect(r.rslt).toBe(0x10000);
  });

  it('follows a frontend that closes (guest shutdown) and connects again (reboot)', async () => {
    const s = await setup();
    const xs = s.toolstack.xenstore;
    await xenAttach({ xs, backendDomid: 0, domid: 8, vhost: 0, luns: [{ pdev: 'disk1', vdev: '0:0:0:0' }] });
    const front = await s.guest(8);
    await front.connect();
    const be = backendPath(0, 8, 0);
    const w1 = await new VerifiedWorkload(front, { seconds: 0.2, seed: 1 }).run();
    expect(w1.errors).toBe(0);
    front.paused = true;
    await xs.write(`${front.fePath}/state`, '5');
    await vi.waitFor(async () => expect(await xs.read(`${be}/state`)).toBe('5'));
    await xs.write(`${front.fePath}/state`, '6');
    await vi.waitFor(async () => expect(await xs.read(`${be}/state`)).toBe('6'));
    expect(s.backend.server.device(8, 0)?.ringStats).toBeUndefined(); // ring unmapped, device kept (online 1)
    await front.reconnect();
    expect(await xs.read(`${be}/state`)).toBe('4');
    const w2 = await new VerifiedWorkload(front, { seconds: 0.3, seed: 2, freshDisk: false }).run();
    expect(w2.errors, w2.lines.join('\n')).toBe(0);
    expect(w2.bytesVerified).toBeGreaterThan(0);
  });

  it('rides through a backend restart with I/O in flight', async () => {
    const s = await setup();
    await xenAttach({ xs: s.toolstack.xenstore, backendDomid: 0, domid: 3, vhost: 0, luns: [{ pdev: 'disk1', vdev: '0:0:0:0' }] });
    const front = await s.guest(3);
    await front.connect();
    const w = new VerifiedWorkload(front, { seconds: 0.8, seed: 11 });
    const run = w.run();
    await new Promise((r) => setTimeout(r, 300));
    await s.restart();
    const r = await run;
    expect(r.errors, r.lines.join('\n')).toBe(0);
    expect(s.backend.server.device(3, 0)?.ringStats?.requests ?? 0).toBeGreaterThan(0);
  });
});

describe('xen hostile frontend (in-process)', () => {
  it('answers every attack per protocol, halts only the hostile ring, never touches ungranted pages', async () => {
    const { runHostile } = await import('../src/xen/sim/hostile.js');
    const s = await setup();
    const xs = s.toolstack.xenstore;
    await xenAttach({ xs, backendDomid: 0, domid: 5, vhost: 0, luns: [{ pdev: 'disk1', vdev: '0:0:0:0' }] });
    await xenAttach({ xs, backendDomid: 0, domid: 6, vhost: 0, luns: [{ pdev: 'disk2', vdev: '0:0:0:0' }] });
    const good = await s.guest(5);
    const bad = await s.guest(6);
    await good.connect();
    await bad.connect();
    const normal = new VerifiedWorkload(good, { seconds: 1.5, seed: 5 }).run();
    const memory = (bad as unknown as { o: { memory: GuestMemoryFile } }).o.memory;
    const h = await runHostile(bad, memory, { channel: 0, id: 0, lun: 0 });
    const r = await normal;
    expect(h.failures, h.lines.join('\n')).toBe(0);
    expect(h.lines.length).toBeGreaterThanOrEqual(15);
    expect(r.errors, r.lines.join('\n')).toBe(0);
    expect(r.bytesVerified).toBeGreaterThan(0);
    expect(s.backend.server.device(5, 0)?.ringHalted).toBeUndefined();
  });
});
