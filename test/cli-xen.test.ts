// `vtgt xen attach/detach` against a running `vtgt serve` with a simulated Xen: a simulated domU
// does verified I/O on the attached backstore through the service's pvSCSI backend.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SimXenClient } from '../src/xen/sim/client.js';
import { spawnDomU } from '../src/xen/sim/spawn.js';
import { ProcessScope, vtgt } from './service-helpers.js';

const scope = new ProcessScope();
afterEach(() => scope.killAll());
afterAll(() => scope.cleanup());

describe('vtgt xen attach/detach', () => {
  it('gives a simulated guest a LUN of the running service', async () => {
    const data = scope.tempDir();
    writeFileSync(
      join(data, 'vtgt.yaml'),
      'backstores: [{name: guestdisk, type: memory, size: 16MiB}]\niscsi: {portals: ["127.0.0.1:0"]}\nxen: {hypervisor: sim}\n',
    );
    const svc = await scope.startService(data);
    const attach = vtgt(data, 'xen', 'attach', '--sim', '--domain', '3', '--vhost', '0', '--lun', 'guestdisk=0:0:0:0');
    expect(attach.err).toBe('');
    expect(attach.code).toBe(0);
    expect(attach.out).toContain('attached guestdisk as 0:0:0:0 to domain 3 vhost 0');

    // The simulated hypervisor only lets in domains dom0 created (like `xl create`): create dom 3.
    const sock = join(data, 'xen-sim.sock');
    const dom0 = await SimXenClient.connect(sock, 0);
    const tokenFile = await dom0.createDomain(3);
    await dom0.close();
    const domu = await spawnDomU({ socket: sock, dir: join(data, 'xen-sim'), tokenFile, domid: 3, vhosts: [0], role: 'normal', seconds: 1, seed: 7, frames: 512 }, 20_000);
    scope.track(domu.child);
    const report = await domu.report;
    expect(report.errors, report.lines.join('\n')).toBe(0);
    expect(report.commands).toBeGreaterThan(0);
    expect(report.bytesVerified).toBeGreaterThan(0);

    // Detaching from a guest that is gone: the frontend never answers; --force removes it anyway.
    const forced = vtgt(data, 'xen', 'detach', '--sim', '--domain', '3', '--vhost', '0', '--timeout', '1', '--force');
    expect(forced.code, forced.err).toBe(0);
    expect(forced.out).toContain('detached vhost 0 from domain 3 (forced: the guest did not answer)');
    expect(vtgt(data, 'xen', 'detach', '--sim', '--domain', '3', '--vhost', '0').code).toBe(1); // already gone
    // A second guest created through the CLI gets its credential file.
    const created = vtgt(data, 'xen', 'create-domain', '--sim', '--domain', '4');
    expect(created.code, created.err).toBe(0);
    expect(created.out).toMatch(/^domain 4 created; its credential: .*dom4\.token$/m);
    // Usage errors: a bad LUN spec and attaching to the backend's own domain.
    expect(vtgt(data, 'xen', 'attach', '--sim', '--domain', '3', '--vhost', '0', '--lun', 'guestdisk').code).toBe(2);
    const self = vtgt(data, 'xen', 'attach', '--sim', '--domain', '0', '--vhost', '0', '--lun', 'guestdisk=0:0:0:0');
    expect(self.code).toBe(1);
    expect(self.err).toContain('is the backend domain itself');
    svc.proc.kill('SIGTERM');
    expect((await svc.exited).code).toBe(0);
  });
});
