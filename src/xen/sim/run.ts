/**
 * `vtgt sim xen`: a whole Xen pvSCSI system in one command. This process plays dom0 (simulated
 * hypervisor daemon, toolstack, SCSI core with memory LUNs, the pvSCSI backend); each domU is a
 * separate process running the frontend emulator. During the run a LUN is hot-plugged into dom 1 and
 * the backend is restarted; with `hostile`, one more domU attacks the backend beside the normal ones.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ScsiCore } from '../../vscsi/core.js';
import { MemoryBackstore } from '../../backstores/memory.js';
import { SimXenServer } from './server.js';
import { SimHypervisor } from './sim-hypervisor.js';
import { SimXenClient } from './client.js';
import { XenScsiServer } from '../server.js';
import { coreHostFactory } from '../core-host.js';
import { xenAttach } from '../toolstack.js';
import { spawnDomU, type DomUProcess } from './spawn.js';
import { tallyDomUReports } from './reports.js';
import type { DomUConfig, DomUReport } from './frontend-main.js';
import { runXenSimExternal, type ExternalXenBackend } from './run-external.js';
import type { ThroughputSpec } from './throughput.js';

export interface XenSimOptions {
  domains: number;
  seconds: number;
  hostile: boolean;
  logger?: Logger;
  /** Run the domUs against an already running backend (e.g. `vtgt serve`) instead of an in-process one. */
  external?: ExternalXenBackend;
  /**
   * Throughput mode: each normal domU runs this fixed workload with its ring full instead of the
   * verified mix; no hot-plug or backend restart. `bytes`/`elapsedMs` report it.
   */
  workload?: ThroughputSpec;
}

export interface XenSimResult {
  commands: number;
  errors: number;
  bytesVerified: number;
  lines: string[];
  /** Throughput mode: data bytes of all domUs' timed commands; the longest timed phase; ring depth used. */
  bytes?: number;
  elapsedMs?: number;
  queueDepth?: number;
  /** False if any normal domU saw an error, a hostile check failed, or a normal ring was halted. */
  ok: boolean;
}

const LUN_BYTES = 64 << 20;
/** Guest pages per simulated domU: ring + 16 requests x (128 data + 1 indirect) + spare. */
const DOMU_FRAMES = 2304;

/** Sum of the domUs' throughput reports (no hot-plug or restart happened in this mode). */
function throughputResult(all: DomUReport[], halted: Array<{ domid: number; reason: string }>, lines: string[]): XenSimResult {
  const r: XenSimResult = { commands: 0, errors: 0, bytesVerified: 0, bytes: 0, elapsedMs: 0, queueDepth: 0, lines, ok: true };
  for (const d of all) {
    lines.push(...d.lines);
    r.commands += d.commands;
    r.errors += d.errors;
    r.bytesVerified += d.bytesVerified;
    r.bytes! += d.bytes ?? 0;
    r.elapsedMs = Math.max(r.elapsedMs!, d.elapsedMs ?? 0);
    r.queueDepth = Math.max(r.queueDepth!, d.queueDepth ?? 0);
  }
  for (const h of halted) lines.push(`backend: halted the ring of dom ${h.domid}: ${h.reason}`);
  r.errors += halted.length;
  r.ok = r.errors === 0;
  return r;
}

