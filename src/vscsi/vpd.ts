/**
 * Vital product data pages (SPC-4 7.8, SBC-3 6.5): supported pages, unit serial number, device
 * identification, extended INQUIRY data, block limits, block device characteristics and logical
 * block provisioning.
 */
import { Buffer } from 'node:buffer';
import { blockLimits } from './block-limits.js';
import type { CommandContext } from './command.js';
import type { LogicalUnit } from './logical-unit.js';
import type { NexusImpl } from './nexus.js';

/** SPC-4 7.8.1 / SBC-3 6.5.1 page codes. */
export const VpdPage = {
  SUPPORTED_PAGES: 0x00,
  UNIT_SERIAL_NUMBER: 0x80,
  DEVICE_IDENTIFICATION: 0x83,
  EXTENDED_INQUIRY_DATA: 0x86,
  BLOCK_LIMITS: 0xb0,
  BLOCK_DEVICE_CHARACTERISTICS: 0xb1,
  LOGICAL_BLOCK_PROVISIONING: 0xb2,
} as const;

/** SPC-4 7.8.6.1 table 462/463: code sets, associations, designator types. */
const CodeSet = { BINARY: 1, ASCII: 2, UTF8: 3 } as const;
const Association = { LOGICAL_UNIT: 0, TARGET_PORT: 1, TARGET_DEVICE: 2 } as const;
const DesignatorType = { T10_VENDOR_ID: 1, NAA: 3, RELATIVE_TARGET_PORT: 4, TARGET_PORT_GROUP: 5, SCSI_NAME_STRING: 8 } as const;

const PERIPHERAL_DIRECT_ACCESS = 0x00;

function vpdPage(code: number, body: Buffer): Buffer {
  const b = Buffer.alloc(4 + body.length);
  b[0] = PERIPHERAL_DIRECT_ACCESS;
  b[1] = code;
  b.writeUInt16BE(body.length, 2);
  body.copy(b, 4);
  return b;
}

function designator(
  protocolId: number,
  codeSet: number,
  association: number,
  type: number,
  value: Buffer,
): Buffer {
  const d = Buffer.alloc(4 + value.length);
  // PIV=1 only for target port / device associations, where PROTOCOL IDENTIFIER is meaningful.
  const piv = association !== Association.LOGICAL_UNIT;
  d[0] = ((piv ? protocolId & 0x0f : 0) << 4) | codeSet;
  d[1] = (piv ? 0x80 : 0) | (association << 4) | type;
  d[3] = value.length;
  value.copy(d, 4);
  return d;
}

function deviceIdentification(lu: LogicalUnit, nexus: NexusImpl, vendor: string): Buffer {
  const protocolId = nexus.initiator.protocolId;
  const naa = Buffer.alloc(16);
  naa.writeBigUInt64BE(lu.naaId >> 64n, 0);
  naa.writeBigUInt64BE(lu.naaId & 0xffffffffffffffffn, 8);
  const t10 = Buffer.concat([Buffer.from(vendor.padEnd(8, ' ').slice(0, 8), 'ascii'), Buffer.from(lu.serial, 'ascii')]);
  const rtp = Buffer.alloc(4);
  rtp.writeUInt16BE(nexus.targetPort.relativeId, 2);
  const tpg = Buffer.alloc(4);
  tpg.writeUInt16BE(nexus.targetPort.group.id, 2);
  // SCSI name string: null-terminated, padded to a multiple of 4 (SPC-4 7.8.6.11).
  const nameBytes = Buffer.from(nexus.target.name, 'utf8');
  const name = Buffer.alloc(Math.min(252, Math.ceil((nameBytes.length + 1) / 4) * 4));
  nameBytes.copy(name, 0, 0, name.length - 1);
  return Buffer.concat([
    designator(protocolId, CodeSet.BINARY, Association.LOGICAL_UNIT, DesignatorType.NAA, naa),
    designator(protocolId, CodeSet.ASCII, Association.LOGICAL_UNIT, DesignatorType.T10_VENDOR_ID, t10),
    designator(protocolId, CodeSet.BINARY, Association.TARGET_PORT, DesignatorType.RELATIVE_TARGET_PORT, rtp),
    designator(protocolId, CodeSet.BINARY, Association.TARGET_PORT, DesignatorType.TARGET_PORT_GROUP, tpg),
    designator(protocolId, CodeSet.UTF8, Association.TARGET_DEVICE, DesignatorType.SCSI_NAME_STRING, name),
  ]);
}

