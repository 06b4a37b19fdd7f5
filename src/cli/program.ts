/**
 * The `vtgt` command line. Exit codes: 0 success, 1 the operation failed, 2 usage error (bad or
 * missing arguments). Every command's --help ends with an example.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CONTROL_SOCKET_NAME } from '../service/config/default.js';
import { controlRequest, ControlClientError } from '../service/control/client.js';
import type { ShowData } from '../service/control/show.js';
import type { StatsReport } from '../service/stats.js';
import { renderTable, safe } from './render.js';
import { showTree } from './show-render.js';
import { serveCommand } from './serve-command.js';
import { simCommand } from './sim-command.js';
import { xenCommand } from './xen-command.js';
import { ibmvioCommand } from './ibmvio-command.js';
import { UsageError } from './errors.js';
import { backstoreArgs, backstoreOptions, example, intOpt } from './kit.js';

export { UsageError };

export interface CliIo {
  out(s: string): void;
  err(s: string): void;
  /** Called by `serve` once its options are valid, before it starts: the process entry sets up Node here. */
  prepareService?(): void;
}

const DATA_HELP = 'data directory holding the config, images and control socket (default: $VTGT_DATA, then ./vtgt-data)';

function socketPath(cmd: Command): string {
  const o = cmd.optsWithGlobals<{ data?: string }>();
  const data = o.data ?? process.env.VTGT_DATA ?? 'vtgt-data';
  return join(data, CONTROL_SOCKET_NAME);
}

function jsonWanted(cmd: Command): boolean {
  return Boolean(cmd.optsWithGlobals<{ json?: boolean }>().json);
}

