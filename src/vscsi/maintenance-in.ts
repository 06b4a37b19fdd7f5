/**
 * MAINTENANCE IN (A3h) service actions: REPORT TARGET PORT GROUPS (6.37), REPORT SUPPORTED
 * OPERATION CODES (6.35) and REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS (6.36).
 */
import { Buffer } from 'node:buffer';
import { check, type CommandContext, type CommandSpec } from './command.js';
import { u16, u32 } from './cdb.js';
import { allCommands, hasServiceActions, lookupByOpcode } from './opcodes.js';
import { invalidCdbField } from './sense.js';

export const MAINTENANCE_IN = 0xa3;
/** SPC-4 table "MAINTENANCE IN service actions". */
export const MaintenanceIn = {
  REPORT_TARGET_PORT_GROUPS: 0x0a,
  REPORT_SUPPORTED_OPERATION_CODES: 0x0c,
  REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS: 0x0d,
} as const;

/** SPC-4 6.35.1 table 142 REPORTING OPTIONS. */
const ReportingOptions = { ALL: 0, ONE_NO_SA: 1, ONE_WITH_SA: 2, ONE_EITHER: 3 } as const;

const DEFAULT_TIMEOUT_SECONDS = 30;

function timeoutsDescriptor(spec: CommandSpec): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(0x0a, 0);
  const t = spec.timeoutSeconds ?? DEFAULT_TIMEOUT_SECONDS;
  b.writeUInt32BE(Math.max(1, Math.floor(t / 3)), 4); // NOMINAL COMMAND PROCESSING TIMEOUT
  b.writeUInt32BE(t, 8); // RECOMMENDED COMMAND TIMEOUT
  return b;
}

/** CDB usage data as reported: byte 0 the opcode, byte 1 carries the service action for SA commands. */
export function usageData(spec: CommandSpec): Buffer {
  const u = Buffer.from(spec.usage);
  u[0] = spec.opcode;
  if (spec.serviceAction !== undefined) u[1] = (u[1]! & 0xe0) | spec.serviceAction;
  return u;
}

function reportSupportedOperationCodes(ctx: CommandContext) {
  const cdb = ctx.cdb;
  const rctd = (cdb[2]! & 0x80) !== 0;
  const options = cdb[2]! & 0x07;
  const opcode = cdb[3]!;
  const sa = u16(cdb, 4);
  const alloc = u32(cdb, 6);
  if (options === ReportingOptions.ALL) {
    const descs = allCommands().map((spec) => {
      const d = Buffer.alloc(8);
      d[0] = spec.opcode;
      d.writeUInt16BE(spec.serviceAction ?? 0, 2);
      d[5] = (rctd ? 0x02 : 0) | (spec.serviceAction !== undefined ? 0x01 : 0); // CTDP, SERVACTV
      d.writeUInt16BE(spec.usage.length, 6);
      return rctd ? Buffer.concat([d, timeoutsDescriptor(spec)]) : d;
    });
    const body = Buffer.concat(descs);
    const data = Buffer.alloc(4 + body.length);
    data.writeUInt32BE(body.length, 0);
    body.copy(data, 4);
    return ctx.dataIn(data, alloc);
  }
  let spec: CommandSpec | undefined;
  if (options === ReportingOptions.ONE_NO_SA) {
    if (hasServiceActions(opcode)) return check(invalidCdbField(2, 2));
    if (sa !== 0) return check(invalidCdbField(4, 7));
    spec = lookupByOpcode(opcode);
  } else if (options === ReportingOptions.ONE_WITH_SA) {
    if (!hasServiceActions(opcode) && lookupByOpcode(opcode)) return check(invalidCdbField(2, 2));
    spec = lookupByOpcode(opcode, sa);
  } else if (options === ReportingOptions.ONE_EITHER) {
    spec = hasServiceActions(opcode) ? lookupByOpcode(opcode, sa) : sa === 0 ? lookupByOpcode(opcode) : undefined;
  } else {
    return check(invalidCdbField(2, 2));
  }
  if (!spec) {
    const data = Buffer.alloc(4);
    data[1] = 0x01; // SUPPORT 001b: not supported
    return ctx.dataIn(data, alloc);
  }
  const usage = usageData(spec);
  const head = Buffer.alloc(4);
  head[1] = (rctd ? 0x80 : 0) | 0x03; // CTDP, SUPPORT 011b: supported as the standard says
  head.writeUInt16BE(usage.length, 2);
  const parts = [head, usage];
  if (rctd) parts.push(timeoutsDescriptor(spec));
  return ctx.dataIn(Buffer.concat(parts), alloc);
}

