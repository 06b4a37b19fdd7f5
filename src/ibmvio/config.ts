/**
 * The `ibmvio:` section of vtgt.yaml:
 *
 *   ibmvio:
 *     hypervisor: sim            # sim | powervm (powervm is refused: see docs/ibmvio.md)
 *     simSocket: /run/vtgt/powervm.sock   # optional; default <data>/ibmvio-powervm.sock
 *     partitionName: vtgt-vios   # what ADAPTER_INFO reports
 *     partitionNumber: 1
 *     adapters:
 *       - name: vhost0
 *         unit: 0x30000000       # server unit address
 *         clientUnit: 0x71000000 # sim only: the paired client adapter
 *         clientPartition: 10    # sim only: partition number of the client LPAR
 *         profile: linux         # linux | aix
 *         requestLimit: 128
 *         luns:
 *           - { lun: 0, backstore: disk0 }
 */
import type { Field, YamlReader } from '../service/config/yaml-reader.js';
import type { VtgtConfig } from '../service/config/types.js';
import type { FabricRuntimeContext, FabricSectionModule, ShowNode } from '../service/fabrics/registry.js';
import type { LogicalUnit } from '../vscsi/logical-unit.js';
import type { ScsiCore } from '../vscsi/core.js';
import { VioFabric, type VioAdapterSpec, type VioFabricConfig } from './fabric.js';

const TOP_KEYS = ['hypervisor', 'simSocket', 'partitionName', 'partitionNumber', 'adapters'] as const;
const ADAPTER_KEYS = ['name', 'unit', 'clientUnit', 'clientPartition', 'profile', 'requestLimit', 'luns'] as const;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;

export function parseIbmvioSection(r: YamlReader, f: Field, config: Omit<VtgtConfig, 'fabrics'>): VioFabricConfig | undefined {
  const m = r.mapping(f, TOP_KEYS, 'the ibmvio section');
  if (!m) return undefined;
  const out: VioFabricConfig = {
    hypervisor: r.oneOf(r.child(m, f, 'hypervisor'), ['sim', 'powervm'] as const) ?? 'sim',
    partitionName: r.string(r.child(m, f, 'partitionName'), 'a partition name') ?? 'vtgt-vios',
    partitionNumber: r.integer(r.child(m, f, 'partitionNumber'), 0, 0xffff, 'a partition number') ?? 1,
    adapters: [],
  };
  const sock = r.string(r.child(m, f, 'simSocket'), 'a socket path');
  if (sock !== undefined) out.simSocket = sock;
  const backstores = new Set(config.backstores.map((b) => b.name));
  const units = new Set<number>();
  const names = new Set<string>();
  const clientUnits = new Set<number>();
  for (const af of r.sequence(r.child(m, f, 'adapters'), 'adapters') ?? []) {
    const am = r.mapping(af, ADAPTER_KEYS, 'an adapter');
    if (!am) continue;
    const nameF = r.child(am, af, 'name');
    const unitF = r.child(am, af, 'unit');
    if (!r.required(nameF, 'adapter name, e.g. vhost0') || !r.required(unitF, 'server unit address, e.g. 0x30000000')) continue;
    const name = r.string(nameF, 'an adapter name', (s) => (NAME_RE.test(s) ? undefined : `"${s}" is not a valid adapter name (letters, digits, _ . -; up to 32)`));
    const unit = r.integer(unitF, 1, 0xffffffff, 'a unit address');
    if (name === undefined || unit === undefined) continue;
    if (names.has(name)) r.problem(nameF, `adapter name ${name} is used twice`);
    if (units.has(unit)) r.problem(unitF, `unit address 0x${unit.toString(16)} is used twice`);
    names.add(name);
    units.add(unit);
    const spec: VioAdapterSpec = { name, unit, profile: r.oneOf(r.child(am, af, 'profile'), ['linux', 'aix'] as const) ?? 'linux', luns: [] };
    const cuF = r.child(am, af, 'clientUnit');
    const cu = r.integer(cuF, 1, 0xffffffff, 'a unit address');
    if (cu !== undefined) {
      if (clientUnits.has(cu) || units.has(cu)) r.problem(cuF, `unit address 0x${cu.toString(16)} is used twice`);
      clientUnits.add(cu);
      spec.clientUnit = cu;
    }
    const cp = r.integer(r.child(am, af, 'clientPartition'), 1, 0xffff, 'a partition number');
    if (cp !== undefined) spec.clientPartition = cp;
    const rl = r.integer(r.child(am, af, 'requestLimit'), 3, 1024, 'a request limit');
    if (rl !== undefined) spec.requestLimit = rl;
    const seen = new Set<number>();
    for (const lf of r.sequence(r.child(am, af, 'luns'), 'LUNs') ?? []) {
      const lm = r.mapping(lf, ['lun', 'backstore'], 'a LUN');
      if (!lm) continue;
      const lunF = r.child(lm, lf, 'lun');
      const bsF = r.child(lm, lf, 'backstore');
      if (!r.required(lunF, 'LUN number') || !r.required(bsF, 'backstore name')) continue;
      const max = spec.profile === 'aix' ? 63 : 2047;
      const lun = r.integer(lunF, 0, max, `a LUN number the ${spec.profile} client can address`);
      const bs = r.string(bsF, 'a backstore name', (s) => (backstores.has(s) ? undefined : `backstore "${s}" is not defined in backstores`));
      if (lun === undefined || bs === undefined) continue;
      if (seen.has(lun)) r.problem(lunF, `LUN ${lun} is mapped twice on adapter ${name}`);
      seen.add(lun);
      spec.luns.push({ lun, backstore: bs });
    }
    out.adapters.push(spec);
  }
  return out;
}

let running: VioFabric | undefined;

export const ibmvioSection: FabricSectionModule<VioFabricConfig> = {
  key: 'ibmvio',
  summary: 'IBM POWER VIO virtual SCSI server adapters (simulated PowerVM) and their LUN maps',
  parse: parseIbmvioSection,
  toYaml: (v) => JSON.parse(JSON.stringify(v)) as unknown,
  async apply(ctx: FabricRuntimeContext, _prev, next) {
    // Any change re-creates the adapters: clients see a transport event and log in again.
    if (running) {
      await running.stop();
      running = undefined;
    }
    if (!next) return;
    running = await VioFabric.start(next, {
      core: ctx.core as ScsiCore,
      logicalUnit: (name) => ctx.logicalUnit(name) as LogicalUnit | undefined,
      dataDir: ctx.dataDir,
      logger: ctx.logger.child({ fabric: 'ibmvio' }),
    });
  },
  async backstoresReplaced(ctx: FabricRuntimeContext, _value, names) {
    running?.remapBackstores(names, (name) => ctx.logicalUnit(name) as LogicalUnit | undefined);
  },
  show(v): ShowNode[] {
    return v.adapters.map((a) => ({
      label: `${a.name} unit 0x${a.unit.toString(16)} (${a.profile})`,
      children: a.luns.map((l) => ({ label: `LUN ${l.lun} -> ${l.backstore}` })),
    }));
  },
  async shutdown() {
    if (running) await running.stop();
    running = undefined;
  },
};