export function buildProgram(io: CliIo): Command {
  const program = new Command('vtgt')
    .description('vtgt: a user-space SCSI target (iSCSI, IBM VIO vSCSI, Xen pvSCSI)')
    .option('-d, --data <dir>', DATA_HELP)
    .option('--json', 'machine-readable output')
    .version(packageVersion(), '-V, --version')
    .showHelpAfterError('(add --help for usage and an example)')
    .configureOutput({ writeOut: (s) => io.out(s.replace(/\n$/, '')), writeErr: (s) => io.err(s.replace(/\n$/, '')) })
    .exitOverride();
  example(program, 'npx vtgt serve', 'vtgt show', 'vtgt lun create iqn.2026-11.org.vtgt:default --file disk1.img --size 10GiB');

  /** Run a control operation and print its result. */
  const call = async (cmd: Command, op: string, args: Record<string, unknown>, print?: (r: unknown) => string): Promise<void> => {
    const result = await controlRequest(socketPath(cmd), op, args);
    if (jsonWanted(cmd)) {
      io.out(JSON.stringify(result, null, 2));
      return;
    }
    if (print) {
      io.out(print(result));
      return;
    }
    const r = result as { changes?: string[]; message?: string } | null;
    if (r?.message) io.out(r.message);
    if (r?.changes) io.out(r.changes.length ? r.changes.map(safe).join('\n') : 'nothing changed');
  };
  const leaf = (parent: Command, name: string, description: string): Command =>
    parent.command(name).description(description).option('-d, --data <dir>', DATA_HELP).option('--json', 'machine-readable output');

  serveCommand(program, io);

  example(leaf(program, 'show', 'show backstores, targets, LUNs, ACLs, portals and sessions as a tree'), 'vtgt show', 'vtgt show --json').action(async function (this: Command) {
    await call(this, 'show', {}, (r) => showTree(r as ShowData));
  });

  example(leaf(program, 'stats', 'per-LUN IOPS, bytes, latency percentiles and errors; per-session counters'), 'vtgt stats', 'vtgt stats --json | jq .luns').action(async function (this: Command) {
    await call(this, 'stats', {}, (r) => renderStats(r as StatsReport));
  });

  // --- target
  const target = program.command('target').description('create, delete and list iSCSI targets');
  example(leaf(target, 'create', 'create a target (no LUNs, open to all initiators until an ACL is added)').argument('<iqn>', 'target name').option('--tpgt <n>', 'target portal group tag'), 'vtgt target create iqn.2026-11.org.example:db').action(async function (this: Command, iqn: string) {
    await call(this, 'target.create', { name: iqn, tpgt: intOpt(this.opts().tpgt, '--tpgt') });
  });
  example(leaf(target, 'delete', 'delete a target; its sessions are logged out').argument('<iqn>'), 'vtgt target delete iqn.2026-11.org.example:db').action(async function (this: Command, iqn: string) {
    await call(this, 'target.delete', { name: iqn });
  });
  example(
    leaf(target, 'auth', 'require CHAP for every initiator of a target (ACL entries may name their own accounts); without options: no target-wide CHAP')
      .argument('<iqn>')
      .option('--chap <account>', 'account initiators must authenticate with')
      .option('--mutual-chap <account>', 'account the target answers with'),
    'vtgt target auth iqn.2026-11.org.vtgt:default --chap client1',
    'vtgt target auth iqn.2026-11.org.vtgt:default',
  ).action(async function (this: Command, iqn: string) {
    const o = this.opts();
    await call(this, 'target.auth', { name: iqn, chap: o.chap, mutualChap: o.mutualChap });
  });
  const discovery = program.command('discovery').description('iSCSI SendTargets discovery settings');
  example(
    leaf(discovery, 'auth', 'require CHAP for discovery sessions; without options: discovery open to all')
      .option('--chap <account>', 'account initiators must authenticate with')
      .option('--mutual-chap <account>', 'account the target answers with'),
    'vtgt discovery auth --chap discovery',
    'vtgt discovery auth',
  ).action(async function (this: Command) {
    const o = this.opts();
    await call(this, 'discovery.auth', { chap: o.chap, mutualChap: o.mutualChap });
  });
  example(leaf(target, 'list', 'list targets'), 'vtgt target list').action(async function (this: Command) {
    await call(this, 'target.list', {}, (r) => renderTable(r as Array<Record<string, unknown>>, ['name', 'luns', 'acls']));
  });

  // --- backstore
  const backstore = program.command('backstore').description('create, delete and list backstores (storage behind LUNs)');
  example(backstoreOptions(leaf(backstore, 'create', 'create a backstore').argument('<name>'), true), 'vtgt backstore create scratch --type memory --size 256MiB', 'vtgt backstore create data --type file --path data.img --size 20GiB').action(async function (this: Command, name: string) {
    await call(this, 'backstore.create', { ...backstoreArgs(this.opts(), true), name });
  });
  example(leaf(backstore, 'delete', 'close a backstore that no LUN maps (its file is kept)').argument('<name>'), 'vtgt backstore delete scratch').action(async function (this: Command, name: string) {
    await call(this, 'backstore.delete', { name });
  });
  example(
    leaf(backstore, 'resize', 'grow a backstore while in use: extend a file image to --size, or re-read the size of a grown device; initiators get CAPACITY DATA HAS CHANGED')
      .argument('<name>')
      .option('--size <size>', 'new size of a file image (growing only)'),
    'vtgt backstore resize disk0 --size 20GiB',
    'vtgt backstore resize lvm0          # after lvextend',
  ).action(async function (this: Command, name: string) {
    await call(this, 'backstore.resize', { name, size: this.opts().size });
  });
  example(
    leaf(backstore, 'clear-reservations', 'drop stale SCSI persistent reservations and registrations of a backstore (e.g. after a cluster node died)').argument('<name>'),
    'vtgt backstore clear-reservations disk0',
  ).action(async function (this: Command, name: string) {
    await call(this, 'backstore.clear-reservations', { name });
  });
  example(leaf(backstore, 'list', 'list backstores and where they are mapped'), 'vtgt backstore list').action(async function (this: Command) {
    await call(this, 'backstore.list', {}, (r) => renderTable(r as Array<Record<string, unknown>>, ['name', 'type', 'path', 'size', 'usedBy']));
  });

  // --- lun
  const lun = program.command('lun').description('map, unmap and list LUNs of a target (hot: initiators get REPORTED LUNS DATA HAS CHANGED)');
  example(
    backstoreOptions(
      leaf(lun, 'create', 'map a LUN: an existing backstore (--backstore) or a new one (--file/--block/--memory/--null)')
        .argument('<target>', 'target IQN')
        .option('--lun <n>', 'LUN number (default: lowest free)')
        .option('--backstore <name>', 'map an existing backstore')
        .option('--file <path>', 'new file backstore (relative to the data directory; created sparse with --size)')
        .option('--block <device>', 'new block-device backstore')
        .option('--memory <size>', 'new RAM backstore of this size')
        .option('--null <size>', 'new null backstore of this size (reads zeroes, discards writes)')
        .option('--initiator <iqn>', "map in this initiator's ACL LUN map instead of the target's"),
      false,
    ),
    'vtgt lun create iqn.2026-11.org.vtgt:default --file disk1.img --size 10GiB',
    'vtgt lun create iqn.2026-11.org.vtgt:default --backstore scratch --lun 5',
  ).action(async function (this: Command, iqn: string) {
    const o = this.opts();
    const kinds = (['backstore', 'file', 'block', 'memory', 'null'] as const).filter((k) => o[k] !== undefined);
    if (kinds.length !== 1) throw new UsageError('give exactly one of --backstore, --file, --block, --memory, --null');
    const args: Record<string, unknown> = { target: iqn, lun: intOpt(o.lun, '--lun'), initiator: o.initiator };
    if (o.backstore !== undefined) args.backstore = o.backstore;
    else {
      const k = kinds[0]!;
      Object.assign(args, backstoreArgs(o, false), { type: k });
      if (k === 'file' || k === 'block') args.path = o[k];
      else args.size = o[k];
    }
    await call(this, 'lun.create', args);
  });
  example(
    leaf(lun, 'delete', 'unmap a LUN; I/O in flight is drained, and a backstore no longer mapped anywhere is flushed and closed')
      .argument('<target>')
      .argument('<lun>')
      .option('--initiator <iqn>', "unmap from this initiator's ACL LUN map")
      .option('--keep-backstore', 'keep the backstore open even if nothing maps it'),
    'vtgt lun delete iqn.2026-11.org.vtgt:default 1',
  ).action(async function (this: Command, iqn: string, n: string) {
    const o = this.opts();
    await call(this, 'lun.delete', { target: iqn, lun: intOpt(n, 'LUN'), initiator: o.initiator, keepBackstore: Boolean(o.keepBackstore) });
  });
  example(leaf(lun, 'list', 'list LUNs').argument('[target]'), 'vtgt lun list', 'vtgt lun list iqn.2026-11.org.vtgt:default').action(async function (this: Command, iqn?: string) {
    await call(this, 'lun.list', { target: iqn }, (r) => renderTable(r as Array<Record<string, unknown>>, ['target', 'lun', 'backstore']));
  });

  // --- portal
  const portal = program.command('portal').description('add, remove and list iSCSI portals (listening addresses)');
  example(leaf(portal, 'create', 'listen on another address').argument('<address>', 'ADDRESS[:PORT], port 3260 by default').option('--tpgt <n>', 'target portal group tag'), 'vtgt portal create 0.0.0.0:3260', 'vtgt portal create [::1]:3261').action(async function (this: Command, address: string) {
    await call(this, 'portal.create', { address, tpgt: intOpt(this.opts().tpgt, '--tpgt') });
  });
  example(leaf(portal, 'delete', 'stop listening on an address (sessions already there stay)').argument('<address>'), 'vtgt portal delete 0.0.0.0:3260').action(async function (this: Command, address: string) {
    await call(this, 'portal.delete', { address });
  });
  example(leaf(portal, 'list', 'list portals'), 'vtgt portal list').action(async function (this: Command) {
    await call(this, 'portal.list', {}, (r) => renderTable(r as Array<Record<string, unknown>>, ['address', 'listening', 'tpgt']));
  });

  // --- acl
  const acl = program.command('acl').description('admit initiators to a target (a target without ACLs admits everyone)');
  example(
    leaf(acl, 'create', 'admit an initiator')
      .argument('<target>')
      .argument('<initiator>', 'initiator IQN (see /etc/iscsi/initiatorname.iscsi on Linux)')
      .option('--chap <account>', 'require CHAP with this account')
      .option('--mutual-chap <account>', 'also authenticate the target to the initiator')
      .option('--address <ip...>', 'only from these source addresses'),
    'vtgt acl create iqn.2026-11.org.vtgt:default iqn.1994-05.com.redhat:client1 --chap client1',
  ).action(async function (this: Command, iqn: string, initiator: string) {
    const o = this.opts();
    await call(this, 'acl.create', { target: iqn, initiator, chap: o.chap, mutualChap: o.mutualChap, addresses: o.address });
  });
  example(leaf(acl, 'delete', 'remove an initiator from a target').argument('<target>').argument('<initiator>'), 'vtgt acl delete iqn.2026-11.org.vtgt:default iqn.1994-05.com.redhat:client1').action(async function (this: Command, iqn: string, initiator: string) {
    await call(this, 'acl.delete', { target: iqn, initiator });
  });
  example(leaf(acl, 'list', 'list ACLs').argument('[target]'), 'vtgt acl list').action(async function (this: Command, iqn?: string) {
    await call(this, 'acl.list', { target: iqn }, (r) => renderTable(r as Array<Record<string, unknown>>, ['target', 'initiator', 'chap', 'mutualChap', 'addresses', 'luns']));
  });

  // --- account
  const account = program.command('account').description('CHAP accounts (credentials targets, ACLs and discovery refer to by name)');
  example(
    leaf(account, 'create', 'create a CHAP account')
      .argument('<name>')
      .requiredOption('--user <user>', 'CHAP user name')
      .option('--secret <secret>', 'the secret itself (12-256 bytes; it ends up in the config file)')
      .option('--secret-file <path>', 'read the secret from this file (keep it mode 0600)')
      .option('--secret-env <var>', 'read the secret from this environment variable of the service'),
    'vtgt account create client1 --user client1 --secret-file /etc/vtgt/client1.secret',
  ).action(async function (this: Command, name: string) {
    const o = this.opts();
    await call(this, 'account.create', { name, user: o.user, secret: o.secret, secretFile: o.secretFile, secretEnv: o.secretEnv });
  });
  example(leaf(account, 'delete', 'delete an account nothing uses').argument('<name>'), 'vtgt account delete client1').action(async function (this: Command, name: string) {
    await call(this, 'account.delete', { name });
  });
  example(leaf(account, 'list', 'list accounts (secrets are never shown)'), 'vtgt account list').action(async function (this: Command) {
    await call(this, 'account.list', {}, (r) => renderTable(r as Array<Record<string, unknown>>, ['name', 'user', 'secret']));
  });

  // --- config
  const config = program.command('config').description('save or load the running configuration');
  example(leaf(config, 'save', 'write the running configuration atomically (default: the file the service was started with)').argument('[file]'), 'vtgt config save', 'vtgt config save /root/vtgt-backup.yaml').action(async function (this: Command, file?: string) {
    await call(this, 'config.save', { path: file }, (r) => `saved ${(r as { path: string }).path}`);
  });
  example(
    leaf(config, 'load', 'validate a file and apply the difference to the running service (sessions on unchanged targets stay)')
      .argument('[file]')
      .option('-n, --dry-run', 'only say what would change'),
    'vtgt config load --dry-run',
    'vtgt config load /root/vtgt-backup.yaml',
  ).action(async function (this: Command, file?: string) {
    await call(this, 'config.load', { path: file, dryRun: Boolean(this.opts().dryRun) });
  });
  example(leaf(config, 'show', 'print the running configuration as YAML'), 'vtgt config show').action(async function (this: Command) {
    await call(this, 'config.show', {}, (r) => (r as { yaml: string }).yaml.replace(/\n$/, ''));
  });

  simCommand(program, io);
  ibmvioCommand(program, { call, leaf });
  xenCommand(program, io);

  return program;
}

