/**
 * Entry point of a simulated domU process (spawned by run.ts): connects to the simulated hypervisor,
 * creates its guest memory, plays xen-scsifront and runs either the verified workload or the hostile
 * attacks, then reports its result to the parent over the IPC channel.
 */
import { join } from 'node:path';
import { SimXenClient } from './client.js';
import { GuestMemoryFile, SIM_GRANT_ENTRIES } from './guest-memory.js';
import { memoryFileName } from './grant-table.js';
import { ScsiFront } from './frontend.js';
import { VerifiedWorkload } from './workload.js';
import { runHostile } from './hostile.js';
import { runIdentityAttacks } from './hostile-identity.js';
import { readCredential } from '../../sim/credentials.js';
import { Prng } from '../../sim/prng.js';
import { XenThroughput, type ThroughputSpec } from './throughput.js';

export interface DomUConfig {
  socket: string;
  dir: string;
  domid: number;
  /** This domain's credential file, issued by the simulated hypervisor when it created the domain. */
  tokenFile: string;
  /** Virtual hosts of this domU (each its own ring); the hostile role uses the first. */
  vhosts: number[];
  role: 'normal' | 'hostile';
  seconds: number;
  seed: number;
  frames: number;
  /** Throughput mode: run this fixed workload on the first vhost instead of the verified mix. */
  throughput?: ThroughputSpec;
}

export interface DomUReport {
  domid: number;
  role: 'normal' | 'hostile';
  commands: number;
  errors: number;
  bytesVerified: number;
  lines: string[];
  /** Throughput mode: data bytes of the timed commands, their elapsed time and queue depth. */
  bytes?: number;
  elapsedMs?: number;
  queueDepth?: number;
}

export async function runDomU(cfg: DomUConfig, onLine?: (l: string) => void): Promise<DomUReport> {
  const memory = GuestMemoryFile.create(join(cfg.dir, memoryFileName(cfg.domid)), cfg.frames);
  const client = await SimXenClient.connect(cfg.socket, cfg.domid, { tokenFile: cfg.tokenFile });
  // Each vhost gets an equal share of the guest's pages and grant references.
  const n = Math.max(1, cfg.vhosts.length);
  const pageShare = Math.floor(cfg.frames / n);
  const grefShare = Math.floor(SIM_GRANT_ENTRIES / n);
  const fronts = cfg.vhosts.map(
    (vhost, i) =>
      new ScsiFront({ client, memory, vhost, pages: { first: i * pageShare, count: pageShare }, grefs: { first: i * grefShare, count: grefShare } }),
  );
  try {
    await Promise.all(fronts.map((f) => f.connect()));
    if (cfg.role === 'hostile') {
      const front = fronts[0]!;
      const dev = front.deviceList()[0];
      if (!dev) throw new Error(`dom ${cfg.domid}: no device to attack`);
      const h = await runHostile(front, memory, { channel: dev.addr.channel, id: dev.addr.id, lun: dev.addr.lun });
      const id = await runIdentityAttacks(cfg.socket, cfg.domid, readCredential(cfg.tokenFile, `dom ${cfg.domid}`), client);
      return { domid: cfg.domid, role: 'hostile', commands: 0, errors: h.failures + id.failures, bytesVerified: 0, lines: [...h.lines, ...id.lines] };
    }
    if (cfg.throughput) {
      const t = await new XenThroughput(fronts[0]!, cfg.throughput, new Prng(cfg.seed).next).run(cfg.seconds);
      return { domid: cfg.domid, role: 'normal', commands: t.commands, errors: t.errors, bytesVerified: t.bytesVerified, lines: t.lines, bytes: t.bytes, elapsedMs: t.elapsedMs, queueDepth: t.queueDepth };
    }
    const results = await Promise.all(
      fronts.map((front, i) =>
        new VerifiedWorkload(front, { seconds: cfg.seconds, seed: cfg.seed + i * 7919, taskManagement: i === 0, ...(onLine ? { line: onLine } : {}) }).run(),
      ),
    );
    const report: DomUReport = { domid: cfg.domid, role: 'normal', commands: 0, errors: 0, bytesVerified: 0, lines: [] };
    report.lines.push(
      `dom ${cfg.domid}: ${cfg.vhosts.length} vhost(s) [${cfg.vhosts.join(',')}]; guest memory ${memory.mapped ? 'mapped shared through the addon' : 'accessed with pread/pwrite (addon not loadable)'}`,
    );
    results.forEach((r, i) => {
      report.commands += r.commands;
      report.errors += r.errors;
      report.bytesVerified += r.bytesVerified;
      report.lines.push(...r.lines.map((l) => (cfg.vhosts.length > 1 ? `${l} (vhost ${cfg.vhosts[i]})` : l)));
    });
    return report;
  } finally {
    for (const f of fronts) await f.close();
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
