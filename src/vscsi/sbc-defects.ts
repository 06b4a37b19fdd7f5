/**
 * READ DEFECT DATA(10/12) (SBC-3 5.17, 5.18). A virtual disk has no grown or primary defects: the
 * lists asked for are reported valid and empty, in the format asked for.
 */
import { Buffer } from 'node:buffer';
import type { CommandContext, CommandSpec } from './command.js';
import { u16, u32 } from './cdb.js';

export const Opcode = { READ_DEFECT_DATA_10: 0x37, READ_DEFECT_DATA_12: 0xb7 } as const;

function readDefectData(ctx: CommandContext, twelve: boolean) {
  const flags = twelve ? ctx.cdb[1]! : ctx.cdb[2]!;
  const alloc = twelve ? u32(ctx.cdb, 6) : u16(ctx.cdb, 7);
  // REQ_PLIST/REQ_GLIST become PLISTV/GLISTV (same bit positions) and the format is echoed.
  const data = Buffer.alloc(twelve ? 8 : 4);
  data[1] = flags & 0x1f;
  return ctx.dataIn(data, alloc);
}

export const sbcDefectCommands: CommandSpec[] = [
  {
    name: 'READ DEFECT DATA(10)',
    opcode: Opcode.READ_DEFECT_DATA_10,
    usage: [0x37, 0x00, 0x1f, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00],
    cls: 'other',
    run: (ctx) => readDefectData(ctx, false),
  },
  {
    name: 'READ DEFECT DATA(12)',
    opcode: Opcode.READ_DEFECT_DATA_12,
    usage: [0xb7, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00],
    cls: 'other',
    run: (ctx) => readDefectData(ctx, true),
  },
];
