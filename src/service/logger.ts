/**
 * Service logging: pino JSON lines on stderr (stdout carries the few lines scripts parse, such as
 * `vtgt: listening on ...`). On a terminal the same records are rendered as short readable lines.
 */
import { pino, destination, stdSerializers, type Logger, type DestinationStream, type Level } from 'pino';

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const OMIT = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'component']);

/** Render one pino JSON record as `HH:MM:SS LEVEL [component] message key=value ...`. */
export function formatRecord(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const t = typeof rec.time === 'number' ? new Date(rec.time).toISOString().slice(11, 19) : '';
  const level = LEVEL_NAMES[rec.level as number] ?? String(rec.level);
  const comp = typeof rec.component === 'string' ? ` [${rec.component}]` : '';
  const extras = Object.entries(rec)
    .filter(([k]) => !OMIT.has(k))
    .map(([k, v]) => {
      if (k === 'err' && v && typeof v === 'object') return `err=${JSON.stringify((v as { message?: string }).message ?? v)}`;
      return `${k}=${typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v)}`;
    });
  return `${t} ${level.padEnd(5)}${comp} ${String(rec.msg ?? '')}${extras.length ? `  ${extras.join(' ')}` : ''}\n`;
}

function prettyStream(out: NodeJS.WriteStream): DestinationStream {
  return {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line) out.write(formatRecord(line));
    },
  };
}

export interface LoggerOptions {
  level?: Level;
  /** Force readable output on/off; default: readable when stderr is a terminal. */
  pretty?: boolean;
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const pretty = opts.pretty ?? Boolean(process.stderr.isTTY);
  const dest = opts.destination ?? (pretty ? prettyStream(process.stderr) : destination({ fd: 2, sync: true }));
  return pino(
    {
      level: opts.level ?? 'info',
      base: { pid: process.pid },
      // Secrets never reach the log even if a caller passes a whole account or spec object.
      redact: { paths: ['secret', '*.secret', 'chap.secret', 'mutualChap.secret', '*.chap.secret', '*.mutualChap.secret'], censor: '[redacted]' },
      serializers: { err: stdSerializers.err },
    },
    dest,
  );
}
