// The real service as a process (`node bin/vtgt.js serve --config F --data D`, needs `npm run build`)
// with an `ibmvio:` section and `xen: {hypervisor: sim}`: a client partition process and a domU
// process run verified workloads (every block written is read back and compared) against it.
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { runIbmvioSim } from '../src/ibmvio/sim/run.js';
import { runXenSim } from '../src/xen/sim/run.js';
import { ProcessScope } from './service-helpers.js';

const scope = new ProcessScope();
afterEach(() => scope.killAll());
afterAll(() => scope.cleanup());

const CONFIG = `
backstores:
  - {name: viodisk0, type: memory, size: 32MiB}
  - {name: viodisk1, type: memory, size: 32MiB}
  - {name: xendisk, type: memory, size: 32MiB}
iscsi: {portals: ["127.0.0.1:0"]}
ibmvio:
  hypervisor: sim
  adapters:
    - name: vhost0
      unit: 0x30000000
      clientUnit: 0x71000000
      luns: [{lun: 0, backstore: viodisk0}, {lun: 1, backstore: viodisk1}]
xen: {hypervisor: sim}
`;

describe('vtgt serve with IBM VIO and Xen sections (end to end)', () => {
  it('serves a client partition and a domU at once with verified data, then stops cleanly', async () => {
    const svc = await scope.startWithConfig(CONFIG);
    const data = svc.data;
    const [vio, xen] = await Promise.all([
      runIbmvioSim({
        clients: 1,
        seconds: 1.5,
        aix: false,
        hostile: false,
        external: { socketPath: join(data, 'ibmvio-powervm.sock'), clientUnits: [0x71000000] },
      }),
      runXenSim({
        domains: 1,
        seconds: 1.5,
        hostile: false,
        external: { socket: join(data, 'xen-sim.sock'), memoryDir: join(data, 'xen-sim'), pdevs: ['xendisk'] },
      }),
    ]);
    const vioText = vio.lines.join('\n');
    expect(vio.ok, vioText).toBe(true);
    expect(vio.errors, vioText).toBe(0);
    expect(vio.commands, vioText).toBeGreaterThan(50);
    expect(vio.bytesVerified, vioText).toBeGreaterThan(0);
    // The partition found both LUNs of the configured adapter.
    expect(vioText).toMatch(/lpar0 scan: LUN 0 \S+.* 65536x512, LUN 1 /);
    const xenText = xen.lines.join('\n');
    expect(xen.ok, xenText).toBe(true);
    expect(xen.errors, xenText).toBe(0);
    expect(xen.commands, xenText).toBeGreaterThan(50);
    expect(xen.bytesVerified, xenText).toBeGreaterThan(0);
    expect(xenText).not.toMatch(/cleanup of dom/);
    svc.proc.kill('SIGTERM');
    expect((await svc.exited).code, svc.stderr()).toBe(0);
  }, 60_000);
});
