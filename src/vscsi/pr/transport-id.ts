/**
 * TransportIDs (SPC-4 7.6.4): how PERSISTENT RESERVE OUT names initiator ports (SPEC_I_PT, REGISTER AND
 * MOVE) and how READ FULL STATUS reports them. Parsing never throws: hostile parameter data yields a
 * typed error with the offset of the offending byte.
 */
import { Buffer } from 'node:buffer';
import type { InitiatorPortId } from '../fabric.js';
import { ProtocolId } from './constants.js';

/** An initiator port as reservations compare it. `portSuffix: null` = every port of that initiator device. */
export interface PortIdentity {
  protocolId: number;
  /** Normalised device name (iSCSI: lower-case iSCSI name; others: hex of the TransportID body). */
  name: string;
  /** iSCSI: `,i,0x<12 hex digits>`; others: ''. null only for iSCSI TransportIDs of format 00b. */
  portSuffix: string | null;
}

export type TransportIdParse =
  | { ok: true; identity: PortIdentity; transportId: Buffer; length: number }
  | { ok: false; errorOffset: number; why: 'truncated' | 'unsupported-protocol' | 'bad-format' };

/** SPC-4 7.6.4.6: iSCSI name, optionally followed by this separator and the ISID in hex. */
const ISCSI_ISID_SEPARATOR = ',i,0x';
/** RFC 3720 3.2.6.1: an iSCSI name is at most 223 bytes. */
const ISCSI_NAME_MAX = 223;
/** Protocols whose TransportID is a fixed 24-byte block (SPC-4 7.6.4.2 - 7.6.4.8). */
const FIXED_24: ReadonlySet<number> = new Set([
  ProtocolId.FCP,
  ProtocolId.SPI,
  ProtocolId.IEEE_1394,
  ProtocolId.SRP,
  ProtocolId.SAS,
  ProtocolId.SOP,
]);

/** `,i,0x0000ABcd` and `,i,0xabcd` name the same ISID; compare a canonical form. */
export function normaliseIsidSuffix(suffix: string): string {
  const m = /^,i,0x([0-9a-f]{1,12})$/i.exec(suffix);
  if (!m) return suffix.toLowerCase();
  return ISCSI_ISID_SEPARATOR + m[1]!.toLowerCase().padStart(12, '0');
}

/** The identity of an initiator port as the fabric describes it. */
export function identityOf(initiator: InitiatorPortId): PortIdentity {
  if (initiator.protocolId === ProtocolId.ISCSI) {
    return {
      protocolId: ProtocolId.ISCSI,
      name: initiator.name.toLowerCase(),
      portSuffix: initiator.portSuffix === '' ? '' : normaliseIsidSuffix(initiator.portSuffix),
    };
  }
  if (FIXED_24.has(initiator.protocolId) && initiator.transportId.length >= 24) {
    return {
      protocolId: initiator.protocolId,
      name: initiator.transportId.subarray(1, 24).toString('hex'),
      portSuffix: '',
    };
  }
  // A fabric without a well-formed TransportID: fall back to its own naming (never matched by a
  // TransportID from the wire, but still a stable identity for its own registrations).
  return {
    protocolId: initiator.protocolId,
    name: `${initiator.name.toLowerCase()}/${initiator.portSuffix.toLowerCase()}`,
    portSuffix: '',
  };
}

/** True when a registration made for `reg` covers the port `port`. */
export function identityCovers(reg: PortIdentity, port: PortIdentity): boolean {
  if (reg.protocolId !== port.protocolId || reg.name !== port.name) return false;
  return reg.portSuffix === null || reg.portSuffix === port.portSuffix;
}

export function sameIdentity(a: PortIdentity, b: PortIdentity): boolean {
  return a.protocolId === b.protocolId && a.name === b.name && a.portSuffix === b.portSuffix;
}

