/**
 * SPC-4 commands that are not INQUIRY, mode or maintenance commands: TEST UNIT READY (6.47), REQUEST
 * SENSE (6.39), REPORT LUNS (6.33), and SBC-3's START STOP UNIT (5.25) and PREVENT ALLOW MEDIUM
 * REMOVAL (SPC-4 6.13) which manage the medium of removable LUs.
 */
import { Buffer } from 'node:buffer';
import { check, good, type CommandContext, type CommandSpec } from './command.js';
import { u32 } from './cdb.js';
import { encodeSamLun } from './lun-address.js';
import { sanitizeInProgress } from './sbc-sanitize.js';
import { buildSense, failure, invalidCdbField, type ScsiFailure } from './sense.js';

export const Opcode = {
  TEST_UNIT_READY: 0x00,
  REQUEST_SENSE: 0x03,
  START_STOP_UNIT: 0x1b,
  PREVENT_ALLOW_MEDIUM_REMOVAL: 0x1e,
  REPORT_LUNS: 0xa0,
} as const;

/** SPC-4 6.33 table 166 SELECT REPORT. */
const SelectReport = { ALL_LOGICAL_UNITS: 0x00, WELL_KNOWN_ONLY: 0x01, ALL: 0x02 } as const;

function requestSense(ctx: CommandContext) {
  const desc = (ctx.cdb[1]! & 0x01) !== 0;
  const alloc = ctx.cdb[4]!;
  let f: ScsiFailure;
  if (!ctx.lu) {
    f = failure('LOGICAL_UNIT_NOT_SUPPORTED');
  } else {
    const ua = ctx.nexus.unitAttentions(ctx.lun)?.take();
    if (ua) f = failure(ua);
    else if (ctx.lu.sanitize) f = sanitizeInProgress(ctx.lu);
    else if (ctx.lu.sanitizeFailed) f = failure('SANITIZE_COMMAND_FAILED');
    else if (ctx.lu.fault) f = failure(ctx.lu.fault);
    else if (!ctx.lu.mediumPresent) f = failure('MEDIUM_NOT_PRESENT');
    else f = failure('NO_ADDITIONAL_SENSE');
  }
  return ctx.dataIn(buildSense(f, desc ? 'descriptor' : 'fixed'), alloc);
}

function reportLuns(ctx: CommandContext) {
  const select = ctx.cdb[2]!;
  const alloc = u32(ctx.cdb, 6);
  if (select !== SelectReport.ALL_LOGICAL_UNITS && select !== SelectReport.WELL_KNOWN_ONLY && select !== SelectReport.ALL) {
    return check(invalidCdbField(2, 7));
  }
  // SPC-4 6.33: an allocation length below 16 is an error.
  if (alloc < 16) return check(invalidCdbField(6, 7));
  const encode = ctx.nexus.profile.lunEncoder ?? encodeSamLun;
  let luns = select === SelectReport.WELL_KNOWN_ONLY ? [] : ctx.nexus.lunNumbers();
  // SPC-4 6.33: LUN 0 is always reported, configured or not, so initiators can always find the target.
  if (select !== SelectReport.WELL_KNOWN_ONLY && !luns.includes(0)) luns = [0, ...luns];
  const data = Buffer.alloc(8 + 8 * luns.length);
  data.writeUInt32BE(8 * luns.length, 0);
  luns.forEach((n, i) => encode(n).copy(data, 8 + 8 * i, 0, 8));
  ctx.nexus.removeUnitAttention('REPORTED_LUNS_DATA_HAS_CHANGED');
  return ctx.dataIn(data, alloc);
}

function startStopUnit(ctx: CommandContext) {
  const lu = ctx.unit;
  const b4 = ctx.cdb[4]!;
  const powerCondition = b4 >> 4;
  const loej = (b4 & 0x02) !== 0;
  const start = (b4 & 0x01) !== 0;
  // SBC-3 5.25: with a POWER CONDITION other than START_VALID, START and LOEJ are ignored.
  if (powerCondition !== 0) return good();
  if (!loej) return good(); // stopping the spindle of a virtual disk changes nothing an initiator can see
  if (!lu.backstore.capabilities.removable) return check(invalidCdbField(4, 1));
  // SBC-3 5.25: while removal is prevented, neither ejecting nor loading is allowed.
  if (lu.preventers.size > 0) return check(failure('MEDIUM_REMOVAL_PREVENTED'));
  if (start) {
    lu.mediumPresent = true;
    return good();
  }
  lu.mediumPresent = false;
  return good();
}

function preventAllow(ctx: CommandContext) {
  const lu = ctx.unit;
  const prevent = ctx.cdb[4]! & 0x03;
  // Values 10b and 11b are obsolete (medium changer) in SPC-4 6.13 table 130.
  if (prevent > 1) return check(invalidCdbField(4, 1));
  if (prevent === 1) lu.preventers.add(ctx.nexus.id);
  else lu.preventers.delete(ctx.nexus.id);
  return good();
}

export const spcCommands: CommandSpec[] = [
  {
    name: 'TEST UNIT READY',
    opcode: Opcode.TEST_UNIT_READY,
    usage: [0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
    mediaAccess: true,
    cls: 'other',
    run: () => good(),
  },
  {
    name: 'REQUEST SENSE',
    opcode: Opcode.REQUEST_SENSE,
    usage: [0x03, 0x01, 0x00, 0x00, 0xff, 0x00],
    noUnitAttention: true,
    noLogicalUnit: true,
    cls: 'other',
    run: requestSense,
  },
  {
    name: 'START STOP UNIT',
    opcode: Opcode.START_STOP_UNIT,
    usage: [0x1b, 0x01, 0x00, 0x0f, 0xf7, 0x00],
    cls: 'other',
    timeoutSeconds: 60,
    run: startStopUnit,
  },
  {
    name: 'PREVENT ALLOW MEDIUM REMOVAL',
    opcode: Opcode.PREVENT_ALLOW_MEDIUM_REMOVAL,
    usage: [0x1e, 0x00, 0x00, 0x00, 0x03, 0x00],
    cls: 'other',
    run: preventAllow,
  },
  {
    name: 'REPORT LUNS',
    opcode: Opcode.REPORT_LUNS,
    usage: [0xa0, 0x00, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00],
    noUnitAttention: true,
    noLogicalUnit: true,
    cls: 'other',
    run: reportLuns,
  },
];
