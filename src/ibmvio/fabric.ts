/**
 * The IBM VIO fabric as the service runs it: a hypervisor (simulated, or refused for real PowerVM),
 * one core target + port per server adapter with its own LUN map, and the adapters themselves.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { LogicalUnit } from '../vscsi/logical-unit.js';
import type { ScsiCore } from '../vscsi/core.js';
import { VioAdapter } from './adapter.js';
import type { VioLunProfile } from './lun.js';
import { openPowerVmHypervisor } from './real.js';
import { SimPowerVM } from './sim/hypervisor.js';

export interface VioAdapterSpec {
  /** Adapter name ("vhost0"); also the core target port name. */
  name: string;
  /** Server unit address. */
  unit: number;
  /** Simulated PowerVM only: the paired client adapter's unit address and partition number. */
  clientUnit?: number;
  clientPartition?: number;
  profile: VioLunProfile;
  requestLimit?: number;
  luns: Array<{ lun: number; backstore: string }>;
}

export interface VioFabricConfig {
  hypervisor: 'sim' | 'powervm';
  /** Simulated PowerVM: Unix socket client partitions attach to (default <data>/ibmvio-powervm.sock). */
  simSocket?: string;
  partitionName: string;
  partitionNumber: number;
  adapters: VioAdapterSpec[];
}

export interface VioFabricDeps {
  core: ScsiCore;
  logicalUnit(backstore: string): LogicalUnit | undefined;
  dataDir: string;
  logger?: Logger;
}

export class VioFabric {
  private constructor(
    private readonly core: ScsiCore,
    private readonly hv: SimPowerVM,
    readonly adapters: VioAdapter[],
    private readonly targets: string[],
    private readonly specs: VioAdapterSpec[],
  ) {}

  static async start(cfg: VioFabricConfig, deps: VioFabricDeps): Promise<VioFabric> {
    if (cfg.hypervisor === 'powervm') openPowerVmHypervisor(cfg.adapters[0]?.name ?? '(none)');
    const socketPath = cfg.simSocket ?? join(deps.dataDir, 'ibmvio-powervm.sock');
    const hv = new SimPowerVM({ socketPath, ...(deps.logger ? { logger: deps.logger } : {}) });
    const adapters: VioAdapter[] = [];
    const targets: string[] = [];
    try {
      for (const [i, a] of cfg.adapters.entries()) {
        const targetName = `ibmvio:${a.name}`;
        const target = deps.core.createTarget({ name: targetName });
        targets.push(targetName);
        const port = target.addPort({ name: a.name });
        for (const l of a.luns) {
          const lu = deps.logicalUnit(l.backstore);
          if (!lu) throw new Error(`ibmvio adapter ${a.name}: LUN ${l.lun} names backstore ${l.backstore}, which is not configured`);
          target.luns.set(l.lun, lu);
        }
        hv.addAdapterPair({ serverUnit: a.unit, clientUnit: a.clientUnit ?? 0x71000000 + i, clientPartition: a.clientPartition ?? 10 + i });
        adapters.push(
          new VioAdapter(hv, {
            unit: a.unit,
            deviceName: a.name,
            partitionName: cfg.partitionName,
            partitionNumber: cfg.partitionNumber,
            profile: a.profile,
            ...(a.requestLimit ? { requestLimit: a.requestLimit } : {}),
            openNexus: (initiator, profile) => deps.core.openNexus({ target, targetPort: port, initiator, profile }),
            ...(deps.logger ? { logger: deps.logger.child({ vioAdapter: a.name }) } : {}),
          }),
        );
      }
      await hv.listen();
    } catch (err) {
      for (const t of targets) await deps.core.removeTarget(t);
      throw err;
    }
    for (const a of adapters) a.start();
    return new VioFabric(deps.core, hv, adapters, targets, cfg.adapters);
  }

  /**
   * Backstores were reopened (their old LUs removed from every LUN map): map the new LUs at the same
   * LUNs. The clients see REPORTED LUNS DATA HAS CHANGED and carry on.
   */
  remapBackstores(names: string[], logicalUnit: (backstore: string) => LogicalUnit | undefined): void {
    for (const spec of this.specs) {
      const target = this.core.getTarget(`ibmvio:${spec.name}`);
      if (!target) continue;
      for (const l of spec.luns) {
        if (!names.includes(l.backstore)) continue;
        const lu = logicalUnit(l.backstore);
        if (lu) target.luns.set(l.lun, lu);
      }
    }
  }

  async stop(): Promise<void> {
    for (const a of this.adapters) await a.stop();
    await this.hv.close();
    for (const t of this.targets) await this.core.removeTarget(t);
  }
}
