/**
 * Unified export: one backstore served to a Xen domU (pvSCSI through the simulated hypervisor) and
 * over iSCSI at the same time; bytes written on one side read back exactly on the other, with QEMU's
 * iSCSI client (qemu-io, libiscsi) as the iSCSI initiator.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDevArgs, startDevTarget } from '../src/iscsi/dev-target.js';
import { SimXenServer } from '../src/xen/sim/server.js';
import { SimHypervisor } from '../src/xen/sim/sim-hypervisor.js';
import { SimXenClient } from '../src/xen/sim/client.js';
import { GuestMemoryFile } from '../src/xen/sim/guest-memory.js';
import { memoryFileName } from '../src/xen/sim/grant-table.js';
import { XenScsiServer } from '../src/xen/server.js';
import { coreHostFactory } from '../src/xen/core-host.js';
import { xenAttach } from '../src/xen/toolstack.js';
import { ScsiFront } from '../src/xen/sim/frontend.js';

const run = promisify(execFile);

async function qemuIscsiAvailable(): Promise<boolean> {
  try {
    const { stdout } = await run('qemu-img', ['--help']);
    return /\biscsi\b/.test(stdout);
  } catch {
    return false;
  }
}
const haveQemu = await qemuIscsiAvailable();

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const rw10 = (op: number, lba: number, blocks: number): Buffer => {
  const c = Buffer.alloc(10);
  c[0] = op;
  c.writeUInt32BE(lba, 2);
  c.writeUInt16BE(blocks, 7);
  return c;
};

describe.skipIf(!haveQemu)('unified export: one backstore to a domU and over iSCSI', () => {
  it('domU writes read back byte-exact through qemu-io over iSCSI, and the other way round', async () => {
    const dev = await startDevTarget(parseDevArgs(['--lun', '0=memory:32M']));
    cleanups.push(() => dev.close());
    const url = `iscsi://127.0.0.1:${dev.ports[0]}/iqn.2026-11.org.vtgt:dev/0`;

    const dir = mkdtempSync(join(tmpdir(), 'vtgt-xen-unified-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const sock = join(dir, 'xen.sock');
    const daemon = new SimXenServer();
    await daemon.listen(sock);
    cleanups.push(() => daemon.close());
    const hv = await SimHypervisor.connect(sock, dir, 0);
    const server = new XenScsiServer({ hv, hostFactory: coreHostFactory({ core: dev.core }) });
    await server.start();
    cleanups.push(async () => {
      await server.stop();
      await hv.close();
    });
    const ts = await SimXenClient.connect(sock, 0);
    cleanups.push(() => ts.close());
    await xenAttach({ xs: ts.xenstore, backendDomid: 0, domid: 1, vhost: 0, luns: [{ pdev: 'dev0', vdev: '0:0:0:0' }] });
    const memory = GuestMemoryFile.create(join(dir, memoryFileName(1)), 512);
    const client = await SimXenClient.connect(sock, 1, { tokenFile: daemon.createDomain(1) });
    const front = new ScsiFront({ client, memory, vhost: 0 });
    cleanups.push(async () => {
      await front.close();
      await client.close();
      memory.close();
    });
    await front.connect();
    const a = { channel: 0, id: 0, lun: 0 };
    // Clear the power-on unit attention.
    for (let i = 0; i < 3 && (await front.command(a, Buffer.alloc(6))).rslt !== 0; i++);

    // domU -> iSCSI: 64 KiB of 0xa5 at 1 MiB (LBA 2048).
    const w = await front.command(a, rw10(0x2a, 2048, 128), { dataOut: Buffer.alloc(65536, 0xa5) });
    expect(w.rslt).toBe(0);
    const r1 = await run('qemu-io', ['-f', 'raw', '-c', 'read -P 0xa5 1M 64k', '-c', 'read -P 0 0 1M', url]);
    expect(r1.stdout).not.toMatch(/Pattern verification failed/);
    expect(r1.stdout).toMatch(/read 65536\/65536 bytes/);

    // iSCSI -> domU: 128 KiB of 0x3c at 2 MiB (32 pages: the domU reads it with indirect segments).
    const r2 = await run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x3c 2M 128k', url]);
    expect(r2.stdout).toMatch(/wrote 131072\/131072 bytes/);
    const rd = await front.command(a, rw10(0x28, 4096, 256), { readLength: 131072 });
    expect(rd.rslt).toBe(0);
    expect(rd.data.equals(Buffer.alloc(131072, 0x3c))).toBe(true);
    const edge = await front.command(a, rw10(0x28, 4095, 1), { readLength: 512 });
    expect(edge.data.equals(Buffer.alloc(512, 0))).toBe(true);
  }, 30_000);
});
