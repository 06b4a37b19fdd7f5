/**
 * Public entry points of the Xen pvSCSI fabric, for the service and the CLI.
 */
import type { Logger } from 'pino';
import type { ScsiCore, ScsiTarget, LogicalUnit } from '../vscsi/core.js';
import type { XenHypervisor } from './hypervisor.js';
import { XenScsiServer } from './server.js';
import { coreHostFactory } from './core-host.js';

export { XenScsiServer } from './server.js';
export { coreHostFactory, xenInitiatorPort } from './core-host.js';
export { openXenHypervisor, xenUnavailableReason } from './native.js';
export { SimHypervisor } from './sim/sim-hypervisor.js';
export { SimXenServer } from './sim/server.js';
export { xenAttach, xenDetach, openToolstackXenStore, type XenLunSpec } from './toolstack.js';
export type { XenHypervisor } from './hypervisor.js';

export interface XenFabricOptions {
  core: ScsiCore;
  /** Real hypervisor by default; pass a SimHypervisor (or any XenHypervisor) to use another. */
  hv?: XenHypervisor;
  /** Target that carries the Xen ports (default: `xen-pvscsi`, created if absent). */
  target?: ScsiTarget;
  /** p-dev → logical unit (default: the core LU with that id). */
  lookup?: (pdev: string) => LogicalUnit | undefined;
  /** feature-sg-grant (default 128). */
  maxIndirectSegments?: number;
  logger?: Logger;
}

/**
 * Start serving every vscsi device the toolstack creates under this domain's backend directory.
 * Throws (with the reason) when no hypervisor was given and this machine is not a Xen dom0.
 */
export async function startXenFabric(o: XenFabricOptions): Promise<{ server: XenScsiServer; hv: XenHypervisor; stop(): Promise<void> }> {
  const hv = o.hv ?? (await import('./native.js')).openXenHypervisor();
  const server = new XenScsiServer({
    hv,
    hostFactory: coreHostFactory({
      core: o.core,
      ...(o.target ? { target: o.target } : {}),
      ...(o.lookup ? { lookup: o.lookup } : {}),
      ...(o.logger ? { logger: o.logger } : {}),
    }),
    ...(o.maxIndirectSegments !== undefined ? { maxIndirectSegments: o.maxIndirectSegments } : {}),
    ...(o.logger ? { logger: o.logger } : {}),
    onRingHalted: (domid, vhost, reason) => o.logger?.warn({ domid, vhost, reason }, 'xen: ring halted'),
  });
  await server.start();
  return {
    server,
    hv,
    stop: async () => {
      await server.stop();
      if (!o.hv) await hv.close();
    },
  };
}
