/**
 * Real initiators (libiscsi's iscsi-ls / iscsi-inq, QEMU's iSCSI block driver) against the target
 * started as a separate process. Needs Debian libiscsi-bin, qemu-utils and qemu-block-extra.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hasTool, startServiceProcess, startTargetProcess, type TargetProcess } from './helpers/iscsi-target-process.js';
import { pattern } from './helpers/iscsi-harness.js';

const IQN = 'iqn.2026-11.org.vtgt:initiators';
const tools = ['iscsi-ls', 'iscsi-inq', 'qemu-io', 'qemu-img'].filter((t) => !hasTool(t));

function run(cmd: string, args: string[], timeoutMs = 30000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe.skipIf(tools.length > 0)(`real initiators${tools.length ? ` (skipped: missing ${tools.join(', ')})` : ''}`, () => {
  let plain: TargetProcess;
  let chap: TargetProcess;
  let dir: string;
  let url: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vtgt-iscsi-'));
    plain = await startTargetProcess(['--target', IQN, '--lun', `0=file:${join(dir, 'lun0.img')}:64M`, '--lun', '1=memory:16M'], { VTGT_LOG: 'info' });
    chap = await startTargetProcess(['--target', IQN, '--lun', '0=memory:8M', '--chap', 'alice:alice-secret-1', '--mutual-chap', 'tgt:target-secret-2']);
    url = `iscsi://127.0.0.1:${plain.ports[0]}/${IQN}`;
  }, 60000);
  afterAll(async () => {
    await plain?.stop();
    await chap?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('iscsi-ls discovers the target and its LUNs', async () => {
    const r = await run('iscsi-ls', ['-s', `iscsi://127.0.0.1:${plain.ports[0]}`]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`Target:${IQN} Portal:127.0.0.1:${plain.ports[0]},1`);
    expect(r.out).toMatch(/Lun:0\s+Type:DIRECT_ACCESS \(Size:6[34]M\)/);
    expect(r.out).toMatch(/Lun:1\s+Type:DIRECT_ACCESS/);
  });

  it('iscsi-inq reads standard INQUIRY and the unit serial number page', async () => {
    const r = await run('iscsi-inq', [`${url}/0`]);
    expect(r.code).toBe(0);
    expect(r.out).toContain('Vendor:VTGT');
    const sn = await run('iscsi-inq', ['-e', '1', '-c', '128', `${url}/0`]);
    expect(sn.code).toBe(0);
    expect(sn.out).toMatch(/Unit Serial Number:\s*\S+/);
  });

  it('iscsi-inq logs in with mutual CHAP and is refused with a wrong secret', async () => {
    const base = `127.0.0.1:${chap.ports[0]}/${IQN}/0`;
    const ok = await run('iscsi-inq', [`iscsi://alice%alice-secret-1@${base}?target_user=tgt&target_password=target-secret-2`]);
    expect(ok.out).toContain('Vendor:VTGT');
    const bad = await run('iscsi-inq', [`iscsi://alice%wrong-secret-99@${base}`]);
    expect(bad.code).not.toBe(0);
    expect(bad.out).not.toContain('Vendor:VTGT');
  });

  it('qemu-io writes patterns and reads them back byte-exact', async () => {
    const cmds = [
      'write -P 0x5a 0 1M',
      'write -P 0xc3 1048576 4k',
      'write -P 0x11 3145728 300k',
      'read -P 0x5a 0 1M',
      'read -P 0xc3 1048576 4k',
      'read -P 0x11 3145728 300k',
      'read -P 0x00 8388608 64k',
    ].flatMap((c) => ['-c', c]);
    const r = await run('qemu-io', ['-f', 'raw', ...cmds, `${url}/0`]);
    expect(r.out).not.toMatch(/Pattern verification failed|error|failed/i);
    expect(r.out.match(/^read \d+\/\d+ bytes/gm)?.length).toBe(4);
  });

  it('qemu-io negotiates header and data digests (CRC32C) and moves data intact', async () => {
    const opts = `driver=iscsi,transport=tcp,portal=127.0.0.1:${plain.ports[0]},target=${IQN},lun=1,header-digest=crc32c`;
    const r = await run('qemu-io', ['--image-opts', '-c', 'write -P 0x6b 65536 1M', '-c', 'read -P 0x6b 65536 1M', opts]);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/^read 1048576\/1048576 bytes/m);
    expect(plain.log()).toMatch(/"initiator":"iqn\.2008-11\.org\.linux-kvm[^"]*".*"headerDigest":"CRC32C"/);
  });

  it('qemu-img converts a whole image to the LUN and back byte-exact', async () => {
    const src = join(dir, 'src.img');
    const back = join(dir, 'back.img');
    const image = pattern(16 * 1024 * 1024, 7);
    await writeFile(src, image);
    const up = await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, `${url}/1`], 60000);
    expect(up.code, up.out).toBe(0);
    const down = await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', `${url}/1`, back], 60000);
    expect(down.code, down.out).toBe(0);
    expect((await readFile(back)).equals(image)).toBe(true);
  });
});

describe.skipIf(tools.length > 0)('the vtgt service as a process, with QEMU and libiscsi', () => {
  let svc: TargetProcess;
  let dir: string;
  const SVC_IQN = 'iqn.2026-11.org.vtgt:service-test';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vtgt-iscsi-svc-'));
    svc = await startServiceProcess(
      dir,
      [
        'backstores:',
        '  - { name: disk0, type: file, path: disk0.img, size: 32MiB }',
        'targets:',
        `  - name: ${SVC_IQN}`,
        '    luns:',
        '      - { lun: 0, backstore: disk0 }',
        '    acls: []',
        'accounts: []',
        'iscsi:',
        '  portals: [127.0.0.1:0]',
        '',
      ].join('\n'),
    );
  }, 60000);
  afterAll(async () => {
    await svc?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('serves iscsi-ls and a byte-exact qemu-img round trip', async () => {
    const url = `iscsi://127.0.0.1:${svc.ports[0]}/${SVC_IQN}/0`;
    const ls = await run('iscsi-ls', ['-s', `iscsi://127.0.0.1:${svc.ports[0]}`]);
    expect(ls.out).toContain(`Target:${SVC_IQN}`);
    const src = join(dir, 'src.img');
    const back = join(dir, 'back.img');
    const image = pattern(8 * 1024 * 1024, 11);
    await writeFile(src, image);
    const up = await run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, url], 60000);
    expect(up.code, up.out).toBe(0);
    const down = await run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', url, back], 60000);
    expect(down.code, down.out).toBe(0);
    expect((await readFile(back)).subarray(0, image.length).equals(image)).toBe(true);
  });
});
