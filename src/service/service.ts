/**
 * `vtgt serve`: assembles logger, config, runtime (core + backstores + iSCSI), control socket, metrics
 * and signal handling, and prints the lines scripts and people look for on stdout.
 */
import { mkdir, stat } from 'node:fs/promises';
import { resolve, join } from 'node:path';
import type { Logger } from 'pino';
import { CONFIG_FILE_NAME, CONTROL_SOCKET_NAME, DEFAULT_TARGET_NAME, defaultConfig } from './config/default.js';
import { issuesMessage, loadConfigFile, writeFileAtomic } from './config/file.js';
import { configToYaml } from './config/serialize.js';
import { describeConfigChange } from './config/diff.js';
import type { PortalConfig, VtgtConfig } from './config/types.js';
import { formatHostPort } from './config/values.js';
import { ControlServer, socketInUse } from './control/server.js';
import { ControlError } from './control/protocol.js';
import { safeSessions } from './control/show.js';
import type { ServiceContext } from './control/ops.js';
import { createLogger } from './logger.js';
import { MetricsServer } from './metrics.js';
import { loadPlatform, type Platform } from './platform.js';
import { ApplyError, Runtime } from './runtime.js';
import { StatsSampler } from './stats.js';
import { unavailableFabrics } from './fabrics/index.js';

