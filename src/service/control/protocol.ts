/**
 * Control socket protocol: one JSON object per line in each direction.
 *   request:  {"id": 1, "op": "lun.create", "args": {...}}
 *   response: {"id": 1, "ok": true, "result": ...} | {"id": 1, "ok": false, "error": {"message": "...", "code": "..."}}
 * The socket is mode 0600 in the data directory, so only its owner (normally root) can manage vtgt.
 */

export const MAX_REQUEST_BYTES = 1024 * 1024;

export interface ControlRequest {
  id: number;
  op: string;
  args: Record<string, unknown>;
}

export type ErrorCode = 'usage' | 'not_found' | 'exists' | 'invalid' | 'failed' | 'busy';

export type ControlResponse =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: { message: string; code: ErrorCode } };

/** A failure the handler reports to the CLI (exit code 2 for `usage`, 1 otherwise). */
export class ControlError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'ControlError';
  }
}

export function parseRequest(line: string): ControlRequest | { error: string; id: number } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { error: 'request is not valid JSON', id: 0 };
  }
  if (!v || typeof v !== 'object' || Array.isArray(v)) return { error: 'request must be a JSON object', id: 0 };
  const o = v as Record<string, unknown>;
  const id = typeof o.id === 'number' && Number.isSafeInteger(o.id) ? o.id : 0;
  if (typeof o.op !== 'string' || !/^[a-z]+(\.[a-z]+(-[a-z]+)*)?$/.test(o.op)) return { error: 'request needs "op": "<noun>.<verb>"', id };
  const args = o.args === undefined ? {} : o.args;
  if (!args || typeof args !== 'object' || Array.isArray(args)) return { error: '"args" must be an object', id };
  return { id, op: o.op, args: args as Record<string, unknown> };
}

/** Typed access to request arguments; every problem is a `usage` ControlError naming the argument. */
export class Args {
  constructor(private readonly a: Record<string, unknown>) {}

  str(name: string): string {
    const v = this.optStr(name);
    if (v === undefined) throw new ControlError('usage', `missing argument "${name}"`);
    return v;
  }

  optStr(name: string): string | undefined {
    const v = this.a[name];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || v.length > 4096) throw new ControlError('usage', `argument "${name}" must be a string`);
    return v;
  }

  optInt(name: string, min: number, max: number): number | undefined {
    const v = this.a[name];
    if (v === undefined || v === null) return undefined;
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
      throw new ControlError('usage', `argument "${name}" must be an integer from ${min} to ${max}`);
    }
    return n;
  }

  int(name: string, min: number, max: number): number {
    const v = this.optInt(name, min, max);
    if (v === undefined) throw new ControlError('usage', `missing argument "${name}"`);
    return v;
  }

  bool(name: string): boolean {
    const v = this.a[name];
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') throw new ControlError('usage', `argument "${name}" must be true or false`);
    return v;
  }

  strList(name: string): string[] | undefined {
    const v = this.a[name];
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || v.length > 256 || v.some((x) => typeof x !== 'string')) {
      throw new ControlError('usage', `argument "${name}" must be a list of strings`);
    }
    return v as string[];
  }
}
