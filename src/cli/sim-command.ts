/**
 * `vtgt sim xen|ibmvio`: simulated guests (Xen domains, POWER client partitions) drive I/O through the
 * real fabric backends and verify the data. The simulator modules are loaded only when used.
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import type { CliIo } from './program.js';
import { UsageError } from './errors.js';

interface SimResult {
  commands: number;
  errors: number;
  bytesVerified: number;
  lines: string[];
  ok: boolean;
}

function bounded(v: string, what: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${what} must be an integer from ${min} to ${max}`);
  return n;
}

function unit(v: string, what: string): number {
  const n = /^0x[0-9a-f]{1,8}$/i.test(v) ? parseInt(v, 16) : /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > 0xffffffff) throw new UsageError(`${what} must be a unit address such as 0x71000000`);
  return n;
}

async function loadSim<F>(modPath: string, exportName: string, what: string): Promise<F> {
  try {
    const mod = (await import(modPath)) as Record<string, unknown>;
    if (typeof mod[exportName] !== 'function') throw new Error(`${exportName} is missing`);
    return mod[exportName] as F;
  } catch (e) {
    throw new Error(`the ${what} simulator is not part of this build (${(e as Error).message})`);
  }
}

function report(io: CliIo, label: string, r: SimResult): void {
  for (const l of r.lines) io.out(l);
  io.out(`${label}: ${r.commands} commands, ${r.errors} errors, ${r.bytesVerified} bytes verified`);
  if (!r.ok) process.exitCode = 1;
}

export function simCommand(program: Command, io: CliIo): void {
  const sim = program.command('sim').description('simulated guests for testing a fabric without a hypervisor');
  sim
    .command('xen')
    .description('simulated Xen domains drive pvSCSI I/O through the real backend and verify the data')
    .option('--domains <n>', 'number of simulated guest domains', '2')
    .option('--seconds <s>', 'how long to run', '5')
    .option('--hostile', 'guests also send malformed requests (the backend must reject them and keep serving)')
    .option('--pdev <backstore...>', "run against a running service's simulated Xen instead: one domU per backstore")
    .option('--hostile-pdev <backstore>', 'with --pdev: a backstore for the hostile domU')
    .option('--first-domid <n>', 'with --pdev: first domain id to create', '1')
    .option('-d, --data <dir>', "with --pdev: the service's data directory (socket DATA/xen-sim.sock, guest memory DATA/xen-sim)")
    .addHelpText('after', '\nExamples:\n  $ vtgt sim xen --domains 4 --seconds 10 --hostile\n  $ vtgt sim xen --data /var/lib/vtgt --pdev disk0 --seconds 5      # against vtgt serve with xen: {hypervisor: sim}\n')
    .action(async function (this: Command) {
      const o = this.opts<{ domains: string; seconds: string; hostile?: boolean; pdev?: string[]; hostilePdev?: string; firstDomid: string }>();
      const domains = bounded(o.domains, '--domains', 1, 64);
      const seconds = bounded(o.seconds, '--seconds', 1, 600);
      type External = { socket: string; memoryDir: string; pdevs: string[]; hostilePdev?: string; firstDomid?: number };
      type Run = (opts: { domains: number; seconds: number; hostile: boolean; external?: External }) => Promise<SimResult>;
      const run = await loadSim<Run>('../xen/sim/run.js', 'runXenSim', 'Xen');
      let external: External | undefined;
      if (o.pdev) {
        const data = this.optsWithGlobals<{ data?: string }>().data ?? process.env.VTGT_DATA ?? 'vtgt-data';
        external = { socket: join(data, 'xen-sim.sock'), memoryDir: join(data, 'xen-sim'), pdevs: o.pdev, firstDomid: bounded(o.firstDomid, '--first-domid', 1, 0x7fef) };
        if (o.hostilePdev) external.hostilePdev = o.hostilePdev;
      }
      report(io, 'xen-sim', await run({ domains, seconds, hostile: Boolean(o.hostile), ...(external ? { external } : {}) }));
    });
  sim
    .command('ibmvio')
    .description('simulated POWER client partitions drive vSCSI (SRP over CRQ) I/O through the real VIO server and verify the data')
    .option('--clients <n>', 'number of simulated client partitions', '2')
    .option('--seconds <s>', 'how long to run', '5')
    .option('--aix', 'clients behave like AIX (LUN addressing, INQUIRY identity) instead of Linux ibmvscsi')
    .option('--hostile', 'clients also send malformed IUs and descriptors (the server must reject them and keep serving)')
    .option('--client-unit <address...>', "run against a running service's simulated PowerVM instead: one client partition per client unit")
    .option('--hostile-unit <address>', 'with --client-unit: a spare client unit for the hostile partition')
    .option('-d, --data <dir>', "with --client-unit: the service's data directory (socket DATA/ibmvio-powervm.sock)")
    .addHelpText('after', '\nExamples:\n  $ vtgt sim ibmvio --clients 3 --seconds 10 --aix\n  $ vtgt sim ibmvio --data /var/lib/vtgt --client-unit 0x71000000      # against vtgt serve\n')
    .action(async function (this: Command) {
      const o = this.opts<{ clients: string; seconds: string; aix?: boolean; hostile?: boolean; clientUnit?: string[]; hostileUnit?: string }>();
      const clients = bounded(o.clients, '--clients', 1, 64);
      const seconds = bounded(o.seconds, '--seconds', 1, 600);
      type External = { socketPath: string; clientUnits: number[]; hostileUnit?: number };
      type Run = (opts: { clients: number; seconds: number; aix: boolean; hostile: boolean; external?: External }) => Promise<SimResult>;
      const run = await loadSim<Run>('../ibmvio/sim/run.js', 'runIbmvioSim', 'IBM VIO');
      let external: External | undefined;
      if (o.clientUnit) {
        const data = this.optsWithGlobals<{ data?: string }>().data ?? process.env.VTGT_DATA ?? 'vtgt-data';
        external = { socketPath: join(data, 'ibmvio-powervm.sock'), clientUnits: o.clientUnit.map((u) => unit(u, '--client-unit')) };
        if (o.hostileUnit) external.hostileUnit = unit(o.hostileUnit, '--hostile-unit');
      }
      report(io, 'ibmvio-sim', await run({ clients, seconds, aix: Boolean(o.aix), hostile: Boolean(o.hostile), ...(external ? { external } : {}) }));
    });
}