export interface ServeOptions {
  dataDir: string;
  /** Explicit config file; default: DATA/vtgt.yaml, created from the embedded default when missing. */
  configPath?: string;
  /** Replaces the configured iSCSI portals. */
  portals?: PortalConfig[];
  logger?: Logger;
  platform?: Platform;
  /** Bound for graceful shutdown (logout requests, drain, flush). */
  shutdownTimeoutMs?: number;
  out?: (line: string) => void;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export interface RunningService {
  runtime: Runtime;
  logger: Logger;
  /** Resolves with the exit code once the service has stopped. */
  stopped: Promise<number>;
  stop(reason: string): Promise<number>;
  /** Re-read the config file and apply the difference (SIGHUP). */
  reload(): Promise<string[]>;
}

export async function resolveDataDir(explicit?: string): Promise<string> {
  return resolve(explicit ?? process.env.VTGT_DATA ?? 'vtgt-data');
}

export async function serve(opts: ServeOptions): Promise<RunningService> {
  const out = opts.out ?? ((l: string) => process.stdout.write(`${l}\n`));
  const dataDir = resolve(opts.dataDir);
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const configPath = resolve(opts.configPath ?? join(dataDir, CONFIG_FILE_NAME));

  // Two services on one data directory would write the same images: refuse before opening anything.
  const socketPath = join(dataDir, CONTROL_SOCKET_NAME);
  if (await socketInUse(socketPath)) {
    throw new ConfigError(`another vtgt is already running with data directory ${dataDir} (its control socket ${socketPath} answers); stop it first or use another --data`);
  }

  // The config is read before the logger exists: its log level applies from the first line.
  let config: VtgtConfig;
  let warnings: string[] = [];
  let createdDefault = false;
  if (!opts.configPath && !(await exists(configPath))) {
    config = defaultConfig();
    await writeFileAtomic(configPath, configToYaml(config));
    createdDefault = true;
  } else {
    const r = await loadConfigFile(configPath);
    if (!r.ok) throw new ConfigError(issuesMessage(r));
    config = r.config;
    warnings = r.warnings;
  }
  const logger = opts.logger ?? createLogger({ level: config.log.level });
  if (createdDefault) logger.info({ path: configPath }, `wrote the default configuration to ${configPath}`);
  for (const w of warnings) logger.warn({ path: configPath }, w);
  for (const [key, why] of unavailableFabrics()) logger.warn({ fabric: key, reason: why }, `the ${key} fabric is not available in this build; its config section is refused`);
  // --portal replaces the file's portals while the process runs; saving writes the file's portals
  // back (plus any added with the CLI), so an override never becomes permanent by accident.
  let filePortals = config.iscsi.portals;
  const withOverrides = (c: VtgtConfig, remember = true): VtgtConfig => {
    if (remember) filePortals = c.iscsi.portals;
    return opts.portals ? { ...c, iscsi: { ...c.iscsi, portals: opts.portals } } : c;
  };
  const forSaving = (c: VtgtConfig): VtgtConfig => {
    if (!opts.portals) return c;
    const isOverride = (p: PortalConfig) => opts.portals!.some((o) => o.host === p.host && o.port === p.port && o.tpgt === p.tpgt);
    return { ...c, iscsi: { ...c.iscsi, portals: [...filePortals, ...c.iscsi.portals.filter((p) => !isOverride(p))] } };
  };

  const platform = opts.platform ?? (await loadPlatform(logger));
  const runtime = new Runtime(platform, dataDir, logger, {
    ...(config.iscsi.nopInterval === undefined ? {} : { nopInterval: config.iscsi.nopInterval }),
    ...(config.iscsi.nopTimeout === undefined ? {} : { nopTimeout: config.iscsi.nopTimeout }),
    iscsiThreads: config.performance?.iscsiThreads ?? 0,
  });
  try {
    await runtime.apply(withOverrides(config));
  } catch (e) {
    await runtime.shutdown(1000).catch(() => undefined);
    throw e instanceof ApplyError ? new ConfigError(e.message) : e;
  }

  const sampler = new StatsSampler(() => platform.core.stats(), () => safeSessions(runtime));
  sampler.start();

  const ctx: ServiceContext = {
    runtime,
    dataDir,
    configPath,
    async load(path, dryRun = false) {
      const file = path ? resolve(path) : configPath;
      const r = await loadConfigFile(file);
      if (!r.ok) throw new ControlError('invalid', `${issuesMessage(r)}\nthe running configuration was kept`);
      if (dryRun) return describeConfigChange(runtime.config(), withOverrides(r.config, false));
      for (const w of r.warnings) logger.warn({ path: file }, w);
      const previousFilePortals = filePortals;
      let changes: string[];
      try {
        changes = await runtime.apply(withOverrides(r.config));
      } catch (e) {
        filePortals = previousFilePortals;
        throw e;
      }
      return changes;
    },
    async save(path) {
      const file = path ? resolve(path) : configPath;
      await writeFileAtomic(file, configToYaml(forSaving(runtime.config())));
      logger.info({ path: file }, `configuration saved to ${file}`);
      return file;
    },
    stats: () => sampler.report(),
  };

  const control = new ControlServer(socketPath, ctx, logger.child({ component: 'control' }));
  let metrics: MetricsServer | undefined;
  try {
    await control.listen();
    if (config.metrics.listen) {
      metrics = new MetricsServer(
        {
          stats: () => platform.core.stats(),
          lunTargets: () => lunTargets(runtime),
          sessions: () => safeSessions(runtime).length,
          busyPoll: () => platform.busyPollStats?.() ?? null,
          ioEngine: () => platform.ioEngineStats?.() ?? null,
        },
        logger.child({ component: 'metrics' }),
      );
      const m = await metrics.listen(config.metrics.listen.host, config.metrics.listen.port);
      out(`vtgt: metrics on http://${formatHostPort(m.host, m.port)}/metrics`);
    }
  } catch (e) {
    await control.close().catch(() => undefined);
    await runtime.shutdown(1000).catch(() => undefined);
    throw e;
  }

  for (const p of runtime.portals.values()) out(`vtgt: listening on iscsi://${formatHostPort(p.bound.host, p.bound.port)}`);
  printConnectHelp(out, runtime, dataDir);
  out('vtgt: ready');
  logger.info({ dataDir, configPath, portals: [...runtime.portals.values()].map((p) => formatHostPort(p.bound.host, p.bound.port)) }, 'vtgt started');

  let stopping: Promise<number> | undefined;
  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((r) => (resolveStopped = r));
  const stop = (reason: string): Promise<number> => {
    stopping ??= (async () => {
      logger.info({ reason }, 'shutting down: no new logins, asking initiators to log out, flushing');
      sampler.stop();
      let code = 0;
      try {
        await control.close();
        await metrics?.close();
        await runtime.shutdown(Math.max(1000, Math.floor((opts.shutdownTimeoutMs ?? 15_000) / 2)));
        logger.info('stopped cleanly');
      } catch (e) {
        logger.error({ err: e }, 'shutdown did not complete cleanly');
        code = 1;
      }
      resolveStopped(code);
      return code;
    })();
    return stopping;
  };
  return { runtime, logger, stopped, stop, reload: () => ctx.load() };
}

/** Install SIGHUP (reload) and SIGTERM/SIGINT (graceful stop; a second one exits at once). */
export function installSignalHandlers(svc: RunningService, logger: Logger, timeoutMs: number): void {
  // A programming fault leaves state we cannot trust: record it in the log, then exit so the
  // supervisor (systemd Restart=on-failure) starts a clean process.
  const fatal = (what: string) => (err: unknown) => {
    logger.fatal({ err }, `${what}; exiting`);
    process.exit(70);
  };
  process.on('uncaughtException', fatal('internal error (uncaught exception)'));
  process.on('unhandledRejection', fatal('internal error (unhandled promise rejection)'));
  let signals = 0;
  const onStop = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal: sig }, 'second signal: exiting now without waiting for initiators');
      process.exit(sig === 'SIGINT' ? 130 : 143);
    }
    const hard = setTimeout(() => {
      logger.error({ timeoutMs }, 'graceful shutdown took too long; exiting (write-back data was flushed if the flush finished)');
      process.exit(1);
    }, timeoutMs);
    hard.unref();
    void svc.stop(sig).then((code) => {
      clearTimeout(hard);
      process.exitCode = code;
      // Give pino's stderr writes a tick, then leave even if a stray handle is still open.
      setImmediate(() => process.exit(code));
    });
  };
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: reloading the configuration');
    svc.reload().then(
      (changes) => logger.info({ changes }, changes.length ? 'reload applied' : 'reload: nothing changed'),
      (e: unknown) => logger.error({ err: e }, `reload rejected, running configuration kept: ${(e as Error).message}`),
    );
  });
}