function reportSupportedTmf(ctx: CommandContext) {
  const repd = (ctx.cdb[2]! & 0x80) !== 0;
  const alloc = u32(ctx.cdb, 6);
  const data = Buffer.alloc(repd ? 16 : 4);
  // ATS, ATSS, CTSS, LURS, QTS, TRS (no CLEAR ACA, no WAKEUP)
  data[0] = 0x80 | 0x40 | 0x10 | 0x08 | 0x04 | 0x02;
  data[1] = 0x04 | 0x02 | 0x01; // QAES, QTSS, ITNRS
  if (repd) data[3] = 0x0c;
  return ctx.dataIn(data, alloc);
}

/** SPC-4 6.37 table 150: supported asymmetric access states (T, O, U, S, AN, AO). */
const SUPPORTED_STATES = 0x80 | 0x40 | 0x08 | 0x04 | 0x02 | 0x01;

function reportTargetPortGroups(ctx: CommandContext) {
  const format = ctx.cdb[1]! >> 5;
  const alloc = u32(ctx.cdb, 6);
  if (format > 1) return check(invalidCdbField(1, 7));
  const descs = ctx.nexus.target.portGroups.map((g) => {
    const d = Buffer.alloc(8 + 4 * g.ports.length);
    d[0] = (g.preferred ? 0x80 : 0) | g.state;
    d[1] = SUPPORTED_STATES;
    d.writeUInt16BE(g.id, 2);
    d[7] = Math.min(255, g.ports.length);
    g.ports.slice(0, 255).forEach((p, i) => d.writeUInt16BE(p.relativeId, 8 + 4 * i + 2));
    return d;
  });
  const body = Buffer.concat(descs);
  const headerLen = format === 1 ? 8 : 4;
  const data = Buffer.alloc(headerLen + body.length);
  data.writeUInt32BE(data.length - 4, 0);
  if (format === 1) data[4] = 0x10; // FORMAT TYPE 001b: extended header; implicit transition time 0
  body.copy(data, headerLen);
  return ctx.dataIn(data, alloc);
}

const ALLOC_AT_6 = [0xff, 0xff, 0xff, 0xff];

export const maintenanceCommands: CommandSpec[] = [
  {
    name: 'REPORT TARGET PORT GROUPS',
    opcode: MAINTENANCE_IN,
    serviceAction: MaintenanceIn.REPORT_TARGET_PORT_GROUPS,
    usage: [0xa3, 0xff, 0x00, 0x00, 0x00, 0x00, ...ALLOC_AT_6, 0x00, 0x00],
    cls: 'other',
    run: reportTargetPortGroups,
  },
  {
    name: 'REPORT SUPPORTED OPERATION CODES',
    opcode: MAINTENANCE_IN,
    serviceAction: MaintenanceIn.REPORT_SUPPORTED_OPERATION_CODES,
    usage: [0xa3, 0x1f, 0x87, 0xff, 0xff, 0xff, ...ALLOC_AT_6, 0x00, 0x00],
    cls: 'other',
    run: reportSupportedOperationCodes,
  },
  {
    name: 'REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS',
    opcode: MAINTENANCE_IN,
    serviceAction: MaintenanceIn.REPORT_SUPPORTED_TASK_MANAGEMENT_FUNCTIONS,
    usage: [0xa3, 0x1f, 0x80, 0x00, 0x00, 0x00, ...ALLOC_AT_6, 0x00, 0x00],
    cls: 'other',
    run: reportSupportedTmf,
  },
];
