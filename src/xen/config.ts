/**
 * The `xen:` section of vtgt.yaml:
 *
 *   xen:
 *     hypervisor: dom0            # dom0 (real Xen, default) | sim (simulated hypervisor daemon)
 *     simSocket: /run/vtgt/xen.sock   # sim only; default <data>/xen-sim.sock (vtgt starts the daemon)
 *     maxIndirectSegments: 128    # feature-sg-grant offered to guests (0 = direct segments only)
 *
 * Which logical units a guest sees is not configuration: the toolstack (`vtgt xen attach`) writes
 * it into xenstore, with p-dev = a backstore name of this configuration.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Field, YamlReader } from '../service/config/yaml-reader.js';
import type { VtgtConfig } from '../service/config/types.js';
import type { FabricRuntimeContext, FabricSectionModule, ShowNode } from '../service/fabrics/registry.js';
import type { LogicalUnit, ScsiCore } from '../vscsi/core.js';
import type { XenHypervisor } from './hypervisor.js';
import { startXenFabric } from './index.js';
import { SimXenServer } from './sim/server.js';
import { SimHypervisor } from './sim/sim-hypervisor.js';

export interface XenSectionConfig {
  hypervisor: 'dom0' | 'sim';
  simSocket?: string;
  maxIndirectSegments: number;
}

const KEYS = ['hypervisor', 'simSocket', 'maxIndirectSegments'] as const;

export function parseXenSection(r: YamlReader, f: Field, _config: Omit<VtgtConfig, 'fabrics'>): XenSectionConfig | undefined {
  const m = r.mapping(f, KEYS, 'the xen section');
  if (!m) return undefined;
  const out: XenSectionConfig = {
    hypervisor: r.oneOf(r.child(m, f, 'hypervisor'), ['dom0', 'sim'] as const) ?? 'dom0',
    maxIndirectSegments: r.integer(r.child(m, f, 'maxIndirectSegments'), 0, 65535, 'a segment count (0, or 26..65535)') ?? 128,
  };
  const sockF = r.child(m, f, 'simSocket');
  const sock = r.string(sockF, 'a socket path');
  if (sock !== undefined) {
    if (out.hypervisor !== 'sim') r.problem(sockF, 'simSocket is only used with hypervisor: sim');
    out.simSocket = sock;
  }
  if (out.maxIndirectSegments > 0 && out.maxIndirectSegments < 26) {
    r.problem(r.child(m, f, 'maxIndirectSegments'), 'maxIndirectSegments must be 0 or at least 26 (the direct segment count)');
  }
  return out;
}

interface Running {
  stop(): Promise<void>;
  daemon?: SimXenServer;
}
let running: Running | undefined;

async function start(ctx: FabricRuntimeContext, c: XenSectionConfig): Promise<Running> {
  const logger = ctx.logger.child({ fabric: 'xen' });
  let hv: XenHypervisor | undefined;
  let daemon: SimXenServer | undefined;
  if (c.hypervisor === 'sim') {
    const memoryDir = join(ctx.dataDir, 'xen-sim');
    mkdirSync(memoryDir, { recursive: true, mode: 0o700 });
    const socket = c.simSocket ?? join(ctx.dataDir, 'xen-sim.sock');
    daemon = new SimXenServer(logger);
    await daemon.listen(socket);
    hv = await SimHypervisor.connect(socket, memoryDir, 0);
    logger.info({ socket, memoryDir }, 'xen: simulated hypervisor listening (domU emulators and "vtgt xen attach --sim-socket" connect here)');
  }
  const fabric = await startXenFabric({
    core: ctx.core as ScsiCore,
    ...(hv ? { hv } : {}),
    lookup: (pdev) => ctx.logicalUnit(pdev) as LogicalUnit | undefined,
    maxIndirectSegments: c.maxIndirectSegments,
    logger,
  });
  return {
    ...(daemon ? { daemon } : {}),
    stop: async () => {
      await fabric.stop();
      if (hv) await hv.close();
      await daemon?.close();
    },
  };
}

export const xenSection: FabricSectionModule<XenSectionConfig> = {
  key: 'xen',
  summary: 'Xen pvSCSI backend for domUs (real dom0 or simulated hypervisor); LUNs attached with vtgt xen attach',
  parse: parseXenSection,
  toYaml: (v) => JSON.parse(JSON.stringify(v)) as unknown,
  async apply(ctx, _prev, next) {
    if (running) {
      await running.stop();
      running = undefined;
    }
    if (next) running = await start(ctx, next);
  },
  show(v): ShowNode[] {
    return [
      { label: `hypervisor ${v.hypervisor}${v.simSocket ? ` (${v.simSocket})` : ''}` },
      { label: `feature-sg-grant ${v.maxIndirectSegments}` },
    ];
  },
  async shutdown() {
    if (running) await running.stop();
    running = undefined;
  },
};