export async function runXenSim(opts: XenSimOptions): Promise<XenSimResult> {
  const domains = Math.max(1, Math.min(16, Math.floor(opts.domains)));
  const seconds = Math.max(1, Math.min(3600, opts.seconds));
  if (opts.external) return runXenSimExternal(opts.external, seconds, opts.hostile);
  const lines: string[] = [];
  const log = opts.logger;
  const dir = mkdtempSync(join(tmpdir(), 'vtgt-xen-sim-'));
  const socket = join(dir, 'xen.sock');
  const daemon = new SimXenServer(log);
  const core = new ScsiCore(log ? { logger: log } : {});
  const halted: Array<{ domid: number; reason: string }> = [];
  let refusedBefore = 0;
  let backend: { hv: SimHypervisor; server: XenScsiServer } | undefined;
  let toolstack: SimXenClient | undefined;
  const children: DomUProcess[] = [];
  try {
    await daemon.listen(socket);
    const startBackend = async () => {
      const hv = await SimHypervisor.connect(socket, dir, 0);
      const server = new XenScsiServer({
        hv,
        hostFactory: coreHostFactory({ core }),
        ...(log ? { logger: log } : {}),
        onRingHalted: (domid, _vhost, reason) => halted.push({ domid, reason }),
      });
      await server.start();
      return { hv, server };
    };
    backend = await startBackend();
    toolstack = await SimXenClient.connect(socket, 0);
    const xs = toolstack.xenstore;

    const configs: DomUConfig[] = [];
    for (let d = 1; d <= domains + (opts.hostile ? 1 : 0); d++) {
      const hostile = d > domains;
      const lu = `xen-dom${d}-disk0`;
      core.addLogicalUnit({ id: lu, backstore: new MemoryBackstore({ name: lu, size: LUN_BYTES }) });
      await xenAttach({ xs, backendDomid: 0, domid: d, vhost: 0, luns: [{ pdev: lu, vdev: '0:0:0:0' }] });
      const vhosts = [0];
      if (opts.workload && !hostile) {
        configs.push({ socket, dir, domid: d, tokenFile: daemon.createDomain(d), vhosts, role: 'normal', seconds, seed: 0x9e37 * d + 1, frames: DOMU_FRAMES, throughput: opts.workload });
        continue;
      }
      // dom 2 also has a second virtual host, whose LUN sits at another target id.
      if (d === 2 && !hostile) {
        const lu2 = 'xen-dom2-vhost1-disk0';
        core.addLogicalUnit({ id: lu2, backstore: new MemoryBackstore({ name: lu2, size: LUN_BYTES }) });
        await xenAttach({ xs, backendDomid: 0, domid: d, vhost: 1, luns: [{ pdev: lu2, vdev: '1:0:1:0' }] });
        vhosts.push(1);
      }
      configs.push({ socket, dir, domid: d, tokenFile: daemon.createDomain(d), vhosts, role: hostile ? 'hostile' : 'normal', seconds, seed: 0x9e37 * d + 1, frames: DOMU_FRAMES * vhosts.length });
    }
    const hotLu = 'xen-dom1-disk1';
    core.addLogicalUnit({ id: hotLu, backstore: new MemoryBackstore({ name: hotLu, size: LUN_BYTES }) });

    const started = Date.now();
    for (const c of configs) children.push(await spawnDomU(c, (seconds + 30) * 1000));
    const reports = Promise.all(children.map((c) => c.report));
    if (opts.workload) return await throughputResult(await reports, halted, lines);
    const hostileDone = opts.hostile ? children[children.length - 1]!.report : Promise.resolve(undefined);
    const at = (fraction: number) => new Promise((r) => setTimeout(r, Math.max(0, started + seconds * 1000 * fraction - Date.now())));

    // Hot-plug a second LUN into dom 1 while its workload runs.
    await at(0.4);
    try {
      await xenAttach({ xs, backendDomid: 0, domid: 1, vhost: 0, luns: [{ pdev: hotLu, vdev: '0:0:0:1' }], timeoutMs: 10_000 });
      lines.push(`hot-plug: dom 1 vhost 0 gained ${hotLu} at 0:0:0:1 while running`);
    } catch (e) {
      lines.push(`hot-plug: ERROR ${(e as Error).message}`);
    }
    // Restart the backend (after the hostile domU is done, so its checks are not disturbed).
    await at(0.6);
    await hostileDone;
    if (Date.now() < started + seconds * 1000 - 200) {
      refusedBefore += backend.hv.grants.stats.refused;
      await backend.server.stop();
      await backend.hv.close();
      backend = await startBackend();
      lines.push('backend restart: stopped (drained) and started again; domUs resumed on their rings');
    } else {
      lines.push('backend restart: skipped (run too short after the hostile domU finished)');
    }

    const all: DomUReport[] = await reports;
    const totals = { requests: 0, indirect: 0, rings: 0 };
    for (const { device } of backend.server.list()) {
      const st = device.ringStats;
      if (!st) continue;
      totals.rings++;
      totals.requests += st.requests;
      totals.indirect += st.indirect;
    }
    lines.push(`backend: ${totals.requests} requests on ${totals.rings} rings since the last start, ${totals.indirect} with indirect segments`);
    const { commands, errors, bytesVerified, hostileFailures } = tallyDomUReports(all, lines);
    const hostileIds = new Set(configs.filter((c) => c.role === 'hostile').map((c) => c.domid));
    for (const h of halted) lines.push(`backend: halted the ring of dom ${h.domid}${hostileIds.has(h.domid) ? ' (hostile)' : ''}: ${h.reason}`);
    const normalHalted = halted.filter((h) => !hostileIds.has(h.domid)).length;
    const refused = refusedBefore + backend.hv.grants.stats.refused;
    if (opts.hostile) lines.push(`backend: ${refused} grant accesses refused by the simulated hypervisor; ${daemon.coalescedEvents} event notifications coalesced`);
    const hotplugFailed = lines.some((l) => l.startsWith('hot-plug: ERROR'));
    return {
      commands,
      errors: errors + normalHalted + (hotplugFailed ? 1 : 0),
      bytesVerified,
      lines,
      ok: errors === 0 && normalHalted === 0 && hostileFailures === 0 && !hotplugFailed,
    };
  } finally {
    for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    if (backend) {
      await backend.server.stop().catch(() => undefined);
      await backend.hv.close().catch(() => undefined);
    }
    await toolstack?.close().catch(() => undefined);
    await daemon.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
