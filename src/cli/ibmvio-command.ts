/** `vtgt ibmvio adapter|lun ...`: IBM VIO server adapters and their LUN maps on a running service. */
import type { Command } from 'commander';
import { renderTable } from './render.js';
import { backstoreArgs, backstoreOptions, example, intOpt } from './kit.js';
import { UsageError } from './errors.js';

export interface CommandKit {
  call(cmd: Command, op: string, args: Record<string, unknown>, print?: (r: unknown) => string): Promise<void>;
  leaf(parent: Command, name: string, description: string): Command;
}

export function ibmvioCommand(program: Command, { call, leaf }: CommandKit): void {
  const vio = program.command('ibmvio').description('IBM POWER VIO vSCSI server adapters (the ibmvio: config section)');
  const adapter = vio.command('adapter').description('create, delete and list VIO server adapters');
  example(
    leaf(adapter, 'create', 'create a server adapter (vhost); with the simulated PowerVM, name its client adapter too')
      .argument('<name>', 'adapter name, e.g. vhost0')
      .requiredOption('--unit <address>', 'server unit address, e.g. 0x30000000')
      .option('--profile <profile>', 'client OS: linux (ibmvscsi) or aix', 'linux')
      .option('--client-unit <address>', 'simulated PowerVM: the client adapter unit address')
      .option('--client-partition <n>', 'simulated PowerVM: the client partition number')
      .option('--request-limit <n>', 'SRP request limit (credits) offered to the client'),
    'vtgt ibmvio adapter create vhost0 --unit 0x30000000 --client-unit 0x71000000 --client-partition 10',
  ).action(async function (this: Command, name: string) {
    const o = this.opts();
    await call(this, 'ibmvio.adapter-create', {
      name,
      unit: o.unit,
      profile: o.profile,
      clientUnit: o.clientUnit,
      clientPartition: intOpt(o.clientPartition, '--client-partition'),
      requestLimit: intOpt(o.requestLimit, '--request-limit'),
    });
  });
  example(leaf(adapter, 'delete', 'delete a server adapter (its client loses the LUNs)').argument('<name>'), 'vtgt ibmvio adapter delete vhost0').action(async function (this: Command, name: string) {
    await call(this, 'ibmvio.adapter-delete', { name });
  });
  example(leaf(adapter, 'list', 'list server adapters and their LUNs'), 'vtgt ibmvio adapter list').action(async function (this: Command) {
    await call(this, 'ibmvio.adapter-list', {}, (r) => renderTable(r as Array<Record<string, unknown>>, ['name', 'unit', 'profile', 'client', 'luns']));
  });

  const lun = vio.command('lun').description('map and unmap LUNs of a VIO server adapter');
  example(
    backstoreOptions(
      leaf(lun, 'create', 'map a LUN on an adapter: an existing backstore (--backstore) or a new one (--file/--block/--memory/--null)')
        .argument('<adapter>')
        .option('--lun <n>', 'LUN number (default: lowest free; AIX clients address 0-63)')
        .option('--backstore <name>', 'map an existing backstore')
        .option('--file <path>', 'new file backstore (relative to the data directory)')
        .option('--block <device>', 'new block-device backstore')
        .option('--memory <size>', 'new RAM backstore of this size')
        .option('--null <size>', 'new null backstore of this size'),
      false,
    ),
    'vtgt ibmvio lun create vhost0 --backstore disk0',
    'vtgt ibmvio lun create vhost0 --file lpar10.img --size 20GiB --lun 1',
  ).action(async function (this: Command, name: string) {
    const o = this.opts();
    const kinds = (['backstore', 'file', 'block', 'memory', 'null'] as const).filter((k) => o[k] !== undefined);
    if (kinds.length !== 1) throw new UsageError('give exactly one of --backstore, --file, --block, --memory, --null');
    const args: Record<string, unknown> = { adapter: name, lun: intOpt(o.lun, '--lun') };
    if (o.backstore !== undefined) args.backstore = o.backstore;
    else {
      const k = kinds[0]!;
      Object.assign(args, backstoreArgs(o, false), { type: k });
      if (k === 'file' || k === 'block') args.path = o[k];
      else args.size = o[k];
    }
    await call(this, 'ibmvio.lun-create', args);
  });
  example(leaf(lun, 'delete', 'unmap a LUN from an adapter (the backstore stays)').argument('<adapter>').argument('<lun>'), 'vtgt ibmvio lun delete vhost0 1').action(async function (this: Command, name: string, n: string) {
    await call(this, 'ibmvio.lun-delete', { adapter: name, lun: intOpt(n, 'LUN') });
  });
}
