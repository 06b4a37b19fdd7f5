/** MODE SENSE(6/10) and MODE SELECT(6/10) (SPC-4 6.9-6.12) over the pages of mode-pages.ts. */
import { Buffer } from 'node:buffer';
import { check, good, isFailure, type CommandContext, type CommandSpec } from './command.js';
import { u16 } from './cdb.js';
import { PageControl, parseModeSelectPages, selectPages } from './mode-pages.js';
import { failure, invalidCdbField, invalidParamField } from './sense.js';

export const Opcode = { MODE_SELECT_6: 0x15, MODE_SENSE_6: 0x1a, MODE_SELECT_10: 0x55, MODE_SENSE_10: 0x5a } as const;

/** DEVICE-SPECIFIC PARAMETER for direct access devices (SBC-3 6.4.2): WP and DPOFUA. */
const WP = 0x80;
const DPOFUA = 0x10;

function blockDescriptor(blocks: bigint, blockSize: number, long: boolean): Buffer {
  if (long) {
    const b = Buffer.alloc(16);
    b.writeBigUInt64BE(blocks, 0);
    b.writeUInt32BE(blockSize, 12);
    return b;
  }
  const b = Buffer.alloc(8);
  b.writeUInt32BE(blocks > 0xffffffffn ? 0xffffffff : Number(blocks), 0);
  b.writeUIntBE(blockSize, 5, 3);
  return b;
}

function modeSense(ctx: CommandContext, ten: boolean) {
  const lu = ctx.unit;
  const cdb = ctx.cdb;
  const dbd = (cdb[1]! & 0x08) !== 0;
  const llbaa = ten && (cdb[1]! & 0x10) !== 0;
  const pc = cdb[2]! >> 6;
  const pageCode = cdb[2]! & 0x3f;
  const subpage = cdb[3]!;
  const alloc = ten ? u16(cdb, 7) : cdb[4]!;
  if (pc === PageControl.SAVED) return check(failure('SAVING_PARAMETERS_NOT_SUPPORTED', { field: { inCdb: true, byte: 2, bit: 7 } }));
  const pages = selectPages(pageCode, subpage, pc, lu.mode, lu.backstore);
  if (!pages) return check(subpage !== 0 && subpage !== 0xff ? invalidCdbField(3, 7) : invalidCdbField(2, 5));
  const bd = dbd ? Buffer.alloc(0) : blockDescriptor(lu.capacityBlocks(), lu.blockSize, llbaa);
  const headerLen = ten ? 8 : 4;
  const body = Buffer.concat([bd, ...pages]);
  const data = Buffer.alloc(headerLen + body.length);
  const deviceSpecific = (lu.writeProtected() ? WP : 0) | DPOFUA;
  if (ten) {
    data.writeUInt16BE(data.length - 2, 0);
    data[3] = deviceSpecific;
    data[4] = llbaa && !dbd ? 0x01 : 0x00; // LONGLBA
    data.writeUInt16BE(bd.length, 6);
  } else {
    data[0] = Math.min(0xff, data.length - 1);
    data[2] = deviceSpecific;
    data[3] = bd.length;
  }
  body.copy(data, headerLen);
  return ctx.dataIn(data, alloc);
}

async function modeSelect(ctx: CommandContext, ten: boolean) {
  const lu = ctx.unit;
  const cdb = ctx.cdb;
  const pf = (cdb[1]! & 0x10) !== 0;
  const sp = (cdb[1]! & 0x01) !== 0;
  const length = ten ? u16(cdb, 7) : cdb[4]!;
  if (!pf) return check(invalidCdbField(1, 4)); // only SPC page format is implemented
  if (sp) return check(invalidCdbField(1, 0)); // no saved pages
  const params = await ctx.dataOut(length, 'parameters', ten ? 7 : 4);
  if (isFailure(params)) return check(params);
  if (length === 0) return good();
  const headerLen = ten ? 8 : 4;
  if (params.length < headerLen) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
  const bdLen = ten ? u16(params, 6) : params[3]!;
  const longLba = ten && (params[4]! & 0x01) !== 0;
  const bdSize = longLba ? 16 : 8;
  if (bdLen !== 0 && bdLen !== bdSize) return check(invalidParamField(ten ? 6 : 3));
  if (headerLen + bdLen > params.length) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
  if (bdLen) {
    // A block descriptor may restate the geometry but not change it.
    const bd = params.subarray(headerLen, headerLen + bdLen);
    const blockLen = longLba ? bd.readUInt32BE(12) : bd.readUIntBE(5, 3);
    if (blockLen !== lu.blockSize) return check(invalidParamField(headerLen + (longLba ? 12 : 5)));
  }
  const parsed = parseModeSelectPages(params, headerLen + bdLen, lu.mode, lu.backstore);
  if ('reason' in parsed) return check(parsed);
  if (parsed.changed) {
    lu.mode = parsed.state;
    // SPC-4 mode parameter rules: other I_T nexuses learn of the change through MODE PARAMETERS CHANGED.
    ctx.services.unitAttention(lu, 'MODE_PARAMETERS_CHANGED', ctx.nexus);
  }
  return good();
}

export const modeCommands: CommandSpec[] = [
  {
    name: 'MODE SELECT(6)',
    opcode: Opcode.MODE_SELECT_6,
    usage: [0x15, 0x11, 0x00, 0x00, 0xff, 0x00],
    cls: 'other',
    run: (ctx) => modeSelect(ctx, false),
  },
  {
    name: 'MODE SENSE(6)',
    opcode: Opcode.MODE_SENSE_6,
    usage: [0x1a, 0x08, 0xff, 0xff, 0xff, 0x00],
    cls: 'other',
    run: (ctx) => modeSense(ctx, false),
  },
  {
    name: 'MODE SELECT(10)',
    opcode: Opcode.MODE_SELECT_10,
    usage: [0x55, 0x11, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00],
    cls: 'other',
    run: (ctx) => modeSelect(ctx, true),
  },
  {
    name: 'MODE SENSE(10)',
    opcode: Opcode.MODE_SENSE_10,
    usage: [0x5a, 0x18, 0xff, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00],
    cls: 'other',
    run: (ctx) => modeSense(ctx, true),
  },
];
