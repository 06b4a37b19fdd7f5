/**
 * `vtgt sim xen|ibmvio`: simulated guests (Xen domains, POWER client partitions) drive I/O through the
 * real fabric backends and verify the data. The simulator modules are loaded only when used.
 */
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
    .addHelpText('after', '\nExample:\n  $ vtgt sim xen --domains 4 --seconds 10 --hostile\n')
    .action(async function (this: Command) {
      const o = this.opts<{ domains: string; seconds: string; hostile?: boolean }>();
      const domains = bounded(o.domains, '--domains', 1, 64);
      const seconds = bounded(o.seconds, '--seconds', 1, 600);
      type Run = (opts: { domains: number; seconds: number; hostile: boolean }) => Promise<SimResult>;
      const run = await loadSim<Run>('../xen/sim/run.js', 'runXenSim', 'Xen');
      report(io, 'xen-sim', await run({ domains, seconds, hostile: Boolean(o.hostile) }));
    });
  sim
    .command('ibmvio')
    .description('simulated POWER client partitions drive vSCSI (SRP over CRQ) I/O through the real VIO server and verify the data')
    .option('--clients <n>', 'number of simulated client partitions', '2')
    .option('--seconds <s>', 'how long to run', '5')
    .option('--aix', 'clients behave like AIX (LUN addressing, INQUIRY identity) instead of Linux ibmvscsi')
    .option('--hostile', 'clients also send malformed IUs and descriptors (the server must reject them and keep serving)')
    .addHelpText('after', '\nExample:\n  $ vtgt sim ibmvio --clients 3 --seconds 10 --aix\n')
    .action(async function (this: Command) {
      const o = this.opts<{ clients: string; seconds: string; aix?: boolean; hostile?: boolean }>();
      const clients = bounded(o.clients, '--clients', 1, 64);
      const seconds = bounded(o.seconds, '--seconds', 1, 600);
      type Run = (opts: { clients: number; seconds: number; aix: boolean; hostile: boolean }) => Promise<SimResult>;
      const run = await loadSim<Run>('../ibmvio/sim/run.js', 'runIbmvioSim', 'IBM VIO');
      report(io, 'ibmvio-sim', await run({ clients, seconds, aix: Boolean(o.aix), hostile: Boolean(o.hostile) }));
    });
}
