/**
 * Entry point of a simulated domU process (spawned by run.ts): connects to the simulated hypervisor,
 * creates its guest memory, plays xen-scsifront and runs either the verified workload or the hostile
 * attacks, then reports its result to the parent over the IPC channel.
 */
import { join } from 'node:path';
import { SimXenClient } from './client.js';
import { GuestMemoryFile } from './guest-memory.js';
import { memoryFileName } from './grant-table.js';
import { ScsiFront } from './frontend.js';
import { VerifiedWorkload } from './workload.js';
import { runHostile } from './hostile.js';

export interface DomUConfig {
  socket: string;
  dir: string;
  domid: number;
  vhost: number;
  role: 'normal' | 'hostile';
  seconds: number;
  seed: number;
  frames: number;
}

export interface DomUReport {
  domid: number;
  role: 'normal' | 'hostile';
  commands: number;
  errors: number;
  bytesVerified: number;
  lines: string[];
}

export async function runDomU(cfg: DomUConfig, onLine?: (l: string) => void): Promise<DomUReport> {
  const memory = GuestMemoryFile.create(join(cfg.dir, memoryFileName(cfg.domid)), cfg.frames);
  const client = await SimXenClient.connect(cfg.socket, cfg.domid);
  const front = new ScsiFront({ client, memory, vhost: cfg.vhost });
  try {
    await front.connect();
    if (cfg.role === 'hostile') {
      const dev = front.deviceList()[0];
      if (!dev) throw new Error(`dom ${cfg.domid}: no device to attack`);
      const h = await runHostile(front, memory, { channel: dev.addr.channel, id: dev.addr.id, lun: dev.addr.lun });
      return { domid: cfg.domid, role: 'hostile', commands: 0, errors: h.failures, bytesVerified: 0, lines: h.lines };
    }
    const w = new VerifiedWorkload(front, { seconds: cfg.seconds, seed: cfg.seed, taskManagement: true, ...(onLine ? { line: onLine } : {}) });
    const r = await w.run();
    r.lines.unshift(`dom ${cfg.domid}: guest memory ${memory.mapped ? 'mapped shared through the addon' : 'accessed with pread/pwrite (addon not loadable)'}`);
    return { domid: cfg.domid, role: 'normal', ...r };
  } finally {
    await front.close();
    await client.close();
    memory.close();
  }
}

// Run as a child process: configuration in VTGT_XEN_DOMU, report through process.send.
if (process.env.VTGT_XEN_DOMU && process.send) {
  const cfg = JSON.parse(process.env.VTGT_XEN_DOMU) as DomUConfig;
  runDomU(cfg)
    .then((r) => process.send!({ type: 'report', report: r }, undefined, {}, () => process.exit(0)))
    .catch((e: Error) =>
      process.send!(
        { type: 'report', report: { domid: cfg.domid, role: cfg.role, commands: 0, errors: 1, bytesVerified: 0, lines: [`dom ${cfg.domid}: ERROR ${e.message}`] } },
        undefined,
        {},
        () => process.exit(1),
      ),
    );
}
