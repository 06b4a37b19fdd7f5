import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { YamlReader } from '../src/service/config/yaml-reader.js';
import { parseXenSection, xenSection } from '../src/xen/config.js';
import { ScsiCore } from '../src/vscsi/core.js';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { openToolstackXenStore, xenAttach } from '../src/xen/toolstack.js';
import { SimXenClient } from '../src/xen/sim/client.js';
import { GuestMemoryFile } from '../src/xen/sim/guest-memory.js';
import { memoryFileName } from '../src/xen/sim/grant-table.js';
import { ScsiFront } from '../src/xen/sim/frontend.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function parse(yaml: string) {
  const r = new YamlReader('vtgt.yaml', yaml);
  const root = r.mapping(r.root(), ['xen'])!;
  const v = parseXenSection(r, root.get('xen')!, { backstores: [] } as never);
  return { v, issues: r.issues.map((i) => `${i.line}:${i.col} ${i.message}`) };
}

describe('xen: config section', () => {
  it('parses defaults and reports bad values with positions', () => {
    expect(parse('xen: {}\n').v).toEqual({ hypervisor: 'dom0', maxIndirectSegments: 128 });
    expect(parse('xen:\n  hypervisor: sim\n  simSocket: /tmp/x.sock\n').v).toEqual({ hypervisor: 'sim', simSocket: '/tmp/x.sock', maxIndirectSegments: 128 });
    expect(parse('xen:\n  maxIndirectSegments: 10\n').issues.join('\n')).toMatch(/3?:.*at least 26/);
    expect(parse('xen:\n  hypervisor: kvm\n').issues.length).toBeGreaterThan(0);
    expect(parse('xen:\n  simSocket: /tmp/x\n').issues.join('\n')).toMatch(/only used with hypervisor: sim/);
    expect(parse('xen:\n  bogus: 1\n').issues.join('\n')).toMatch(/hypervisor, simSocket, maxIndirectSegments/);
  });

  it('apply() with the simulated hypervisor serves a domU attached through the toolstack helper', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vtgt-xen-cfg-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const core = new ScsiCore();
    const lu = core.addLogicalUnit({ id: 'disk0', backstore: new MemoryBackstore({ name: 'disk0', size: 8 << 20 }) });
    const ctx = { core, logger: pino({ level: 'silent' }), dataDir: dir, logicalUnit: (n: string) => (n === 'disk0' ? lu : undefined) };
    const cfg = { hypervisor: 'sim' as const, maxIndirectSegments: 128 };
    await xenSection.apply(ctx, undefined, cfg);
    cleanups.push(() => xenSection.shutdown!(ctx, cfg));
    const t = await openToolstackXenStore({ simSocket: join(dir, 'xen-sim.sock') });
    cleanups.push(() => t.close());
    await xenAttach({ xs: t.xs, backendDomid: t.backendDomid, domid: 7, vhost: 0, luns: [{ pdev: 'disk0', vdev: '0:0:0:0' }] });
    const memory = GuestMemoryFile.create(join(dir, 'xen-sim', memoryFileName(7)), 64);
    const client = await SimXenClient.connect(join(dir, 'xen-sim.sock'), 7, { tokenFile: await t.createSimDomain!(7) });
    const front = new ScsiFront({ client, memory, vhost: 0 });
    cleanups.push(async () => {
      await front.close();
      await client.close();
      memory.close();
    });
    await front.connect();
    const r = await front.command({ channel: 0, id: 0, lun: 0 }, Buffer.from([0x12, 0, 0, 0, 36, 0]), { readLength: 36 });
    expect(r.rslt).toBe(0);
    expect(r.data.subarray(8, 12).toString()).toBe('VTGT');
    expect(xenSection.show!(cfg).map((n) => n.label)).toEqual(['hypervisor sim', 'feature-sg-grant 128']);
  });
});
