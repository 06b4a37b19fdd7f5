/**
 * The opcode table: every command the core implements, looked up by operation code and, for
 * commands with service actions, by the SERVICE ACTION field (byte 1 bits 4-0, SPC-4 4.2.5.1).
 * CDB validation is driven by each command's CDB usage data, the same bitmap REPORT SUPPORTED
 * OPERATION CODES reports, so what we check and what we advertise cannot drift apart.
 */
import type { CommandSpec } from './command.js';
import { failure, invalidCdbField, type ScsiFailure } from './sense.js';
import { spcCommands } from './spc.js';
import { inquiryCommands } from './inquiry.js';
import { modeCommands } from './mode-commands.js';
import { sbcReadWriteCommands } from './sbc-read-write.js';
import { sbcCommands } from './sbc.js';
import { sbcUnmapCommands } from './sbc-unmap.js';
import { sbcCompareCommands } from './sbc-compare.js';
import { sbcAtomicCommands } from './sbc-atomic.js';
import { sbcSanitizeCommands } from './sbc-sanitize.js';
import { sbcDefectCommands } from './sbc-defects.js';
import { extendedCopyCommands } from './extended-copy.js';
import { maintenanceCommands } from './maintenance-in.js';
import { reservationCommands } from './reservations.js';

let table: Map<number, CommandSpec | Map<number, CommandSpec>> | undefined;

/**
 * The spec with every field present, in one order: the handlers' spec literals each leave out a
 * different set of optional fields, so V8 gives them different shapes, and the nexus's reads of
 * `spec.run`, `spec.usage`, `spec.mediaAccess` on every command would see several shapes at once
 * (polymorphic loads, BENCHMARKS.md section 27). One shape keeps them monomorphic.
 */
function uniformSpec(s: CommandSpec): CommandSpec {
  return {
    name: s.name,
    opcode: s.opcode,
    serviceAction: s.serviceAction,
    usage: s.usage,
    noUnitAttention: s.noUnitAttention,
    noLogicalUnit: s.noLogicalUnit,
    mediaAccess: s.mediaAccess,
    sanitizeFailureAllowed: s.sanitizeFailureAllowed,
    timeoutSeconds: s.timeoutSeconds,
    cls: s.cls,
    run: s.run,
  };
}

function build(): Map<number, CommandSpec | Map<number, CommandSpec>> {
  const t = new Map<number, CommandSpec | Map<number, CommandSpec>>();
  const all = [
    ...spcCommands,
    ...inquiryCommands,
    ...modeCommands,
    ...sbcReadWriteCommands,
    ...sbcCommands,
    ...sbcUnmapCommands,
    ...sbcCompareCommands,
    ...sbcAtomicCommands,
    ...sbcSanitizeCommands,
    ...sbcDefectCommands,
    ...extendedCopyCommands,
    ...maintenanceCommands,
    ...reservationCommands,
  ];
  for (const raw of all) {
    const spec = uniformSpec(raw);
    if (spec.serviceAction === undefined) {
      if (t.has(spec.opcode)) throw new Error(`duplicate opcode 0x${spec.opcode.toString(16)}`);
      t.set(spec.opcode, spec);
    } else {
      let m = t.get(spec.opcode);
      if (!m) {
        m = new Map();
        t.set(spec.opcode, m);
      }
      if (!(m instanceof Map)) throw new Error(`opcode 0x${spec.opcode.toString(16)} mixes service actions`);
      m.set(spec.serviceAction, spec);
    }
  }
  return t;
}

export function commandTable(): Map<number, CommandSpec | Map<number, CommandSpec>> {
  table ??= build();
  return table;
}

/** Every implemented command, sorted by opcode and service action. */
export function allCommands(): CommandSpec[] {
  const out: CommandSpec[] = [];
  for (const v of commandTable().values()) {
    if (v instanceof Map) out.push(...v.values());
    else out.push(v);
  }
  return out.sort((a, b) => a.opcode - b.opcode || (a.serviceAction ?? 0) - (b.serviceAction ?? 0));
}

export function hasServiceActions(opcode: number): boolean {
  return commandTable().get(opcode) instanceof Map;
}

/** The command's spec, or why there is none (a failure has a `reason`, a spec never has). */
export function lookupCommand(cdb: Buffer, length = cdb.length): CommandSpec | ScsiFailure {
  const opcode = cdb[0]!;
  const entry = commandTable().get(opcode);
  if (!entry) return failure('INVALID_COMMAND_OPERATION_CODE', { field: { inCdb: true, byte: 0 } });
  if (!(entry instanceof Map)) return entry;
  if (length < 2) return invalidCdbField(1, 4);
  const spec = entry.get(cdb[1]! & 0x1f);
  return spec ?? invalidCdbField(1, 4);
}

export const isCommandSpec = (x: CommandSpec | ScsiFailure): x is CommandSpec => 'run' in x;

export function lookupByOpcode(opcode: number, serviceAction?: number): CommandSpec | undefined {
  const entry = commandTable().get(opcode);
  if (!entry) return undefined;
  if (entry instanceof Map) return serviceAction === undefined ? undefined : entry.get(serviceAction);
  return serviceAction === undefined ? entry : undefined;
}

/**
 * Check CDB length and reserved bits against the usage data; the CONTROL byte's NACA and LINK too.
 * `length`: the CDB's length when `cdb` is a larger buffer holding it at its start.
 */
export function validateCdb(spec: CommandSpec, cdb: Buffer, length = cdb.length): ScsiFailure | undefined {
  const len = spec.usage.length;
  if (length < len) return failure('INVALID_FIELD_IN_CDB', { field: { inCdb: true, byte: 0 } });
  for (let i = 1; i < len; i++) {
    const bad = cdb[i]! & ~spec.usage[i]! & 0xff;
    if (bad) return invalidCdbField(i, 31 - Math.clz32(bad));
  }
  return undefined;
}
