/**
 * `vtgt xen attach|detach`: the toolstack side of Xen pvSCSI — write (or remove) the xenstore nodes
 * that give a guest domain a virtual SCSI host whose LUNs are vtgt backstores (p-dev = backstore name).
 * The running service's `xen:` fabric picks them up. The Xen modules load only when these run.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { UsageError } from './errors.js';
import type { CliIo } from './program.js';

function int(v: string, what: string, max: number): number {
  if (!/^\d+$/.test(v) || Number(v) > max) throw new UsageError(`${what} must be an integer from 0 to ${max}, got "${v}"`);
  return Number(v);
}

function simSocket(cmd: Command): string | undefined {
  const o = cmd.optsWithGlobals<{ simSocket?: string; sim?: boolean; data?: string }>();
  if (o.simSocket) return o.simSocket;
  if (!o.sim) return undefined;
  const p = join(o.data ?? process.env.VTGT_DATA ?? 'vtgt-data', 'xen-sim.sock');
  if (!existsSync(p)) throw new Error(`no simulated Xen at ${p}; start vtgt serve with "xen: {hypervisor: sim}" in its config`);
  return p;
}

export function xenCommand(program: Command, io: CliIo): void {
  const xen = program.command('xen').description('Xen pvSCSI toolstack: give guest domains virtual SCSI hosts backed by vtgt');
  const common = (c: Command) =>
    c
      .requiredOption('--domain <domid>', 'guest domain id')
      .requiredOption('--vhost <n>', 'virtual SCSI host number in the guest (the vscsi device index)')
      .option('-d, --data <dir>', 'data directory of the service (for --sim)')
      .option('--sim', 'use the simulated hypervisor of the service in the data directory')
      .option('--sim-socket <path>', 'use the simulated hypervisor at this socket')
      .option('--timeout <seconds>', 'how long to wait for the guest to react', '10');
  common(xen.command('attach').description('attach LUNs to a guest (hot-plugs them if the virtual host is already connected)'))
    .requiredOption('--lun <PDEV=H:C:T:L...>', 'backstore name = guest SCSI address, repeatable')
    .option('--no-wait', 'do not wait for hot-plugged LUNs to connect')
    .addHelpText('after', '\nExamples:\n  $ vtgt xen attach --domain 5 --vhost 0 --lun disk0=0:0:0:0\n  $ vtgt xen attach --sim --domain 1 --vhost 0 --lun disk0=0:0:0:0 --lun scratch=0:0:1:0\n')
    .action(async function (this: Command) {
      const o = this.opts<{ domain: string; vhost: string; lun: string[]; wait: boolean; timeout: string }>();
      const luns = o.lun.map((l) => {
        const m = /^([^=]+)=(\d+:\d+:\d+:\d+)$/.exec(l);
        if (!m) throw new UsageError(`--lun ${l}: expected BACKSTORE=HOST:CHANNEL:TARGET:LUN, e.g. disk0=0:0:0:0`);
        return { pdev: m[1]!, vdev: m[2]! };
      });
      const domid = int(o.domain, '--domain', 0x7fef);
      const vhost = int(o.vhost, '--vhost', 0xffff);
      const { openToolstackXenStore, xenAttach } = await import('../xen/toolstack.js');
      const t = await openToolstackXenStore({ ...(simSocket(this) ? { simSocket: simSocket(this)! } : {}) });
      try {
        await xenAttach({ xs: t.xs, backendDomid: t.backendDomid, domid, vhost, luns, wait: o.wait, timeoutMs: int(o.timeout, '--timeout', 3600) * 1000 });
      } finally {
        await t.close();
      }
      io.out(`attached ${luns.map((l) => `${l.pdev} as ${l.vdev}`).join(', ')} to domain ${domid} vhost ${vhost}`);
    });
  xen
    .command('create-domain')
    .description('simulated Xen only: create a guest domain (like xl create) and print the credential file a domU emulator needs')
    .requiredOption('--domain <domid>', 'guest domain id')
    .option('-d, --data <dir>', 'data directory of the service (for --sim)')
    .option('--sim', 'use the simulated hypervisor of the service in the data directory')
    .option('--sim-socket <path>', 'use the simulated hypervisor at this socket')
    .addHelpText('after', '\nExample:\n  $ vtgt xen create-domain --sim --domain 3\n')
    .action(async function (this: Command) {
      const domid = int(this.opts<{ domain: string }>().domain, '--domain', 0x7fef);
      const sock = simSocket(this);
      if (!sock) throw new UsageError('create-domain needs --sim or --sim-socket (real Xen domains are created with xl)');
      const { openToolstackXenStore } = await import('../xen/toolstack.js');
      const t = await openToolstackXenStore({ simSocket: sock });
      try {
        if (!t.createSimDomain) throw new Error('this simulated hypervisor cannot create domains');
        io.out(`domain ${domid} created; its credential: ${await t.createSimDomain(domid)}`);
      } finally {
        await t.close();
      }
    });
  common(xen.command('detach').description('detach one LUN, or the whole virtual host, from a guest'))
    .option('--lun <H:C:T:L>', 'only this guest SCSI address')
    .option('--force', 'remove the virtual host even if the guest does not answer (a guest that is gone)')
    .addHelpText('after', '\nExamples:\n  $ vtgt xen detach --domain 5 --vhost 0 --lun 0:0:1:0\n  $ vtgt xen detach --domain 5 --vhost 0\n')
    .action(async function (this: Command) {
      const o = this.opts<{ domain: string; vhost: string; lun?: string; timeout: string; force?: boolean }>();
      const domid = int(o.domain, '--domain', 0x7fef);
      const vhost = int(o.vhost, '--vhost', 0xffff);
      const { openToolstackXenStore, xenDetach } = await import('../xen/toolstack.js');
      const t = await openToolstackXenStore({ ...(simSocket(this) ? { simSocket: simSocket(this)! } : {}) });
      let forced = false;
      try {
        const r = await xenDetach({ xs: t.xs, backendDomid: t.backendDomid, domid, vhost, timeoutMs: int(o.timeout, '--timeout', 3600) * 1000, force: Boolean(o.force), ...(o.lun ? { vdev: o.lun } : {}) });
        forced = Boolean(r?.forced);
      } finally {
        await t.close();
      }
      io.out(`${o.lun ? `detached ${o.lun} from domain ${domid} vhost ${vhost}` : `detached vhost ${vhost} from domain ${domid}`}${forced ? ' (forced: the guest did not answer)' : ''}`);
    });
}