function extendedInquiry(lu: LogicalUnit): Buffer {
  const b = Buffer.alloc(0x3c);
  b[1] = 0x07; // HEADSUP, ORDSUP, SIMPSUP: all three task attributes are honoured
  b[2] = lu.backstore.cacheMode === 'writeback' ? 0x01 : 0x00; // V_SUP: there is a volatile cache
  b[3] = 0x01; // LUICLR: UAs are cleared per I_T_L nexus
  return b;
}

function blockLimitsPage(lu: LogicalUnit): Buffer {
  const l = blockLimits(lu);
  const b = Buffer.alloc(0x3c);
  b[0] = 0x00; // WSNZ=0: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 writes through the last LBA
  b[1] = l.maxCompareAndWriteBlocks;
  b.writeUInt16BE(l.optimalGranularityBlocks, 2);
  b.writeUInt32BE(l.maxTransferBlocks, 4);
  b.writeUInt32BE(l.maxTransferBlocks, 8); // OPTIMAL TRANSFER LENGTH
  b.writeUInt32BE(0, 12); // MAXIMUM PREFETCH LENGTH: no cache to prefetch into
  b.writeUInt32BE(l.maxUnmapLbaCount, 16);
  b.writeUInt32BE(l.maxUnmapDescriptors, 20);
  b.writeUInt32BE(l.optimalUnmapGranularity, 24);
  b.writeBigUInt64BE(BigInt(l.maxWriteSameBlocks), 32);
  // SBC-4 6.6.4 bytes 44-63 (body offset 40-59): WRITE ATOMIC(16) limits; atomic boundaries unsupported (0).
  b.writeUInt32BE(l.maxAtomicTransferBlocks, 40);
  b.writeUInt32BE(l.atomicAlignment, 44);
  b.writeUInt32BE(l.atomicGranularity, 48);
  return b;
}

function blockDeviceCharacteristics(): Buffer {
  const b = Buffer.alloc(0x3c);
  b.writeUInt16BE(0x0001, 0); // MEDIUM ROTATION RATE: non-rotating medium
  // WABEREQ 01b: a read after SANITIZE BLOCK ERASE succeeds (zeroes); WACEREQ 00b: no CRYPTOGRAPHIC ERASE.
  b[3] = 0x40;
  return b;
}

function logicalBlockProvisioning(lu: LogicalUnit): Buffer {
  const caps = lu.backstore.capabilities;
  const b = Buffer.alloc(4);
  let flags = 0;
  if (caps.discard) flags |= 0x80 | 0x40 | 0x20; // LBPU, LBPWS, LBPWS10
  if (caps.discard && caps.discardZeroes) flags |= 0x04; // LBPRZ
  b[1] = flags;
  b[2] = caps.thinProvisioned ? 0x02 : 0x00; // PROVISIONING TYPE: thin or full
  return b;
}

const PAGES = [
  VpdPage.SUPPORTED_PAGES,
  VpdPage.UNIT_SERIAL_NUMBER,
  VpdPage.DEVICE_IDENTIFICATION,
  VpdPage.EXTENDED_INQUIRY_DATA,
  VpdPage.BLOCK_LIMITS,
  VpdPage.BLOCK_DEVICE_CHARACTERISTICS,
  VpdPage.LOGICAL_BLOCK_PROVISIONING,
];

/** The VPD page, or undefined for a page we do not have. */
export function buildVpdPage(ctx: CommandContext, lu: LogicalUnit, code: number): Buffer | undefined {
  const vendor = ctx.nexus.profile.inquiryIdentity?.vendor ?? lu.vendor;
  switch (code) {
    case VpdPage.SUPPORTED_PAGES:
      return vpdPage(code, Buffer.from(PAGES));
    case VpdPage.UNIT_SERIAL_NUMBER:
      return vpdPage(code, Buffer.from(lu.serial, 'ascii'));
    case VpdPage.DEVICE_IDENTIFICATION:
      return vpdPage(code, deviceIdentification(lu, ctx.nexus, vendor));
    case VpdPage.EXTENDED_INQUIRY_DATA:
      return vpdPage(code, extendedInquiry(lu));
    case VpdPage.BLOCK_LIMITS:
      return vpdPage(code, blockLimitsPage(lu));
    case VpdPage.BLOCK_DEVICE_CHARACTERISTICS:
      return vpdPage(code, blockDeviceCharacteristics());
    case VpdPage.LOGICAL_BLOCK_PROVISIONING:
      return vpdPage(code, logicalBlockProvisioning(lu));
    default:
      return undefined;
  }
}
