/**
 * The V8 young generation the service runs with. With many sessions on a device-backed LU, thousands
 * of commands wait for the device at once; every scavenge copies all of them, and with V8's default
 * 16 MiB semi-spaces that copying was 14-19 % of the service's CPU at 64 sessions (BENCHMARKS.md,
 * section 26). 32 MiB semi-spaces halve how often it happens and cost ≈ 35 MiB of RSS only under such
 * load: the young generation grows only while many objects survive.
 *
 * V8 reads the size once, at start-up, so `vtgt serve` re-executes itself with the flag (same PID)
 * unless the administrator chose a size already (on the node command line or in NODE_OPTIONS).
 */
import { loadNative } from '../native/index.js';

export const SERVICE_SEMI_SPACE_MIB = 32;
const SERVICE_FLAG = `--max-semi-space-size=${SERVICE_SEMI_SPACE_MIB}`;

/** V8 accepts both spellings of its flags. */
const SEMI_SPACE_FLAG = /^--max[-_]semi[-_]space[-_]size(=|$)/;

function choosesSemiSpace(args: readonly string[]): boolean {
  return args.some((a) => SEMI_SPACE_FLAG.test(a));
}

/**
 * The argv to start Node with for the service, or undefined when the running process already has a
 * semi-space size (ours, or one the administrator chose). `argv` is process.argv: [node, script, ...args].
 */
export function serviceRelaunchArgv(
  execArgv: readonly string[],
  argv: readonly string[],
  nodeOptions: string | undefined,
): string[] | undefined {
  if (choosesSemiSpace(execArgv)) return undefined;
  if (nodeOptions && choosesSemiSpace(nodeOptions.split(/\s+/))) return undefined;
  if (argv.length < 2) return undefined;
  return [argv[0]!, SERVICE_FLAG, ...execArgv, ...argv.slice(1)];
}

/** What relaunching reads from the process and how it execs (tests replace both). */
export interface RelaunchContext {
  execPath: string;
  execArgv: readonly string[];
  argv: readonly string[];
  nodeOptions: string | undefined;
  exec(path: string, argv: string[]): never;
}

const thisProcess = (): RelaunchContext => ({
  execPath: process.execPath,
  execArgv: process.execArgv,
  argv: process.argv,
  nodeOptions: process.env.NODE_OPTIONS,
  exec: (path, argv) => loadNative().execReplace(path, argv),
});

/**
 * Re-execute this process with the service's young-generation size; returns only when nothing needed
 * doing or the exec failed (then the reason is passed to `warn` and the service runs with V8's default).
 */
export function relaunchWithServiceHeap(warn: (message: string) => void, ctx: RelaunchContext = thisProcess()): void {
  const argv = serviceRelaunchArgv(ctx.execArgv, ctx.argv, ctx.nodeOptions);
  if (!argv) return;
  try {
    ctx.exec(ctx.execPath, argv);
  } catch (e) {
    warn(
      `vtgt: could not restart Node with ${SERVICE_FLAG} (${(e as Error).message}); ` +
        'running with V8 default heap sizes. Start node with that flag yourself to avoid this.',
    );
  }
}
