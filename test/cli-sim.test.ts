// The `vtgt sim` commands run the fabric simulators as a process and report what they verified.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { BIN, ProcessScope } from './service-helpers.js';

const scope = new ProcessScope();
afterEach(() => scope.killAll());
afterAll(() => scope.cleanup());

function sim(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, 'sim', ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('vtgt sim', () => {
  it('xen: simulated domains verify their data through the pvSCSI backend', () => {
    const r = sim('xen', '--domains', '1', '--seconds', '1');
    expect(r.code).toBe(0);
    const m = /^xen-sim: (\d+) commands, (\d+) errors, (\d+) bytes verified$/m.exec(r.out);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(Number(m![2])).toBe(0);
    expect(Number(m![3])).toBeGreaterThan(0);
  });

  it('ibmvio: simulated client partitions verify their data through the VIO server', () => {
    const r = sim('ibmvio', '--clients', '1', '--seconds', '1');
    expect(r.code).toBe(0);
    const m = /^ibmvio-sim: (\d+) commands, (\d+) errors, (\d+) bytes verified$/m.exec(r.out);
    expect(m).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(0);
    expect(Number(m![3])).toBeGreaterThan(0);
  });

  it('drives the IBM VIO and Xen fabrics of a running vtgt serve', async () => {
    const data = scope.tempDir();
    writeFileSync(
      join(data, 'vtgt.yaml'),
      [
        'backstores: [{name: viodisk, type: memory, size: 32MiB}, {name: xendisk, type: memory, size: 16MiB}]',
        'iscsi: {portals: ["127.0.0.1:0"]}',
        'xen: {hypervisor: sim}',
        'ibmvio:',
        '  hypervisor: sim',
        '  adapters: [{name: vhost0, unit: 0x30000000, clientUnit: 0x71000000, clientPartition: 10, luns: [{lun: 0, backstore: viodisk}]}]',
      ].join('\n'),
    );
    const svc = await scope.startService(data);
    const xen = sim('xen', '--data', data, '--pdev', 'xendisk', '--seconds', '1');
    expect(xen.code, xen.err).toBe(0);
    expect(xen.out).toMatch(/^xen-sim: [1-9]\d* commands, 0 errors, [1-9]\d* bytes verified$/m);
    const vio = sim('ibmvio', '--data', data, '--client-unit', '0x71000000', '--seconds', '1');
    expect(vio.code, vio.err).toBe(0);
    expect(vio.out).toMatch(/^ibmvio-sim: [1-9]\d* commands, 0 errors, [1-9]\d* bytes verified$/m);
    svc.proc.kill('SIGTERM');
    expect((await svc.exited).code).toBe(0);
  });

  it('refuses out-of-range arguments with exit code 2', () => {
    expect(sim('xen', '--domains', '0').code).toBe(2);
    expect(sim('ibmvio', '--seconds', 'forever').code).toBe(2);
    expect(sim('ibmvio', '--client-unit', 'lpar10').code).toBe(2);
  });
});
