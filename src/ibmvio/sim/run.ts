/**
 * `vtgt sim ibmvio`: a simulated PowerVM in this process with the real SCSI core and the VIO
 * server, and one client partition process per LPAR (plus hostile ones with --hostile). Midway, the
 * first partition's server adapter is restarted and the client must ride through it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { MemoryBackstore } from '../../backstores/memory.js';
import { ScsiCore } from '../../vscsi/core.js';
import { VioAdapter } from '../adapter.js';
import type { ClientProcessArgs } from './client-main.js';
import { TransportEvent } from '../constants.js';
import { SimPowerVM } from './hypervisor.js';
import { spawnPartition } from './spawn.js';
import type { ThroughputSpec } from './throughput.js';

export interface IbmvioSimOptions {
  clients: number;
  seconds: number;
  aix: boolean;
  hostile: boolean;
  logger?: Logger;
  /** Restart the first server adapter midway (default true when seconds >= 2). */
  restart?: boolean;
  /** LUNs per partition (default 2) and their size (default 64 MiB, sparse in memory). */
  lunsPerClient?: number;
  lunBytes?: number;
  /** Include every log line of the partitions in `lines` (diagnosis). */
  verbose?: boolean;
  /** Run the partitions against an already running server instead of an in-process one. */
  external?: ExternalServer;
  /**
   * Throughput mode: every normal partition runs this fixed workload at the credit limit instead
   * of the mixed one (no restart, migration or task management); `bytes`/`elapsedMs` report it.
   */
  workload?: ThroughputSpec;
}

export interface IbmvioSimResult {
  commands: number;
  errors: number;
  bytesVerified: number;
  /** Throughput mode: data bytes moved by the timed commands of all partitions. */
  bytes?: number;
  /** Throughput mode: the longest timed phase of any partition, in milliseconds. */
  elapsedMs?: number;
  /** Throughput mode: concurrent commands per partition (the credit limit unless capped). */
  queueDepth?: number;
  lines: string[];
  ok: boolean;
}

const SERVER_UNIT_BASE = 0x30000000;
const CLIENT_UNIT_BASE = 0x71000000;

export interface ExternalServer {
  /** Socket of the simulated PowerVM a running `vtgt serve` created (`ibmvio: {hypervisor: sim}`). */
  socketPath: string;
  /** Client unit addresses of the service's adapters, one normal partition each. */
  clientUnits: number[];
  /** Optional: a client unit for the hostile partition (an adapter the service can spare). */
  hostileUnit?: number;
}

interface PartitionSpec {
  index: number;
  hostile: boolean;
  unit: number;
}

interface Tally {
  commands: number;
  errors: number;
  bytesVerified: number;
  bytes: number;
  elapsedMs: number;
  queueDepth: number;
  ok: boolean;
}

/**
 * Run client partition processes against the simulated PowerVM at `socketPath` and collect their
 * results into `lines` / the returned tally.
 */