function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function fmtRate(n: number | undefined, unit = ''): string {
  if (n === undefined) return '-';
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M${unit}`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k${unit}`;
  return `${n.toFixed(n < 10 ? 1 : 0)}${unit}`;
}

function fmtMs(n: number | undefined): string {
  if (n === undefined) return '-';
  return n === Infinity ? '>5s' : `<=${n}ms`;
}

export function renderStats(s: StatsReport): string {
  const luns = renderTable(
    s.luns.map((l) => ({
      backstore: l.backstore,
      iops: fmtRate(l.iops),
      read: fmtRate(l.readBytesPerSec, 'B/s'),
      write: fmtRate(l.writeBytesPerSec, 'B/s'),
      reads: l.readCommands,
      writes: l.writeCommands,
      p50: fmtMs(l.latencyMs.p50),
      p99: fmtMs(l.latencyMs.p99),
      errors: l.errors,
      aborted: l.aborted,
    })),
  );
  const sessions = renderTable(
    s.sessions.map((x) => ({
      initiator: safe(x.initiator ?? '?'),
      target: safe(x.target ?? '(discovery)'),
      tsih: x.tsih,
      conns: Array.isArray(x.connections) ? x.connections.length : undefined,
      iops: fmtRate(x.iops as number | undefined),
      read: fmtRate(x.readBytesPerSec as number | undefined, 'B/s'),
      write: fmtRate(x.writeBytesPerSec as number | undefined, 'B/s'),
      commands: x.commands,
      'read total': typeof x.readBytes === 'number' ? fmtRate(x.readBytes, 'B') : undefined,
      'written total': typeof x.writeBytes === 'number' ? fmtRate(x.writeBytes, 'B') : undefined,
      active: x.activeCommands,
      rejects: x.rejects,
    })),
  );
  return `LUNs (rates over the last ${s.windowSeconds ?? '-'} s; ${s.activeCommands} commands in flight, ${s.nexuses} nexuses)\n${luns}\n\nsessions\n${sessions}`;
}

/** Run the CLI; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help exits 0; help shown because a subcommand is missing is a usage error.
      if (e.exitCode === 0) return 0;
      return 2; // commander already printed what was wrong
    }
    if (e instanceof UsageError) {
      io.err(`vtgt: ${e.message}`);
      return 2;
    }
    if (e instanceof ControlClientError) {
      io.err(`vtgt: ${e.message}`);
      return e.code === 'usage' ? 2 : 1;
    }
    io.err(`vtgt: ${(e as Error).message ?? String(e)}`);
    return 1;
  }
}
