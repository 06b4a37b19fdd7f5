/** Side-effect import for src/service/fabrics/index.ts: makes the service accept the `ibmvio:` section. */
import { registerFabricSection } from '../service/fabrics/registry.js';
import { ibmvioSection } from './config.js';

registerFabricSection(ibmvioSection);