async function runPartitions(
  specs: PartitionSpec[],
  socketPath: string,
  opts: IbmvioSimOptions,
  seconds: number,
  lines: string[],
  onLog: (index: number, line: string) => void,
): Promise<Tally> {
  const t: Tally = { commands: 0, errors: 0, bytesVerified: 0, bytes: 0, elapsedMs: 0, queueDepth: 0, ok: true };
  const procs = specs.map((c) => {
    const args: ClientProcessArgs = {
      socketPath,
      unit: c.unit,
      partitionName: c.hostile ? `hostile${c.index}` : `lpar${c.index}`,
      aix: opts.aix && !c.hostile,
      mode: c.hostile ? 'hostile' : opts.workload ? 'throughput' : 'normal',
      ...(opts.workload && !c.hostile ? { throughput: opts.workload } : {}),
      seconds,
      workers: 100, // the Linux client queues up to max_requests = 100
      maxBlocks: 256,
      seed: 1000 + c.index,
      // The hostile partition tries to take over the first normal partition's adapter.
      ...(c.hostile && specs[0] && !specs[0].hostile ? { otherUnit: specs[0].unit } : {}),
    };
    return { c, p: spawnPartition(args, (l) => onLog(c.index, l)) };
  });
  const results = await Promise.all(procs.map(async ({ c, p }) => ({ c, r: await p.done })));
  for (const { c, r } of results) {
    const res = (r.result ?? {}) as {
      commands?: number; errors?: number; bytesVerified?: number; resets?: number; aborts?: number; lunResets?: number;
      retries?: number; messages?: string[]; lines?: string[]; unexpected?: number; guardIntact?: boolean; partition?: number;
      bytes?: number; elapsedMs?: number; queueDepth?: number;
    };
    if (c.hostile) {
      for (const l of res.lines ?? []) lines.push(l);
      if (r.code !== 0 || res.guardIntact !== true) {
        t.ok = false;
        lines.push(`hostile partition ${c.index}: exit ${r.code}, ${res.unexpected ?? '?'} unexpected answers, guard ${res.guardIntact ? 'intact' : 'NOT intact'}`);
        for (const l of r.logs.filter((x) => x.startsWith('stderr'))) lines.push(l);
      }
      continue;
    }
    t.commands += res.commands ?? 0;
    t.errors += res.errors ?? (r.code === 0 ? 0 : 1);
    t.bytesVerified += res.bytesVerified ?? 0;
    t.bytes += res.bytes ?? 0;
    t.elapsedMs = Math.max(t.elapsedMs, res.elapsedMs ?? 0);
    t.queueDepth = Math.max(t.queueDepth, res.queueDepth ?? 0);
    lines.push(
      `lpar${c.index} (partition ${res.partition ?? '?'}${opts.aix ? ', AIX' : ''}): ${res.commands ?? 0} commands, ${res.errors ?? '?'} errors, ` +
        `${res.bytesVerified ?? 0} bytes verified, ${res.aborts ?? 0} aborts, ${res.lunResets ?? 0} LUN resets, ${res.resets ?? 0} host resets, ${res.retries ?? 0} retries`,
    );
    for (const l of r.logs.filter((x) => opts.verbose || x.startsWith('scan:'))) lines.push(`  lpar${c.index} ${l}`);
    for (const m of res.messages ?? []) lines.push(`  lpar${c.index}: ${m}`);
    if (r.code !== 0) {
      t.ok = false;
      for (const l of r.logs.filter((x) => x.startsWith('stderr'))) lines.push(`  lpar${c.index}: ${l}`);
    }
  }
  if (t.errors > 0) t.ok = false;
  return t;
}

/**
 * Client partitions against a VIO server that is already running (`vtgt serve` with an `ibmvio:`
 * section and the simulated PowerVM): no restart or migration, since the server is not ours.
 */
async function runAgainstExternal(opts: IbmvioSimOptions, ext: ExternalServer, seconds: number): Promise<IbmvioSimResult> {
  if (ext.clientUnits.length === 0) throw new Error('ibmvio sim: an external server needs at least one client unit address');
  if (opts.hostile && ext.hostileUnit === undefined) throw new Error('ibmvio sim: --hostile against an external server needs a spare adapter (hostileUnit)');
  const specs: PartitionSpec[] = ext.clientUnits.map((unit, index) => ({ index, hostile: false, unit }));
  if (opts.hostile) specs.push({ index: specs.length, hostile: true, unit: ext.hostileUnit! });
  const lines: string[] = [];
  const t = await runPartitions(specs, ext.socketPath, opts, seconds, lines, () => undefined);
  return { commands: t.commands, errors: t.errors, bytesVerified: t.bytesVerified, lines, ok: t.ok };
}

