/** Side-effect import for src/service/fabrics/index.ts: makes the service accept the `xen:` section. */
import { registerFabricSection } from '../service/fabrics/registry.js';
import { xenSection } from './config.js';

registerFabricSection(xenSection);