function lunTargets(rt: Runtime): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const t of rt.config().targets) {
    for (const l of t.luns) m.set(l.backstore, [...(m.get(l.backstore) ?? []), t.name]);
  }
  return m;
}

function printConnectHelp(out: (l: string) => void, rt: Runtime, dataDir: string): void {
  const portal = [...rt.portals.values()][0];
  const target = rt.config().targets[0];
  if (!portal || !target) return;
  const hp = formatHostPort(portal.bound.host === '0.0.0.0' ? '127.0.0.1' : portal.bound.host === '::' ? '::1' : portal.bound.host, portal.bound.port);
  const lun = target.luns[0]?.lun ?? 0;
  const url = `iscsi://${hp}/${target.name}/${lun}`;
  out(`vtgt: data directory ${dataDir}; manage with: vtgt --data ${dataDir} show`);
  out(`vtgt: connect with:`);
  out(`  iscsi-ls -s iscsi://${hp}                  # list targets and LUNs (libiscsi-bin)`);
  out(`  iscsi-inq ${url}`);
  out(`  iscsiadm -m discovery -t sendtargets -p ${hp} && iscsiadm -m node -T ${target.name} -p ${hp} --login`);
  out(`  qemu-system-x86_64 ... -drive file=${url},format=raw,if=virtio`);
  out(`  qemu-io -f raw -c 'read -v 0 512' ${url}`);
  if (target.name === DEFAULT_TARGET_NAME && target.acls.length === 0) {
    out(`vtgt: the default target admits every initiator; add an ACL (vtgt acl create) before exposing it beyond this machine`);
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
