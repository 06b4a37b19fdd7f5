/**
 * `runXenSim` against a backend that is already running (`vtgt serve` with `xen: {hypervisor: sim}`):
 * this process plays the toolstack only — it creates the domUs through dom0's credential, attaches
 * one backstore of the service to each, runs the frontend emulators as processes and detaches
 * again. No hot-plug or backend restart: the backend is not ours to restart.
 */
import type { DomUConfig, DomUReport } from './frontend-main.js';
import { SimXenClient } from './client.js';
import { spawnDomU, type DomUProcess } from './spawn.js';
import { tallyDomUReports } from './reports.js';
import { xenAttach } from '../toolstack.js';
import { backendPath } from '../xenbus-nodes.js';
import type { XenSimResult } from './run.js';

export interface ExternalXenBackend {
  /** The simulated hypervisor's socket (default of the service: <data>/xen-sim.sock). */
  socket: string;
  /** Where the backend looks for guest memory files (the service: <data>/xen-sim). */
  memoryDir: string;
  /** Backstore names of the service, one normal domU each (attached as 0:0:0:0 of vhost 0). */
  pdevs: string[];
  /** Optional backstore for a hostile domU. */
  hostilePdev?: string;
  /** First domid to create (default 1); the domUs get consecutive ids. */
  firstDomid?: number;
}

/** Guest pages per domU: ring + 16 requests x (128 data + 1 indirect) + spare. */
const DOMU_FRAMES = 2304;

export async function runXenSimExternal(ext: ExternalXenBackend, seconds: number, hostile: boolean): Promise<XenSimResult> {
  if (ext.pdevs.length === 0) throw new Error('xen sim: an external backend needs at least one backstore to attach');
  if (hostile && !ext.hostilePdev) throw new Error('xen sim: --hostile against an external backend needs a spare backstore (hostilePdev)');
  const lines: string[] = [];
  const first = ext.firstDomid ?? 1;
  const plan: Array<{ domid: number; pdev: string; role: DomUConfig['role'] }> = ext.pdevs.map((pdev, i) => ({ domid: first + i, pdev, role: 'normal' }));
  if (hostile) plan.push({ domid: first + plan.length, pdev: ext.hostilePdev!, role: 'hostile' });
  const toolstack = await SimXenClient.connect(ext.socket, 0);
  const children: DomUProcess[] = [];
  const attached: number[] = [];
  try {
    const configs: DomUConfig[] = [];
    for (const p of plan) {
      const tokenFile = await toolstack.createDomain(p.domid);
      await xenAttach({ xs: toolstack.xenstore, backendDomid: 0, domid: p.domid, vhost: 0, luns: [{ pdev: p.pdev, vdev: '0:0:0:0' }] });
      attached.push(p.domid);
      configs.push({ socket: ext.socket, dir: ext.memoryDir, domid: p.domid, tokenFile, vhosts: [0], role: p.role, seconds, seed: 0x9e37 * p.domid + 1, frames: DOMU_FRAMES });
    }
    for (const c of configs) children.push(await spawnDomU(c, (seconds + 30) * 1000));
    const reports: DomUReport[] = await Promise.all(children.map((c) => c.report));
    const { commands, errors, bytesVerified, hostileFailures } = tallyDomUReports(reports, lines);
    return { commands, errors, bytesVerified, lines, ok: errors === 0 && hostileFailures === 0 };
  } finally {
    for (const c of children) if (c.child.exitCode === null) c.child.kill('SIGKILL');
    // Leave the service as we found it. The domU processes have exited, so no frontend will answer a
    // Closing handshake: do what `xl destroy` does for a dead domain — remove the backend device
    // directory (the backend then drops the vhost) and the domain's own tree, then the domain.
    const xs = toolstack.xenstore;
    for (const domid of attached) {
      try {
        await xs.rm(backendPath(0, domid, 0));
        await xs.rm(`/local/domain/${domid}`);
      } catch (e) {
        lines.push(`cleanup of dom ${domid}: ${(e as Error).message}`);
      }
      await toolstack.destroyDomain(domid).catch(() => undefined);
    }
    await toolstack.close().catch(() => undefined);
  }
}
