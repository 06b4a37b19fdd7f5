/**
 * Optional Prometheus endpoint (`metrics: {listen: ADDRESS:PORT}`), off by default. Values are read
 * from the core's counters at scrape time, so nothing is done per I/O for metrics.
 */
import { createServer, type Server } from 'node:http';
import { Registry, Gauge, collectDefaultMetrics, type MetricObjectWithValues, type MetricValue } from 'prom-client';
import type { Logger } from 'pino';
import type { CoreStats } from '../vscsi/stats.js';
import { formatHostPort } from './config/values.js';

export interface MetricsSource {
  stats(): CoreStats;
  /** LU id -> target names that map it (labels). */
  lunTargets(): Map<string, string[]>;
  sessions(): number;
  /** Event-loop busy polling counters (null while polling is off or unavailable). */
  busyPoll?(): BusyPollCounters | null;
  /** The addon's file I/O engines (null without the addon). */
  ioEngine?(): IoEngineCounters | null;
}

/** Requests the file backstores gave the addon, and how they were handed over. */
export interface IoEngineCounters {
  /** Requests per engine. */
  requests: { io_uring: number; threadpool: number };
  /** io_uring_enter calls that submitted requests / hand-overs to the pool's workers. */
  submissions: { io_uring: number; threadpool: number };
  /** Small transfers completed on the event loop without either engine (tmpfs, page-cache hits). */
  inline: number;
}

export interface BusyPollCounters {
  polls: number;
  hits: number;
  polledSeconds: number;
  windowMicros: number;
  skipped: number;
  commandsPerWake: number;
}

/** Counters exposed as Prometheus counters, built from a snapshot at scrape time. */
class SnapshotCounter {
  constructor(
    readonly name: string,
    readonly help: string,
    readonly pick: (s: CoreStats['logicalUnits'][string]) => number,
  ) {}
}

const COUNTERS = [
  new SnapshotCounter('vtgt_lun_read_commands_total', 'Read commands completed per logical unit', (s) => s.readCommands),
  new SnapshotCounter('vtgt_lun_write_commands_total', 'Write commands completed per logical unit', (s) => s.writeCommands),
  new SnapshotCounter('vtgt_lun_other_commands_total', 'Other commands completed per logical unit', (s) => s.otherCommands),
  new SnapshotCounter('vtgt_lun_read_bytes_total', 'Bytes read per logical unit', (s) => s.readBytes),
  new SnapshotCounter('vtgt_lun_write_bytes_total', 'Bytes written per logical unit', (s) => s.writeBytes),
  new SnapshotCounter('vtgt_lun_errors_total', 'Commands completed with an error status per logical unit', (s) => s.errors),
  new SnapshotCounter('vtgt_lun_aborted_total', 'Commands aborted by task management per logical unit', (s) => s.aborted),
];

export class MetricsServer {
  private server: Server | undefined;
  readonly registry = new Registry();

