/** `vtgt serve`: run the target service in the foreground until SIGTERM/SIGINT. */
import type { Command } from 'commander';
import { DEFAULT_ISCSI_PORT } from '../service/config/schema.js';
import type { PortalConfig } from '../service/config/types.js';
import { parseHostPort } from '../service/config/values.js';
import { ConfigError, installSignalHandlers, resolveDataDir, serve } from '../service/service.js';
import type { CliIo } from './program.js';
import { UsageError } from './errors.js';


export function serveCommand(program: Command, io: CliIo): void {
  program
    .command('serve')
    .description('run the target service (creates DATA/vtgt.yaml and a 1 GiB sparse disk0.img on first start)')
    .option('-d, --data <dir>', 'data directory (default: $VTGT_DATA, then ./vtgt-data)')
    .option('-c, --config <file>', 'configuration file (default: DATA/vtgt.yaml)')
    .option('-p, --portal <address...>', 'listen on these ADDRESS:PORT instead of the configured portals (port 0 = any free port)')
    .option('--shutdown-timeout <seconds>', 'longest graceful shutdown before exiting anyway', '20')
    .addHelpText(
      'after',
      '\nExamples:\n  $ npx vtgt serve\n  $ vtgt serve --data /var/lib/vtgt --portal 0.0.0.0:3260\n  $ vtgt serve --config /etc/vtgt/vtgt.yaml --data /var/lib/vtgt\n\nSignals: SIGHUP reloads the config file; SIGTERM/SIGINT stop gracefully (a second one exits at once).\n',
    )
    .action(async function (this: Command) {
      const o = this.optsWithGlobals<{ data?: string; config?: string; portal?: string[]; shutdownTimeout: string }>();
      let portals: PortalConfig[] | undefined;
      if (o.portal) {
        portals = o.portal.map((p) => {
          const hp = parseHostPort(p, DEFAULT_ISCSI_PORT);
          if (typeof hp === 'string') throw new UsageError(`--portal: ${hp}`);
          return hp;
        });
      }
      const timeoutS = Number(o.shutdownTimeout);
      if (!Number.isFinite(timeoutS) || timeoutS < 1 || timeoutS > 3600) throw new UsageError('--shutdown-timeout must be 1..3600 seconds');
      io.prepareService?.();
      const dataDir = await resolveDataDir(o.data);
      let svc;
      try {
        svc = await serve({
          dataDir,
          ...(o.config ? { configPath: o.config } : {}),
          ...(portals ? { portals } : {}),
          shutdownTimeoutMs: timeoutS * 1000,
          out: (l) => io.out(l),
        });
      } catch (e) {
        if (e instanceof ConfigError) {
          io.err(`vtgt: ${e.message}`);
          process.exitCode = 1;
          return;
        }
        throw e;
      }
      installSignalHandlers(svc, svc.logger, timeoutS * 1000);
      process.exitCode = await svc.stopped;
    });
}
