import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { VioAdapter } from '../src/ibmvio/adapter.js';
import { SimPowerVM } from '../src/ibmvio/sim/hypervisor.js';
import type { ScriptStep, ScriptStepResult } from '../src/ibmvio/sim/script.js';
import { spawnPartition } from '../src/ibmvio/sim/spawn.js';
import { IscsiServer } from '../src/iscsi/server.js';
import { ReservationManager } from '../src/vscsi/pr/index.js';
import { ScsiCore } from '../src/vscsi/core.js';
import { IscsiTestClient } from './helpers/iscsi-client.js';

const run = promisify(execFile);
const haveQemu = existsSync('/usr/bin/qemu-io') && existsSync('/usr/bin/qemu-img');
const IQN = 'iqn.2026-11.org.vtgt:unified';

/** One backstore, two fabrics: an emulated LPAR over IBM VIO and QEMU's iSCSI client. */
describe.skipIf(!haveQemu)('unified export: IBM VIO + iSCSI on one backstore', () => {
  it('moves bytes both ways byte-exact; a reservation on either fabric fences writes from the other', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vtgt-unified-'));
    const core = new ScsiCore({ reservations: (o) => ReservationManager.open(o) });
    const lu = core.addLogicalUnit({ id: 'shared', backstore: new MemoryBackstore({ name: 'shared', size: 1 << 20 }) });
    await lu.ready;
    const iscsiTarget = core.createTarget({ name: IQN });
    iscsiTarget.luns.set(0, lu);
    const iscsi = new IscsiServer({ core, nopInterval: 0 });
    const vioTarget = core.createTarget({ name: 'ibmvio:vhost0' });
    const vioPort = vioTarget.addPort({ name: 'vhost0' });
    vioTarget.luns.set(0, lu);
    const hv = new SimPowerVM({ socketPath: join(dir, 'powervm.sock') });
    hv.addAdapterPair({ serverUnit: 0x30000000, clientUnit: 0x71000000, clientPartition: 10 });
    const adapter = new VioAdapter(hv, {
      unit: 0x30000000, deviceName: 'vhost0', partitionName: 'vios', partitionNumber: 1, profile: 'linux',
      openNexus: (initiator, profile) => core.openNexus({ target: vioTarget, targetPort: vioPort, initiator, profile }),
    });
    try {
      const portal = await iscsi.addPortal({ host: '127.0.0.1', port: 0 });
      iscsi.addTarget({ target: iscsiTarget });
      const url = `iscsi://127.0.0.1:${portal.port}/${IQN}/0`;
      await hv.listen();
      adapter.start();
      const lpar = async (script: ScriptStep[]): Promise<ScriptStepResult[]> => {
        const p = spawnPartition({ socketPath: join(dir, 'powervm.sock'), unit: 0x71000000,
          partitionName: 'lpar10', aix: false, mode: 'script', seconds: 0, workers: 0, maxBlocks: 0, seed: 1, script });
        const r = await p.done;
        expect(r.code, r.logs.join('\n')).toBe(0);
        return (r.result as { steps: ScriptStepResult[] }).steps;
      };
      const qemuIo = async (cmd: string) => (await run('qemu-io', ['-f', 'raw', '-c', cmd, url])).stdout + '';

      // LPAR -> iSCSI: the LPAR writes 96 KiB at LBA 8; QEMU reads the LUN back.
      const a = randomBytes(96 * 1024);
      await writeFile(join(dir, 'a.bin'), a);
      expect(await lpar([{ op: 'write', lun: 0, lba: 8, file: join(dir, 'a.bin') }])).toEqual([{ status: 0 }]);
      await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', url, join(dir, 'dump.raw')]);
      const dump = await readFile(join(dir, 'dump.raw'));
      expect(dump.subarray(8 * 512, 8 * 512 + a.length).equals(a)).toBe(true);

      // iSCSI -> LPAR: QEMU writes 64 KiB at 512 KiB; the LPAR reads it through VIO.
      const b = randomBytes(64 * 1024);
      await writeFile(join(dir, 'b.bin'), b);
      await qemuIo(`write -s ${join(dir, 'b.bin')} ${512 * 1024} ${b.length}`);
      expect(await lpar([{ op: 'read', lun: 0, lba: 1024, blocks: 128, file: join(dir, 'b-read.bin') }])).toEqual([{ status: 0 }]);
      expect((await readFile(join(dir, 'b-read.bin'))).equals(b)).toBe(true);

      // The LPAR registers and takes a WRITE EXCLUSIVE persistent reservation over VIO: QEMU's
      // writes over iSCSI now conflict, its reads do not; after the LPAR unregisters they succeed.
      const prOut = (sa: number, type: number, key: bigint, saKey: bigint) => {
        const cdb = Buffer.alloc(10);
        cdb[0] = 0x5f;
        cdb[1] = sa;
        cdb[2] = type;
        cdb.writeUInt32BE(24, 5);
        const p = Buffer.alloc(24);
        p.writeBigUInt64BE(key, 0);
        p.writeBigUInt64BE(saKey, 8);
        return { op: 'cdb' as const, lun: 0, cdb: cdb.toString('hex'), dir: 'write' as const, data: p.toString('hex') };
      };
      const reserved = await lpar([prOut(0x00, 0, 0n, 0x1234n), prOut(0x01, 0x01, 0x1234n, 0n)]);
      expect(reserved).toEqual([{ status: 0 }, { status: 0 }]);
      const blocked = await qemuIo(`write -P 0x77 0 4096`).catch((e: { stdout?: string; stderr?: string }) => `${e.stdout ?? ''}${e.stderr ?? ''}`);
      expect(blocked).toMatch(/failed|error/i);
      // The refused write left nothing behind: the blocks still read as zeroes.
      const readOk = await qemuIo(`read -P 0x00 0 4096`);
      expect(readOk).toMatch(/read 4096\/4096 bytes/);
      expect(await lpar([prOut(0x00, 0, 0x1234n, 0n)])).toEqual([{ status: 0 }]);
      const after = await qemuIo(`write -P 0x77 0 4096`);
      expect(after).toMatch(/wrote 4096\/4096 bytes/);

      // The reverse: an iSCSI initiator registers and takes WRITE EXCLUSIVE; the LPAR's WRITE gets
      // RESERVATION CONFLICT while its READ is allowed (SPC-4 table 48); after RELEASE it writes again.
      const ini = await IscsiTestClient.connect(portal.port);
      try {
        expect((await ini.login({ initiator: 'iqn.2026-11.org.vtgt:test-pr', target: IQN })).status).toBe(0);
        const prParams = (key: bigint, saKey: bigint) => {
          const p = Buffer.alloc(24);
          p.writeBigUInt64BE(key, 0);
          p.writeBigUInt64BE(saKey, 8);
          return p;
        };
        const prCdb = (sa: number, type: number) => {
          const c = Buffer.alloc(10);
          c[0] = 0x5f;
          c[1] = sa;
          c[2] = type;
          c.writeUInt32BE(24, 5);
          return c;
        };
        expect((await ini.scsi(prCdb(0x00, 0), { write: prParams(0n, 0xabcdn) })).status).toBe(0);
        expect((await ini.scsi(prCdb(0x01, 0x01), { write: prParams(0xabcdn, 0n) })).status).toBe(0);
        await writeFile(join(dir, 'c.bin'), randomBytes(4096));
        const fenced = await lpar([
          { op: 'write', lun: 0, lba: 16, file: join(dir, 'c.bin') },
          { op: 'read', lun: 0, lba: 16, blocks: 8, file: join(dir, 'c-read.bin') },
        ]);
        expect(fenced).toEqual([{ status: 0x18 }, { status: 0 }]);
        expect((await readFile(join(dir, 'c-read.bin'))).equals(a.subarray(8 * 512, 8 * 512 + 4096))).toBe(true);
        expect((await ini.scsi(prCdb(0x02, 0x01), { write: prParams(0xabcdn, 0n) })).status).toBe(0);
        expect(await lpar([{ op: 'write', lun: 0, lba: 16, file: join(dir, 'c.bin') }])).toEqual([{ status: 0 }]);
        await ini.logout();
      } finally {
        ini.close();
      }
    } finally {
      await adapter.stop();
      await hv.close();
      await iscsi.close();
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