  constructor(
    private readonly source: MetricsSource,
    private readonly logger: Logger,
  ) {
    collectDefaultMetrics({ register: this.registry, prefix: 'vtgt_process_' });
    const src = this.source;
    for (const c of COUNTERS) {
      this.registry.registerMetric(snapshotMetric(c.name, c.help, 'counter', () => {
        const st = src.stats();
        const targets = src.lunTargets();
        return Object.entries(st.logicalUnits).map(([id, s]) => ({ labels: { backstore: id, target: (targets.get(id) ?? []).join(',') }, value: c.pick(s) }));
      }));
    }
    this.registry.registerMetric(snapshotHistogram(src));
    new Gauge({ name: 'vtgt_sessions', help: 'iSCSI sessions logged in', registers: [this.registry], collect() { this.set(src.sessions()); } });
    new Gauge({ name: 'vtgt_active_commands', help: 'SCSI commands in flight', registers: [this.registry], collect() { this.set(src.stats().activeCommands); } });
    // Busy polling (performance.busyPollMicros): how often the loop polled before sleeping, how often
    // a request arrived within the window, and the CPU time it spent doing so.
    const poll = (pick: (b: BusyPollCounters) => number) => () => {
      const b = src.busyPoll?.();
      return b ? [{ labels: {}, value: pick(b) }] : [];
    };
    this.registry.registerMetric(snapshotMetric('vtgt_busy_poll_waits_total', 'Event-loop waits that polled before sleeping', 'counter', poll((b) => b.polls)));
    this.registry.registerMetric(snapshotMetric('vtgt_busy_poll_hits_total', 'Polled waits ended by a request inside the window', 'counter', poll((b) => b.hits)));
    this.registry.registerMetric(snapshotMetric('vtgt_busy_poll_seconds_total', 'CPU time spent polling', 'counter', poll((b) => b.polledSeconds)));
    this.registry.registerMetric(snapshotMetric('vtgt_busy_poll_window_microseconds', 'Current adaptive polling window', 'gauge', poll((b) => b.windowMicros)));
    this.registry.registerMetric(snapshotMetric('vtgt_busy_poll_skipped_total', 'Waits not polled because wake-ups brought several commands', 'counter', poll((b) => b.skipped)));
    this.registry.registerMetric(snapshotMetric('vtgt_busy_poll_commands_per_wake', 'Moving average of SCSI commands per event-loop wake-up', 'gauge', poll((b) => b.commandsPerWake)));
    // File I/O: requests per engine against submissions shows how many requests one event-loop turn
    // hands over together (BENCHMARKS.md section 17).
    const perEngine = (pick: (c: IoEngineCounters) => IoEngineCounters['requests']) => () => {
      const c = src.ioEngine?.();
      return c ? (['io_uring', 'threadpool'] as const).map((engine) => ({ labels: { engine }, value: pick(c)[engine] })) : [];
    };
    this.registry.registerMetric(snapshotMetric('vtgt_io_requests_total', 'File backstore requests handed to each I/O engine', 'counter', perEngine((c) => c.requests)));
    this.registry.registerMetric(
      snapshotMetric('vtgt_io_submissions_total', 'io_uring_enter calls that submitted requests, and hand-overs to the thread pool', 'counter', perEngine((c) => c.submissions)),
    );
    this.registry.registerMetric(
      snapshotMetric('vtgt_io_inline_total', 'Small transfers completed on the event loop without an I/O engine', 'counter', () => {
        const c = src.ioEngine?.();
        return c ? [{ labels: {}, value: c.inline }] : [];
      }),
    );
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => {
      if (req.method !== 'GET' || (req.url !== '/metrics' && req.url !== '/')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('vtgt: metrics are at /metrics\n');
        return;
      }
      this.registry
        .metrics()
        .then((body) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(body))
        .catch((e: unknown) => {
          this.logger.warn({ err: e }, 'collecting metrics failed');
          res.writeHead(500).end();
        });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (e) => reject(new Error(`cannot listen for metrics on ${formatHostPort(host, port)}: ${e.message}`)));
      server.listen(port, host, () => resolve());
    });
    const a = server.address();
    const bound = a && typeof a === 'object' ? { host: a.address, port: a.port } : { host, port };
    return bound;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server?.closeAllConnections();
  }
}

/** A metric whose values are computed at scrape time (prom-client's Metric interface, by shape). */
function snapshotMetric(name: string, help: string, type: 'counter' | 'gauge', values: () => MetricValue<string>[]) {
  return {
    name,
    help,
    type,
    aggregator: 'sum',
    get: async (): Promise<MetricObjectWithValues<MetricValue<string>>> => ({ name, help, type, aggregator: 'sum', values: values() }) as unknown as MetricObjectWithValues<MetricValue<string>>,
    reset: () => undefined,
  } as unknown as Parameters<Registry['registerMetric']>[0];
}

function snapshotHistogram(src: MetricsSource) {
  const name = 'vtgt_lun_command_latency_seconds';
  const help = 'Command latency per logical unit (from submission to completion)';
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    reset: () => undefined,
    get: async () => {
      const values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
      for (const [id, s] of Object.entries(src.stats().logicalUnits)) {
        let cum = 0;
        s.latency.bucketsMs.forEach((ub, i) => {
          cum += s.latency.counts[i] ?? 0;
          values.push({ labels: { backstore: id, le: ub / 1000 }, value: cum, metricName: `${name}_bucket` });
        });
        values.push({ labels: { backstore: id, le: '+Inf' }, value: s.latency.count, metricName: `${name}_bucket` });
        values.push({ labels: { backstore: id }, value: s.latency.sumMs / 1000, metricName: `${name}_sum` });
        values.push({ labels: { backstore: id }, value: s.latency.count, metricName: `${name}_count` });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
  } as unknown as Parameters<Registry['registerMetric']>[0];
}
