/** Small helpers the command modules share: examples in help, backstore options, integer options. */
import { Option, type Command } from 'commander';
import { UsageError } from './errors.js';

export function example(cmd: Command, ...lines: string[]): Command {
  return cmd.addHelpText('after', `\nExample${lines.length > 1 ? 's' : ''}:\n${lines.map((l) => `  $ ${l}`).join('\n')}\n`);
}

export function backstoreOptions(cmd: Command, withType: boolean): Command {
  if (withType) {
    cmd.addOption(new Option('--type <type>', 'backstore type').choices(['file', 'block', 'memory', 'null']).makeOptionMandatory());
    cmd.option('--path <path>', 'file (relative to the data directory) or block device');
    cmd.option('--size <size>', 'size, e.g. 1GiB (file: created sparse when missing)');
  } else {
    cmd.option('--size <size>', 'size of a new --file image (created sparse when missing)');
    cmd.option('--name <name>', 'name of the new backstore (default: from the file name or type)');
  }
  return cmd
    .addOption(new Option('--block-size <n>', 'logical block size').choices(['512', '4096']))
    .option('--read-only', 'write protect the LUN')
    .addOption(new Option('--cache-mode <mode>', 'writeback (initiator flushes) or writethrough').choices(['writeback', 'writethrough']))
    .option('--direct', 'O_DIRECT (bypass the page cache)')
    .option('--device-window <size>', 'with --direct: bytes of large transfers at the device before more wait (default 512KiB, 0 = off)')
    .option('--removable', 'removable medium (START STOP UNIT can eject)')
    .option('--serial <serial>', 'unit serial number (VPD 0x80; default derived from the backstore name)');
}

export function backstoreArgs(o: Record<string, unknown>, withType: boolean): Record<string, unknown> {
  const a: Record<string, unknown> = {
    name: o.name,
    size: o.size,
    blockSize: o.blockSize === undefined ? undefined : Number(o.blockSize),
    readOnly: Boolean(o.readOnly),
    cacheMode: o.cacheMode,
    direct: Boolean(o.direct),
    deviceWindow: o.deviceWindow,
    removable: Boolean(o.removable),
    serial: o.serial,
  };
  if (withType) Object.assign(a, { type: o.type, path: o.path });
  return a;
}

export function intOpt(v: unknown, what: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^\d+$/.test(v)) throw new UsageError(`${what} must be a non-negative integer, got "${String(v)}"`);
  return Number(v);
}