/** Build the TransportID READ FULL STATUS reports for an identity (iSCSI: format 01b when an ISID is known). */
export function buildTransportId(identity: PortIdentity, fallback?: Buffer): Buffer {
  if (identity.protocolId === ProtocolId.ISCSI) {
    const withIsid = identity.portSuffix !== null && identity.portSuffix !== '';
    const text = withIsid ? identity.name + identity.portSuffix : identity.name;
    const body = Buffer.from(text, 'utf8');
    // NUL terminator, then pad to a multiple of four; SPC-4 requires at least 24 bytes in all.
    const total = Math.max(24, (4 + body.length + 1 + 3) & ~3);
    const b = Buffer.alloc(total);
    b[0] = (withIsid ? 0x40 : 0x00) | ProtocolId.ISCSI;
    b.writeUInt16BE(total - 4, 2);
    body.copy(b, 4);
    return b;
  }
  if (fallback && fallback.length >= 24) {
    const b = Buffer.from(fallback.subarray(0, 24));
    b[0] = identity.protocolId & 0x0f;
    return b;
  }
  if (FIXED_24.has(identity.protocolId) && /^[0-9a-f]{46}$/.test(identity.name)) {
    const b = Buffer.alloc(24);
    b[0] = identity.protocolId;
    Buffer.from(identity.name, 'hex').copy(b, 1);
    return b;
  }
  const b = Buffer.alloc(24);
  b[0] = identity.protocolId & 0x0f;
  return b;
}

/**
 * Parse one TransportID at `offset` of `buf`, not reading at or past `end`. Offsets in errors are
 * relative to `buf` so callers can put them straight into a field pointer.
 */
export function parseTransportId(buf: Buffer, offset: number, end: number): TransportIdParse {
  if (offset + 4 > end) return { ok: false, errorOffset: offset, why: 'truncated' };
  const format = (buf[offset]! >> 6) & 0x3;
  const protocolId = buf[offset]! & 0x0f;
  if (protocolId === ProtocolId.ISCSI) {
    if (format > 1) return { ok: false, errorOffset: offset, why: 'bad-format' };
    const additional = buf.readUInt16BE(offset + 2);
    const length = 4 + additional;
    if (offset + length > end) return { ok: false, errorOffset: offset + 2, why: 'truncated' };
    const body = buf.subarray(offset + 4, offset + length);
    const nul = body.indexOf(0);
    if (nul <= 0) return { ok: false, errorOffset: offset + 4, why: 'bad-format' };
    const text = body.subarray(0, nul).toString('utf8');
    const sep = text.toLowerCase().indexOf(ISCSI_ISID_SEPARATOR);
    let name: string;
    let portSuffix: string | null;
    if (format === 1) {
      if (sep <= 0) return { ok: false, errorOffset: offset + 4, why: 'bad-format' };
      name = text.slice(0, sep);
      const isid = text.slice(sep + ISCSI_ISID_SEPARATOR.length);
      if (!/^[0-9a-f]{1,12}$/i.test(isid)) {
        return { ok: false, errorOffset: offset + 4 + Buffer.byteLength(text.slice(0, sep)), why: 'bad-format' };
      }
      portSuffix = normaliseIsidSuffix(ISCSI_ISID_SEPARATOR + isid);
    } else {
      if (sep >= 0) return { ok: false, errorOffset: offset + 4, why: 'bad-format' };
      name = text;
      portSuffix = null;
    }
    if (name.length === 0 || Buffer.byteLength(name) > ISCSI_NAME_MAX || /[\s\0,]/.test(name)) {
      return { ok: false, errorOffset: offset + 4, why: 'bad-format' };
    }
    const identity: PortIdentity = { protocolId, name: name.toLowerCase(), portSuffix };
    return { ok: true, identity, transportId: buildTransportId(identity), length };
  }
  if (!FIXED_24.has(protocolId)) return { ok: false, errorOffset: offset, why: 'unsupported-protocol' };
  if (format !== 0) return { ok: false, errorOffset: offset, why: 'bad-format' };
  if (offset + 24 > end) return { ok: false, errorOffset: offset, why: 'truncated' };
  const transportId = Buffer.from(buf.subarray(offset, offset + 24));
  return {
    ok: true,
    identity: { protocolId, name: transportId.subarray(1, 24).toString('hex'), portSuffix: '' },
    transportId,
    length: 24,
  };
}
