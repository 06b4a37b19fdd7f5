/**
 * MAD (management datagram) layouts: the 16-byte common header, the 24-byte request IUs with a
 * buffer address, struct mad_adapter_info_data (148 bytes) and struct capabilities (92 bytes)
 * (viosrp.h; ibmvio.md §4). Pure codecs.
 */
import { Buffer } from 'node:buffer';
import { ADAPTER_INFO_LEN, CAPABILITIES_LIST_OFFSET, MAD_HEADER_LEN } from './constants.js';

export interface MadHeader {
  type: number;
  status: number;
  length: number;
  tag: Buffer;
}

export interface MadRequest extends MadHeader {
  /** IOBA of the data structure (ADAPTER_INFO, CAPABILITIES, ERROR_LOG, HOST_CONFIG, EMPTY_IU). */
  buffer?: bigint;
}

export function decodeMad(iu: Buffer): MadRequest | undefined {
  if (iu.length < MAD_HEADER_LEN) return undefined;
  const m: MadRequest = {
    type: iu.readUInt32BE(0),
    status: iu.readUInt16BE(4),
    length: iu.readUInt16BE(6),
    tag: Buffer.from(iu.subarray(8, 16)),
  };
  if (iu.length >= 24) m.buffer = iu.readBigUInt64BE(16);
  return m;
}

export function encodeMad(m: MadRequest): Buffer {
  const b = Buffer.alloc(m.buffer === undefined ? MAD_HEADER_LEN : 24);
  b.writeUInt32BE(m.type >>> 0, 0);
  b.writeUInt16BE(m.status & 0xffff, 4);
  b.writeUInt16BE(m.length & 0xffff, 6);
  m.tag.copy(b, 8, 0, 8);
  if (m.buffer !== undefined) b.writeBigUInt64BE(BigInt.asUintN(64, m.buffer), 16);
  return b;
}

export interface AdapterInfo {
  srpVersion: string;
  partitionName: string;
  partitionNumber: number;
  madVersion: number;
  osType: number;
  /** port_max_txu[0]: largest transfer in bytes (0 = client default). */
  maxTransfer: number;
}

/** NUL-padded ASCII; anything non-printable in guest-supplied names is replaced. */
function readAscii(b: Buffer, off: number, len: number): string {
  const raw = b.subarray(off, off + len);
  const end = raw.indexOf(0);
  return [...raw.subarray(0, end < 0 ? raw.length : end)]
    .map((c) => (c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '?'))
    .join('');
}

function writeAscii(b: Buffer, off: number, len: number, s: string): void {
  const src = Buffer.from(s, 'latin1');
  src.copy(b, off, 0, Math.min(src.length, len - 1));
}

/** Decodes up to 148 bytes (a shorter buffer leaves the missing fields zero). */
export function decodeAdapterInfo(raw: Buffer): AdapterInfo {
  const b = Buffer.alloc(ADAPTER_INFO_LEN);
  raw.copy(b, 0, 0, Math.min(raw.length, ADAPTER_INFO_LEN));
  return {
    srpVersion: readAscii(b, 0, 8),
    partitionName: readAscii(b, 8, 96),
    partitionNumber: b.readUInt32BE(104),
    madVersion: b.readUInt32BE(108),
    osType: b.readUInt32BE(112),
    maxTransfer: b.readUInt32BE(116),
  };
}

export function encodeAdapterInfo(a: AdapterInfo): Buffer {
  const b = Buffer.alloc(ADAPTER_INFO_LEN);
  writeAscii(b, 0, 8, a.srpVersion);
  writeAscii(b, 8, 96, a.partitionName);
  b.writeUInt32BE(a.partitionNumber >>> 0, 104);
  b.writeUInt32BE(a.madVersion >>> 0, 108);
  b.writeUInt32BE(a.osType >>> 0, 112);
  b.writeUInt32BE(a.maxTransfer >>> 0, 116);
  return b;
}

export interface CapabilityRecord {
  capType: number;
  length: number;
  serverSupport: number;
  /** Offset of the record inside the capabilities buffer. */
  offset: number;
}

export interface Capabilities {
  flags: number;
  name: string;
  loc: string;
  records: CapabilityRecord[];
}

/** Walks the capability list; stops at the first record whose length does not fit. */
export function decodeCapabilities(b: Buffer): Capabilities {
  const caps: Capabilities = {
    flags: b.length >= 4 ? b.readUInt32BE(0) : 0,
    name: b.length >= 36 ? readAscii(b, 4, 32) : '',
    loc: b.length >= 68 ? readAscii(b, 36, 32) : '',
    records: [],
  };
  let off = CAPABILITIES_LIST_OFFSET;
  while (off + 8 <= b.length && caps.records.length < 64) {
    const length = b.readUInt16BE(off + 4);
    if (length < 8 || off + length > b.length) break;
    caps.records.push({ capType: b.readUInt32BE(off), length, serverSupport: b.readUInt16BE(off + 6), offset: off });
    off += length;
  }
  return caps;
}

/** The client's request: migration record (12) and, with client_reserve, the reserve record (12). */
export function encodeClientCapabilities(opts: { flags: number; name: string; loc: string; reserve: boolean }): Buffer {
  const b = Buffer.alloc(opts.reserve ? 92 : 80);
  b.writeUInt32BE(opts.flags >>> 0, 0);
  writeAscii(b, 4, 32, opts.name);
  writeAscii(b, 36, 32, opts.loc);
  b.writeUInt32BE(1, 68); // CapType.MIGRATION
  b.writeUInt16BE(12, 72);
  b.writeUInt16BE(1, 74);
  b.writeUInt32BE(1, 76); // ecl
  if (opts.reserve) {
    b.writeUInt32BE(2, 80); // CapType.RESERVATION
    b.writeUInt16BE(12, 84);
    b.writeUInt16BE(1, 86);
    b.writeUInt32BE(1, 88); // CLIENT_RESERVE_SCSI_2
  }
  return b;
}

export { writeAscii as writeMadAscii };
