/**
 * `vtgt stats`: per-LUN counters from the core turned into rates (IOPS, bytes/s over the last sampling
 * window) and latency percentiles (from the core's histogram: the upper bound of the bucket holding the
 * percentile, so "p99 <= 2.5 ms"), plus the iSCSI sessions.
 */
import type { CoreStats, LuStats } from '../vscsi/stats.js';

export interface LunStatsReport {
  backstore: string;
  readCommands: number;
  writeCommands: number;
  otherCommands: number;
  readBytes: number;
  writeBytes: number;
  errors: number;
  aborted: number;
  /** Over the last sampling window (absent before the second sample). */
  iops?: number;
  readBytesPerSec?: number;
  writeBytesPerSec?: number;
  latencyMs: { p50?: number; p90?: number; p99?: number; mean?: number };
}

export interface StatsReport {
  windowSeconds?: number;
  nexuses: number;
  activeCommands: number;
  luns: LunStatsReport[];
  sessions: Array<Record<string, unknown>>;
}

/** Upper bound of the histogram bucket that holds quantile `q` (Infinity for the overflow bucket). */
export function percentile(l: LuStats['latency'], q: number): number | undefined {
  if (l.count === 0) return undefined;
  const rank = Math.ceil(q * l.count);
  let seen = 0;
  for (let i = 0; i < l.counts.length; i++) {
    seen += l.counts[i]!;
    if (seen >= rank) return i < l.bucketsMs.length ? l.bucketsMs[i]! : Infinity;
  }
  return Infinity;
}

function total(s: LuStats): number {
  return s.readCommands + s.writeCommands + s.otherCommands;
}

type SessionCounters = Map<string, { commands: number; readBytes: number; writeBytes: number }>;

function sessionKey(s: Record<string, unknown>): string {
  return `${String(s.initiator)}|${String(s.isid)}|${String(s.tsih)}|${String(s.target)}`;
}

function sessionCounters(list: Array<Record<string, unknown>>): SessionCounters {
  const m: SessionCounters = new Map();
  for (const s of list) {
    const n = (k: string) => (typeof s[k] === 'number' ? (s[k] as number) : 0);
    m.set(sessionKey(s), { commands: n('commands'), readBytes: n('readBytes'), writeBytes: n('writeBytes') });
  }
  return m;
}

export class StatsSampler {
  private prev: { at: number; stats: CoreStats; sessions: SessionCounters } | undefined;
  private last: { at: number; stats: CoreStats; sessions: SessionCounters } | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly read: () => CoreStats,
    private readonly sessions: () => Array<Record<string, unknown>>,
    private readonly intervalMs = 5000,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private sample(): void {
    try {
      const stats = structuredClone(this.read());
      this.prev = this.last;
      this.last = { at: Date.now(), stats, sessions: sessionCounters(this.sessions()) };
    } catch {
      // The core may be between states during shutdown; the next sample will do.
    }
  }

  report(): StatsReport {
    const now = this.read();
    const base = this.prev ?? this.last;
    const dt = base ? (Date.now() - base.at) / 1000 : 0;
    const luns = Object.entries(now.logicalUnits).map(([id, s]): LunStatsReport => {
      const r: LunStatsReport = {
        backstore: id,
        readCommands: s.readCommands,
        writeCommands: s.writeCommands,
        otherCommands: s.otherCommands,
        readBytes: s.readBytes,
        writeBytes: s.writeBytes,
        errors: s.errors,
        aborted: s.aborted,
        latencyMs: {},
      };
      const p50 = percentile(s.latency, 0.5);
      const p90 = percentile(s.latency, 0.9);
      const p99 = percentile(s.latency, 0.99);
      if (p50 !== undefined) r.latencyMs.p50 = p50;
      if (p90 !== undefined) r.latencyMs.p90 = p90;
      if (p99 !== undefined) r.latencyMs.p99 = p99;
      if (s.latency.count) r.latencyMs.mean = s.latency.sumMs / s.latency.count;
      const old = base?.stats.logicalUnits[id];
      if (old && dt >= 0.5) {
        r.iops = (total(s) - total(old)) / dt;
        r.readBytesPerSec = (s.readBytes - old.readBytes) / dt;
        r.writeBytesPerSec = (s.writeBytes - old.writeBytes) / dt;
      }
      return r;
    });
    const sessions = this.sessions().map((x) => {
      const old = base?.sessions.get(sessionKey(x));
      if (!old || dt < 0.5) return x;
      const cur = sessionCounters([x]).get(sessionKey(x))!;
      return {
        ...x,
        iops: (cur.commands - old.commands) / dt,
        readBytesPerSec: (cur.readBytes - old.readBytes) / dt,
        writeBytesPerSec: (cur.writeBytes - old.writeBytes) / dt,
      };
    });
    const out: StatsReport = { nexuses: now.nexuses, activeCommands: now.activeCommands, luns, sessions };
    if (base && dt >= 0.5) out.windowSeconds = Math.round(dt * 10) / 10;
    return out;
  }
}
