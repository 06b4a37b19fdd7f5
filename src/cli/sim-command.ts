/**
 * `vtgt sim xen`: run the simulated Xen guests against an in-process pvSCSI backend (src/xen/sim) and
 * report what was verified. The module is loaded only when this command runs.
 */
import type { Command } from 'commander';
import type { CliIo } from './program.js';
import { UsageError } from './errors.js';

interface XenSimResult {
  commands: number;
  errors: number;
  bytesVerified: number;
  lines: string[];
  ok: boolean;
}
type RunXenSim = (opts: { domains: number; seconds: number; hostile: boolean }) => Promise<XenSimResult>;

function bounded(v: string, what: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${what} must be an integer from ${min} to ${max}`);
  return n;
}

export function simCommand(program: Command, io: CliIo): void {
  const sim = program.command('sim').description('simulations of guest fabrics, for testing without a hypervisor');
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
      const modPath = '../xen/sim/run.js';
      let run: RunXenSim;
      try {
        run = ((await import(modPath)) as { runXenSim: RunXenSim }).runXenSim;
      } catch (e) {
        throw new Error(`the Xen simulator is not part of this build (${(e as Error).message})`);
      }
      const r = await run({ domains, seconds, hostile: Boolean(o.hostile) });
      for (const l of r.lines) io.out(l);
      io.out(`xen-sim: ${r.commands} commands, ${r.errors} errors, ${r.bytesVerified} bytes verified`);
      if (!r.ok) process.exitCode = 1;
    });
}
