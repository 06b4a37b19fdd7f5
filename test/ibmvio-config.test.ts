import { mkdtemp, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { parseIbmvioSection } from '../src/ibmvio/config.js';
import { VioFabric } from '../src/ibmvio/fabric.js';
import { RealVioUnsupportedError } from '../src/ibmvio/real.js';
import { YamlReader } from '../src/service/config/yaml-reader.js';
import type { VtgtConfig } from '../src/service/config/types.js';
import { ScsiCore } from '../src/vscsi/core.js';

const common = { backstores: [{ name: 'disk0', type: 'memory', size: 1 << 20 }] } as unknown as Omit<VtgtConfig, 'fabrics'>;

function parse(text: string) {
  const r = new YamlReader('vtgt.yaml', text);
  const root = r.mapping(r.root(), ['ibmvio'])!;
  const v = parseIbmvioSection(r, r.child(root, r.root(), 'ibmvio'), common);
  return { v, issues: r.issues.map((i) => `${i.line}:${i.path}: ${i.message}`) };
}

describe('ibmvio config section', () => {
  it('parses adapters with their own LUN maps', () => {
    const { v, issues } = parse(`
ibmvio:
  hypervisor: sim
  partitionName: vios1
  adapters:
    - name: vhost0
      unit: 0x30000000
      profile: aix
      luns:
        - { lun: 1, backstore: disk0 }
    - name: vhost1
      unit: 0x30000001
      clientUnit: 0x71000001
      luns: [{ lun: 0, backstore: disk0 }]
`);
    expect(issues).toEqual([]);
    expect(v).toMatchObject({
      hypervisor: 'sim',
      partitionName: 'vios1',
      adapters: [
        { name: 'vhost0', unit: 0x30000000, profile: 'aix', luns: [{ lun: 1, backstore: 'disk0' }] },
        { name: 'vhost1', unit: 0x30000001, clientUnit: 0x71000001, profile: 'linux' },
      ],
    });
  });

  it('reports mistakes with line and path', () => {
    const { issues } = parse(`
ibmvio:
  adapters:
    - name: vhost0
      unit: 0x30000000
      profile: hpux
      luns: [{ lun: 0, backstore: nope }, { lun: 70, backstore: disk0 }]
    - name: vhost0
      unit: 0x30000000
      bogus: 1
`);
    expect(issues.join('\n')).toMatch(/adapters\[0\]\.profile: "hpux" is not allowed/);
    expect(issues.join('\n')).toMatch(/backstore "nope" is not defined/);
    expect(issues.join('\n')).toMatch(/adapter name vhost0 is used twice/);
    expect(issues.join('\n')).toMatch(/unknown key "bogus"/);
  });

  it('starts the simulated PowerVM with one target per adapter, and refuses real PowerVM clearly', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'vtgt-ibmvio-cfg-'));
    try {
      const core = new ScsiCore();
      const lu = core.addLogicalUnit({ id: 'disk0', backstore: new MemoryBackstore({ name: 'disk0', size: 1 << 20 }) });
      const cfg = { hypervisor: 'sim' as const, partitionName: 'v', partitionNumber: 1, adapters: [{ name: 'vhost0', unit: 0x30000000, profile: 'linux' as const, luns: [{ lun: 0, backstore: 'disk0' }] }] };
      const fabric = await VioFabric.start(cfg, { core, logicalUnit: (n) => (n === 'disk0' ? lu : undefined), dataDir: dir });
      expect(existsSync(join(dir, 'ibmvio-powervm.sock'))).toBe(true);
      expect(core.getTarget('ibmvio:vhost0')?.luns.get(0)).toBe(lu);
      expect(fabric.adapters[0]!.state).toBe('wait-connection');
      // A reopened backstore comes back at the same LUN.
      await core.removeLogicalUnit('disk0');
      expect(core.getTarget('ibmvio:vhost0')?.luns.get(0)).toBeUndefined();
      const lu2 = core.addLogicalUnit({ id: 'disk0', backstore: new MemoryBackstore({ name: 'disk0', size: 1 << 20 }) });
      fabric.remapBackstores(['disk0'], (n) => (n === 'disk0' ? lu2 : undefined));
      expect(core.getTarget('ibmvio:vhost0')?.luns.get(0)).toBe(lu2);
      await fabric.stop();
      expect(core.getTarget('ibmvio:vhost0')).toBeUndefined();
      await expect(VioFabric.start({ ...cfg, hypervisor: 'powervm' }, { core, logicalUnit: () => lu, dataDir: dir })).rejects.toThrow(RealVioUnsupportedError);
      await expect(VioFabric.start({ ...cfg, hypervisor: 'powervm' }, { core, logicalUnit: () => lu, dataDir: dir })).rejects.toThrow(/privileged.*kernel shim/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
