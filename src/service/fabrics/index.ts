/**
 * Registers the fabric config sections. Each fabric helper adds an import of its module here, e.g.
 * `import './ibmvio.js';` where the module calls `registerFabricSection({...})`.
 */
export { fabricSections, fabricSection, registerFabricSection } from './registry.js';
export type { FabricSectionModule, FabricRuntimeContext, ShowNode } from './registry.js';
