/**
 * Registers the fabric config sections. Each fabric adds one entry to FABRIC_MODULES; its module
 * calls `registerFabricSection({...})` (see ./registry.ts) when imported.
 *
 * The modules are loaded one by one and a module that fails to load only disables its own section
 * (with the reason kept for the config error), so a broken fabric never takes iSCSI down with it.
 */
import { markFabricUnavailable } from './registry.js';

const FABRIC_MODULES: Array<{ key: string; path: string }> = [
  { key: 'ibmvio', path: '../../ibmvio/register.js' },
  { key: 'xen', path: '../../xen/register.js' },
];

for (const m of FABRIC_MODULES) {
  try {
    await import(m.path);
  } catch (e) {
    markFabricUnavailable(m.key, (e as Error).message ?? String(e));
  }
}

export { fabricSections, fabricSection, registerFabricSection, unavailableFabrics } from './registry.js';
export type { FabricSectionModule, FabricRuntimeContext, ShowNode } from './registry.js';
