// `vtgt serve` as a real process on the real core, backstores and iSCSI server, driven by the `vtgt`
// CLI (spawned), libiscsi's iscsi-ls and qemu-io: hot LUN add/remove, SIGHUP reload, and a graceful
// stop with a session logged in after which every acknowledged write is still there.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SERVICE_SEMI_SPACE_MIB } from '../src/service/young-generation.js';
import { BIN, DEFAULT_TARGET as T, ProcessScope, tool, vtgt } from './service-helpers.js';

const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');

const scope = new ProcessScope();
const tempDir = () => scope.tempDir();
const startService = (data: string, extra?: string[], env?: NodeJS.ProcessEnv) => scope.startService(data, extra, env);
afterEach(() => scope.killAll());
afterAll(() => scope.cleanup());

describe('vtgt serve process', () => {
  it('serves the default target; CLI hot-adds and removes a LUN; SIGHUP reloads the file', async () => {
    const data = tempDir();
    const svc = await startService(data);
    const portal = `iscsi://127.0.0.1:${svc.port}`;
    // Restarted in place (the PID we spawned, which SIGHUP below reaches) with the service's young generation.
    expect(cmdline(svc.proc.pid!)).toContain(`--max-semi-space-size=${SERVICE_SEMI_SPACE_MIB}`);
    expect(statSync(join(data, 'vtgt.sock')).mode & 0o777).toBe(0o600);
    // WRITE ATOMIC's intent journal for the file LUN lives in the data directory.
    expect(statSync(join(data, 'atomic', 'disk0.journal')).isFile()).toBe(true);
    // The default LUN: a 1 GiB thin image, next to nothing allocated.
    const img = statSync(join(data, 'disk0.img'));
    expect(img.size).toBe(1024 ** 3);
    expect(img.blocks * 512).toBeLessThan(1024 * 1024);

    let ls = tool('iscsi-ls', '-s', portal);
    expect(ls.out).toContain(`Target:${T}`);
    expect(ls.out).toMatch(/Lun:0\s+Type:DIRECT_ACCESS/);

    const add = vtgt(data, 'lun', 'create', T, '--memory', '16MiB', '--name', 'scratch', '--lun', '3');
    expect(add.code).toBe(0);
    ls = tool('iscsi-ls', '-s', portal);
    expect(ls.out).toMatch(/Lun:3\s+Type:DIRECT_ACCESS \(Size:1[56]M\)/); // iscsi-ls rounds down

    const show = JSON.parse(vtgt(data, 'show', '--json').out);
    expect(show.targets[0].luns).toEqual([{ lun: 0, backstore: 'disk0' }, { lun: 3, backstore: 'scratch' }]);

    expect(vtgt(data, 'lun', 'delete', T, '3').code).toBe(0);
    expect(tool('iscsi-ls', '-s', portal).out).not.toMatch(/Lun:3/);

    // Usage errors exit 2, failed operations 1.
    expect(vtgt(data, 'lun', 'delete', T).code).toBe(2);
    expect(vtgt(data, 'lun', 'delete', T, '9').code).toBe(1);

    // SIGHUP: a second target appears, the running default target is untouched.
    const file = join(data, 'vtgt.yaml');
    const text = readFileSync(file, 'utf8');
    writeFileSync(file, text.replace('targets:\n', 'targets:\n  - name: iqn.2026-11.org.vtgt:second\n    luns: [{lun: 0, backstore: disk0}]\n'));
    svc.proc.kill('SIGHUP');
    let seen = false;
    for (let i = 0; i < 50 && !seen; i++) {
      await new Promise((r) => setTimeout(r, 100));
      seen = JSON.parse(vtgt(data, 'target', 'list', '--json').out).length === 2;
    }
    expect(seen).toBe(true);
    expect(tool('iscsi-ls', portal).out).toContain('iqn.2026-11.org.vtgt:second');

    // An invalid file is rejected on SIGHUP and the service keeps running as it was.
    writeFileSync(file, 'targets: [{name: bad}]\n');
    svc.proc.kill('SIGHUP');
    for (let i = 0; i < 50 && !svc.stderr().includes('reload rejected'); i++) await new Promise((r) => setTimeout(r, 100));
    expect(svc.stderr()).toContain('reload rejected');
    expect(svc.stderr()).toContain(`${file}:1:18: targets[0].name`);
    expect(JSON.parse(vtgt(data, 'target', 'list', '--json').out)).toHaveLength(2);

    svc.proc.kill('SIGTERM');
    expect(await svc.exited).toEqual({ code: 0, signal: null });
  });

  it('keeps a young-generation size the administrator chose in NODE_OPTIONS', async () => {
    const svc = await startService(tempDir(), [], { NODE_OPTIONS: '--max-semi-space-size=8' });
    expect(cmdline(svc.proc.pid!).filter((a) => a.startsWith('--max-semi-space-size'))).toEqual([]);
    expect(tool('iscsi-ls', '-s', `iscsi://127.0.0.1:${svc.port}`).out).toMatch(/Lun:0\s+Type:DIRECT_ACCESS/);
  });

  it('stops gracefully with a session logged in and loses no acknowledged write', async () => {
    const data = tempDir();
    // qemu-io may ignore the logout request; a short bound keeps the test quick (logout wait = half).
    const svc = await startService(data, ['--shutdown-timeout', '4']);
    const url = `iscsi://127.0.0.1:${svc.port}/${T}/0`;

    // A long-lived initiator session: qemu-io in interactive mode keeps the LUN open.
    const qio = scope.track(spawn('qemu-io', ['-f', 'raw', url], { stdio: ['pipe', 'pipe', 'pipe'] }));
    let qout = '';
    qio.stdout!.on('data', (c: Buffer) => (qout += c.toString()));
    qio.stderr!.on('data', (c: Buffer) => (qout += c.toString()));
    qio.stdin!.write('write -P 0x5a 1048576 1M\n');
    for (let i = 0; i < 100 && !qout.includes('wrote 1048576/1048576'); i++) await new Promise((r) => setTimeout(r, 50));
    expect(qout).toContain('wrote 1048576/1048576 bytes at offset 1048576');
    const sessions = JSON.parse(vtgt(data, 'show', '--json').out).targets[0].sessions;
    expect(sessions.length).toBeGreaterThanOrEqual(1);

    svc.proc.kill('SIGTERM');
    const exit = await svc.exited;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(svc.stderr()).toContain('backstores flushed and closed');
    expect(svc.stderr()).toContain('stopped cleanly');
    qio.kill('SIGKILL');

    // Restart on the same data directory: the write acknowledged before the stop is on disk.
    const again = await startService(data);
    const check = tool('qemu-io', '-f', 'raw', '-c', 'read -P 0x5a 1048576 1M', '-c', 'read -P 0 0 1M', `iscsi://127.0.0.1:${again.port}/${T}/0`);
    expect(check.out).toContain('read 1048576/1048576 bytes at offset 1048576');
    expect(check.out).toContain('read 1048576/1048576 bytes at offset 0');
    expect(check.out).not.toMatch(/Pattern verification failed/);
    again.proc.kill('SIGINT');
    expect((await again.exited).code).toBe(0);
  });

  it('removes a LUN while an initiator is writing to it and keeps serving', async () => {
    const data = tempDir();
    const svc = await startService(data);
    expect(vtgt(data, 'lun', 'create', T, '--memory', '64MiB', '--name', 'busy', '--lun', '1').code).toBe(0);
    const url = `iscsi://127.0.0.1:${svc.port}/${T}/1`;
    const writer = scope.track(spawn('qemu-io', ['-f', 'raw', '-c', 'aio_write -P 7 0 16M', '-c', 'aio_write -P 8 16M 16M', '-c', 'aio_flush', url], { stdio: 'ignore' }));
    const writerDone = new Promise<number | null>((r) => writer.on('exit', (code) => r(code)));
    await new Promise((r) => setTimeout(r, 150)); // let the writes get going
    const del = vtgt(data, 'lun', 'delete', T, '1');
    expect(del.code).toBe(0);
    expect(del.out).toContain('backstore busy closed');
    // Whatever the initiator makes of it, it finishes, and the service is still fine.
    const deadline = setTimeout(() => writer.kill('SIGKILL'), 20_000);
    await writerDone;
    clearTimeout(deadline);
    expect(svc.proc.exitCode).toBeNull();
    expect(JSON.parse(vtgt(data, 'lun', 'list', '--json').out)).toEqual([{ target: T, lun: 0, backstore: 'disk0' }]);
    expect(tool('iscsi-inq', `iscsi://127.0.0.1:${svc.port}/${T}/0`).code).toBe(0);
    svc.proc.kill('SIGTERM');
    expect((await svc.exited).code).toBe(0);
  });

  it('manages IBM VIO adapters and their LUN maps from the CLI', async () => {
    const data = tempDir();
    const svc = await startService(data);
    expect(vtgt(data, 'ibmvio', 'adapter', 'create', 'vhost0', '--unit', '0x30000000', '--client-unit', '0x71000000', '--client-partition', '10').code).toBe(0);
    expect(statSync(join(data, 'ibmvio-powervm.sock')).isSocket()).toBe(true); // the simulated PowerVM is up
    expect(vtgt(data, 'ibmvio', 'lun', 'create', 'vhost0', '--backstore', 'disk0').code).toBe(0);
    expect(vtgt(data, 'ibmvio', 'lun', 'create', 'vhost0', '--memory', '32MiB', '--lun', '3').code).toBe(0);
    expect(JSON.parse(vtgt(data, 'ibmvio', 'adapter', 'list', '--json').out)).toEqual([
      { name: 'vhost0', unit: '0x30000000', profile: 'linux', luns: ['0:disk0', '3:memory'], client: '0x71000000 (partition 10)' },
    ]);
    // A backstore a VIO adapter maps cannot be deleted, and unmapping it from iSCSI keeps it open.
    const del = vtgt(data, 'backstore', 'delete', 'disk0');
    expect(del.code).toBe(1);
    expect(del.err).toContain('ibmvio vhost0 LUN 0');
    expect(vtgt(data, 'lun', 'delete', T, '0').out).not.toContain('closed');
    expect(vtgt(data, 'ibmvio', 'adapter', 'create', 'vhost0', '--unit', '0x30000001').code).toBe(1); // exists
    expect(vtgt(data, 'ibmvio', 'adapter', 'create', 'vhost1', '--unit', 'thirty').code).toBe(2);
    // Saved and reloaded as part of vtgt.yaml.
    expect(vtgt(data, 'config', 'save').code).toBe(0);
    expect(readFileSync(join(data, 'vtgt.yaml'), 'utf8')).toMatch(/ibmvio:\n\s+hypervisor: sim/);
    expect(vtgt(data, 'ibmvio', 'adapter', 'delete', 'vhost0').code).toBe(0);
    expect(JSON.parse(vtgt(data, 'ibmvio', 'adapter', 'list', '--json').out)).toEqual([]);
    svc.proc.kill('SIGTERM');
    expect((await svc.exited).code).toBe(0);
  });

  it('reports a bad config file with its position and exits 1', async () => {
    const data = tempDir();
    const cfg = join(data, 'bad.yaml');
    writeFileSync(cfg, 'backstores:\n  - name: d\n    type: file\n    sizee: 1GiB\n');
    const r = spawnSync(process.execPath, [BIN, 'serve', '--data', data, '--config', cfg], { encoding: 'utf8', timeout: 15_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`${cfg}:4:5: backstores[0].sizee: unknown key "sizee" (did you mean "size"?)`);
    expect(r.stderr).toContain(`${cfg}:2:5: backstores[0].path: missing`);
    const usage = spawnSync(process.execPath, [BIN, 'serve', '--data', data, '--portal', 'nowhere:x'], { encoding: 'utf8', timeout: 15_000 });
    expect(usage.status).toBe(2);

    // A portal someone else holds: exit 1 naming the address and the likely cause, nothing left behind.
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    const inUse = spawnSync(process.execPath, [BIN, 'serve', '--data', data, '--portal', `127.0.0.1:${port}`], { encoding: 'utf8', timeout: 15_000 });
    busy.close();
    expect(inUse.status).toBe(1);
    expect(inUse.stderr).toContain(`cannot listen on iSCSI portal 127.0.0.1:${port}`);
    expect(inUse.stderr).toContain('another process listens there');
    expect(() => statSync(join(data, 'vtgt.sock'))).toThrow();
  });
});
