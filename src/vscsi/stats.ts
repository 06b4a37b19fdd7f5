/** Per-logical-unit counters for the service's metrics endpoint. Updated once per command, never per byte. */

/** Upper bounds (ms) of the latency histogram buckets; the last bucket is +Inf. */
export const LATENCY_BUCKETS_MS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 5000] as const;

export interface LuStats {
  readCommands: number;
  writeCommands: number;
  otherCommands: number;
  readBytes: number;
  writeBytes: number;
  /** Commands completed with CHECK CONDITION (any sense) or another non-GOOD status. */
  errors: number;
  /** Commands aborted by task management. */
  aborted: number;
  latency: { bucketsMs: readonly number[]; counts: number[]; sumMs: number; count: number };
}

export interface CoreStats {
  logicalUnits: Record<string, LuStats>;
  nexuses: number;
  activeCommands: number;
}

export function newLuStats(): LuStats {
  return {
    readCommands: 0,
    writeCommands: 0,
    otherCommands: 0,
    readBytes: 0,
    writeBytes: 0,
    errors: 0,
    aborted: 0,
    latency: { bucketsMs: LATENCY_BUCKETS_MS, counts: new Array<number>(LATENCY_BUCKETS_MS.length + 1).fill(0), sumMs: 0, count: 0 },
  };
}

export function recordLatency(s: LuStats, ms: number): void {
  let i = 0;
  while (i < LATENCY_BUCKETS_MS.length && ms > LATENCY_BUCKETS_MS[i]!) i++;
  s.latency.counts[i]!++;
  s.latency.sumMs += ms;
  s.latency.count++;
}

export function cloneLuStats(s: LuStats): LuStats {
  return { ...s, latency: { ...s.latency, counts: [...s.latency.counts] } };
}
