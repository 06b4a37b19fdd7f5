/** INQUIRY (SPC-4 6.6): standard data with version descriptors, and the VPD pages of vpd.ts. */
import { Buffer } from 'node:buffer';
import { check, type CommandContext, type CommandSpec } from './command.js';
import { u16 } from './cdb.js';
import { asciiField } from './logical-unit.js';
import { failure, invalidCdbField } from './sense.js';
import { buildVpdPage } from './vpd.js';

export const INQUIRY = 0x12;

/** SPC-4 7.6.4 PROTOCOL IDENTIFIER → version descriptor of the transport standard (SPC-4 table 150). */
const TRANSPORT_VERSION: Record<number, number> = {
  0x4: 0x0940, // SRP
  0x5: 0x0960, // iSCSI
  0x6: 0x0c00, // SAS
};
const VERSION_SAM5 = 0x00a0;
const VERSION_SPC4 = 0x0460;
const VERSION_SBC3 = 0x04c0;

/** SPC-4 6.6.2: peripheral qualifier 011b, device type 1Fh — no logical unit at this LUN. */
const PQ_NOT_CONNECTED = 0x7f;
const STANDARD_LENGTH = 96;

function standardInquiry(ctx: CommandContext): Buffer {
  const b = Buffer.alloc(STANDARD_LENGTH);
  const lu = ctx.lu;
  const id = ctx.nexus.profile.inquiryIdentity;
  b[0] = lu ? 0x00 : PQ_NOT_CONNECTED;
  b[1] = lu?.backstore.capabilities.removable ? 0x80 : 0x00; // RMB
  b[2] = 0x06; // VERSION: SPC-4
  b[3] = 0x12; // HISUP=1, RESPONSE DATA FORMAT=2
  b[4] = STANDARD_LENGTH - 5;
  b[5] = 0x10 | 0x08; // TPGS=01b: implicit ALUA (REPORT TARGET PORT GROUPS); 3PC: EXTENDED COPY
  if (ctx.nexus.target.ports().length > 1) b[6] = 0x10; // MULTIP: reachable through several ports
  b[7] = 0x02; // CMDQUE
  asciiField(id?.vendor ?? lu?.vendor ?? ctx.services.vendor, 8).copy(b, 8);
  asciiField(id?.product ?? lu?.product ?? ctx.services.product, 16).copy(b, 16);
  asciiField(id?.revision ?? lu?.revision ?? '0001', 4).copy(b, 32);
  const versions = [VERSION_SAM5, VERSION_SPC4, VERSION_SBC3];
  const transport = TRANSPORT_VERSION[ctx.nexus.initiator.protocolId];
  if (transport !== undefined) versions.push(transport);
  versions.forEach((v, i) => b.writeUInt16BE(v, 58 + 2 * i));
  return b;
}

function inquiry(ctx: CommandContext) {
  const evpd = (ctx.cdb[1]! & 0x01) !== 0;
  const pageCode = ctx.cdb[2]!;
  const alloc = u16(ctx.cdb, 3);
  if (!evpd) {
    if (pageCode !== 0) return check(invalidCdbField(2, 7));
    return ctx.dataIn(standardInquiry(ctx), alloc);
  }
  if (!ctx.lu) return check(failure('LOGICAL_UNIT_NOT_SUPPORTED'));
  const page = buildVpdPage(ctx, ctx.lu, pageCode);
  if (!page) return check(invalidCdbField(2, 7));
  return ctx.dataIn(page, alloc);
}

export const inquiryCommands: CommandSpec[] = [
  {
    name: 'INQUIRY',
    opcode: INQUIRY,
    usage: [0x12, 0x01, 0xff, 0xff, 0xff, 0x00],
    noUnitAttention: true,
    noLogicalUnit: true,
    cls: 'other',
    run: inquiry,
  },
];