export async function runIbmvioSim(opts: IbmvioSimOptions): Promise<IbmvioSimResult> {
  const seconds = Math.max(0.5, opts.seconds);
  if (opts.external) return runAgainstExternal(opts, opts.external, seconds);
  const clients = Math.max(0, Math.floor(opts.clients));
  const hostiles = opts.hostile ? 1 : 0;
  const dir = await mkdtemp(join(tmpdir(), 'vtgt-ibmvio-'));
  const log = opts.logger;
  const hv = new SimPowerVM({ socketPath: join(dir, 'powervm.sock'), ...(log ? { logger: log } : {}) });
  const core = new ScsiCore(log ? { logger: log } : {});
  const adapters: VioAdapter[] = [];
  const lines: string[] = [];
  let commands = 0;
  let errors = 0;
  let bytesVerified = 0;
  let ok = true;
  let perf: Pick<IbmvioSimResult, 'bytes' | 'elapsedMs' | 'queueDepth'> = {};
  try {
    await hv.listen();
    const total = clients + hostiles;
    const configs: Array<{ index: number; hostile: boolean; adapter: () => VioAdapter }> = [];
    for (let i = 0; i < total; i++) {
      const hostile = i >= clients;
      const target = core.createTarget({ name: `ibmvio-vhost${i}` });
      const port = target.addPort({ name: `vhost${i}` });
      const luns = hostile ? 1 : (opts.lunsPerClient ?? 2);
      for (let l = 0; l < luns; l++) {
        const id = `vhost${i}-lun${l}`;
        const lu = core.addLogicalUnit({ id, backstore: new MemoryBackstore({ name: id, size: opts.lunBytes ?? 64 * 1024 * 1024 }) });
        target.luns.set(l, lu);
      }
      hv.addAdapterPair({ serverUnit: SERVER_UNIT_BASE + i, clientUnit: CLIENT_UNIT_BASE + i, clientPartition: 10 + i });
      const make = () =>
        new VioAdapter(hv, {
          unit: SERVER_UNIT_BASE + i,
          deviceName: `vhost${i}`,
          partitionName: 'vtgt-vios',
          partitionNumber: 1,
          profile: opts.aix && !hostile ? 'aix' : 'linux',
          ...(hostile ? { requestLimit: 8, queueFullTimeoutMs: 1000 } : {}),
          openNexus: (initiator, profile) => core.openNexus({ target, targetPort: port, initiator, profile }),
          ...(log ? { logger: log } : {}),
        });
      configs.push({ index: i, hostile, adapter: make });
      const a = make();
      adapters.push(a);
      a.start();
    }
    let restarted = false;
    const restart = (opts.restart ?? (seconds >= 2 && !opts.workload)) && clients > 0;
    let restartTimer: NodeJS.Timeout | undefined;
    // A server restart as the client sees it: our queue freed (transport event), then a new adapter
    // instance registers again and says INIT. Timed from the first partition's LUN scan.
    const scheduleRestart = () => {
      if (!restart || restartTimer) return;
      restartTimer = setTimeout(() => {
        const old = adapters[0]!;
        void old.stop().then(() => {
          const fresh = configs[0]!.adapter();
          adapters[0] = fresh;
          fresh.start();
          restarted = true;
        });
      }, seconds * 500);
    };
    // With two or more partitions the second one is "migrated" midway (transport event 0x06): it
    // re-enables its queue, says INIT again and must carry on.
    let migrated = false;
    let migrateTimer: NodeJS.Timeout | undefined;
    const scheduleMigration = () => {
      if (!restart || clients < 2 || migrateTimer) return;
      migrateTimer = setTimeout(() => {
        hv.injectTransportEvent('client', CLIENT_UNIT_BASE + 1, TransportEvent.MIGRATED);
        migrated = true;
      }, seconds * 400);
    };
    const specs = configs.map((c) => ({ index: c.index, hostile: c.hostile, unit: CLIENT_UNIT_BASE + c.index }));
    const t = await runPartitions(specs, join(dir, 'powervm.sock'), opts, seconds, lines, (index, l) => {
      if (!l.startsWith('scan:') || index >= clients) return;
      if (index === 0) scheduleRestart();
      else if (index === 1) scheduleMigration();
    });
    if (restartTimer) clearTimeout(restartTimer);
    if (migrateTimer) clearTimeout(migrateTimer);
    ({ commands, errors, bytesVerified, ok } = t);
    if (opts.workload) perf = { bytes: t.bytes, elapsedMs: t.elapsedMs, queueDepth: t.queueDepth };
    // A run asked to prove restart/migration survival proves nothing if the event never happened.
    if (restart) lines.push(`server adapter vhost0 restarted midway: ${restarted ? 'yes' : 'no'}`);
    if (restart && !restarted) ok = false;
    if (restart && clients >= 2) lines.push(`lpar1 migrated midway (transport event 0x06): ${migrated ? 'yes' : 'no'}`);
    if (restart && clients >= 2 && !migrated) ok = false;
    if (opts.hostile) lines.push(`hypervisor: ${hv.stats.refusedCopies} H_COPY_RDMA refused (outside a window or without permission), ${hv.stats.copies} copies done`);
  } finally {
    for (const a of adapters) await a.stop().catch(() => undefined);
    await hv.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
  return { commands, errors, bytesVerified, ...perf, lines, ok };
}
