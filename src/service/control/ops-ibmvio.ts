/**
 * Control operations for the `ibmvio:` section: VIO server adapters and their LUN maps, edited like
 * every other change (copy of the running config, schema check, apply). The section's module
 * restarts the adapters on a change, so clients see a transport event and log in again.
 */
import type { VioAdapterSpec, VioFabricConfig } from '../../ibmvio/fabric.js';
import type { VtgtConfig } from '../config/types.js';
import { fabricSection, unavailableFabrics } from '../fabrics/index.js';
import { backstoreForLun, firstFreeLun, mutate, type Handler } from './mutate.js';
import { ControlError, type Args } from './protocol.js';

function section(c: VtgtConfig, create: boolean): VioFabricConfig {
  if (!fabricSection('ibmvio')) {
    throw new ControlError('failed', `the IBM VIO fabric is not available in this build (${unavailableFabrics().get('ibmvio') ?? 'not registered'})`);
  }
  let s = c.fabrics.ibmvio as VioFabricConfig | undefined;
  if (!s) {
    if (!create) throw new ControlError('not_found', 'no ibmvio section: create an adapter first ("vtgt ibmvio adapter create")');
    s = { hypervisor: 'sim', partitionName: 'vtgt-vios', partitionNumber: 1, adapters: [] };
    c.fabrics.ibmvio = s;
  }
  return s;
}

function adapter(s: VioFabricConfig, name: string): VioAdapterSpec {
  const a = s.adapters.find((x) => x.name === name);
  if (!a) throw new ControlError('not_found', `no VIO adapter ${name}; "vtgt ibmvio adapter list" shows them`);
  return a;
}

/** Unit addresses are written in hex by administrators (0x30000000); decimal works too. */
function unitArg(a: Args, name: string): number | undefined {
  const v = a.optStr(name);
  if (v === undefined) return undefined;
  const n = /^0x[0-9a-f]{1,8}$/i.test(v) ? parseInt(v, 16) : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new ControlError('usage', `${name} must be a unit address such as 0x30000000`);
  return n;
}

export const ibmvioHandlers: Record<string, Handler> = {
  async 'ibmvio.adapter-list'(ctx) {
    const s = ctx.runtime.config().fabrics.ibmvio as VioFabricConfig | undefined;
    return (s?.adapters ?? []).map((x) => ({
      name: x.name,
      unit: `0x${x.unit.toString(16)}`,
      profile: x.profile,
      luns: x.luns.map((l) => `${l.lun}:${l.backstore}`),
      ...(x.clientUnit === undefined ? {} : { client: `0x${x.clientUnit.toString(16)}${x.clientPartition ? ` (partition ${x.clientPartition})` : ''}` }),
    }));
  },
  async 'ibmvio.adapter-create'(ctx, a) {
    const name = a.str('name');
    const unit = unitArg(a, 'unit');
    if (unit === undefined) throw new ControlError('usage', 'missing argument "unit" (server unit address, e.g. 0x30000000)');
    const profile = a.optStr('profile') ?? 'linux';
    if (profile !== 'linux' && profile !== 'aix') throw new ControlError('usage', 'profile must be linux or aix');
    const clientUnit = unitArg(a, 'clientUnit');
    const clientPartition = a.optInt('clientPartition', 1, 0xffff);
    const requestLimit = a.optInt('requestLimit', 3, 1024);
    return mutate(ctx, (c) => {
      const s = section(c, true);
      if (s.adapters.some((x) => x.name === name)) throw new ControlError('exists', `VIO adapter ${name} already exists`);
      const spec: VioAdapterSpec = { name, unit, profile, luns: [] };
      if (clientUnit !== undefined) spec.clientUnit = clientUnit;
      if (clientPartition !== undefined) spec.clientPartition = clientPartition;
      if (requestLimit !== undefined) spec.requestLimit = requestLimit;
      s.adapters.push(spec);
    });
  },
  async 'ibmvio.adapter-delete'(ctx, a) {
    const name = a.str('name');
    return mutate(ctx, (c) => {
      const s = section(c, false);
      adapter(s, name);
      s.adapters = s.adapters.filter((x) => x.name !== name);
      if (s.adapters.length === 0) delete c.fabrics.ibmvio;
    });
  },
  async 'ibmvio.lun-create'(ctx, a) {
    const name = a.str('adapter');
    const wanted = a.optInt('lun', 0, 2047);
    return mutate(ctx, (c) => {
      const ad = adapter(section(c, false), name);
      const backstore = backstoreForLun(c, a);
      const lun = wanted ?? firstFreeLun(ad.luns);
      if (wanted !== undefined && ad.luns.some((l) => l.lun === lun)) {
        throw new ControlError('exists', `LUN ${lun} of VIO adapter ${name} is already mapped`);
      }
      ad.luns.push({ lun, backstore });
      ad.luns.sort((x, y) => x.lun - y.lun);
      return `VIO adapter ${name}: LUN ${lun} -> ${backstore}`;
    });
  },
  async 'ibmvio.lun-delete'(ctx, a) {
    const name = a.str('adapter');
    const lun = a.int('lun', 0, 2047);
    return mutate(ctx, (c) => {
      const ad = adapter(section(c, false), name);
      if (!ad.luns.some((l) => l.lun === lun)) throw new ControlError('not_found', `VIO adapter ${name} has no LUN ${lun}`);
      ad.luns = ad.luns.filter((l) => l.lun !== lun);
    });
  },
};
