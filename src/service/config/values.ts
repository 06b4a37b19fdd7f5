/** Parsing and checking of the scalar value kinds the config and CLI share (sizes, names, addresses). */
import { Buffer } from 'node:buffer';
import { isIP } from 'node:net';

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};

/** "1GiB", "512M", "4096", 1073741824 -> bytes; a string describing the problem otherwise. */
export function parseSize(v: string | number): number | string {
  if (typeof v === 'number') {
    return Number.isSafeInteger(v) && v > 0 ? v : `expected a positive byte count, got ${v}`;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) {
    return `expected a size such as 1GiB, 512MiB, 10G or a byte count, got "${v}"`;
  }
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) return `size "${v}" is out of range`;
  return bytes;
}

/** A size, or 0 for a setting that 0 turns off (parseSize takes positive sizes only). */
export function parseSizeOrZero(v: string | number): number | string {
  return v === 0 || (typeof v === 'string' && v.trim() === '0') ? 0 : parseSize(v);
}

export function formatSize(bytes: number): string {
  for (const [u, f] of [['TiB', 1024 ** 4], ['GiB', 1024 ** 3], ['MiB', 1024 ** 2], ['KiB', 1024]] as const) {
    if (bytes >= f && bytes % f === 0) return `${bytes / f}${u}`;
  }
  return String(bytes);
}

/**
 * RFC 3720 3.2.6 (iSCSI names): iqn.YYYY-MM.reversed-domain[:unique], eui. + 16 hex digits,
 * naa. + 16 or 32 hex digits; at most 223 bytes; lower case (names are compared after nameprep,
 * so we only accept the normalised form to avoid two spellings of one target).
 */
export function checkIscsiName(name: string): string | undefined {
  if (Buffer.byteLength(name) > 223) return 'an iSCSI name is at most 223 bytes (RFC 3720 3.2.6)';
  if (/^iqn\.\d{4}-\d{2}\.[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[\x21-\x7e]*)?$/.test(name) && name === name.toLowerCase()) {
    return undefined;
  }
  if (/^eui\.[0-9A-F]{16}$/i.test(name)) return undefined;
  if (/^naa\.([0-9A-F]{16}|[0-9A-F]{32})$/i.test(name)) return undefined;
  return `"${name}" is not an iSCSI name; use iqn.YYYY-MM.reversed.domain[:id] in lower case (e.g. iqn.2026-11.org.example:disk1), eui.<16 hex> or naa.<16|32 hex>`;
}

/** Names of backstores and accounts: used in paths, CLI arguments and logs. */
export function checkObjectName(name: string): string | undefined {
  return /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name)
    ? undefined
    : `"${name}" is not a valid name; use 1-64 letters, digits, "_", "-" or ".", starting with a letter or digit`;
}

/** "127.0.0.1:3260", "[::1]:3260", "0.0.0.0" (default port) -> host and port. */
export function parseHostPort(v: string, defaultPort: number): { host: string; port: number } | string {
  const m = /^\[([0-9a-fA-F:.]+)\](?::(\d+))?$/.exec(v) ?? /^([^:[\]]+)(?::(\d+))?$/.exec(v);
  if (!m) return `expected ADDRESS:PORT (e.g. 127.0.0.1:3260 or [::1]:3260), got "${v}"`;
  const host = m[1]!;
  if (isIP(host) === 0 && host !== 'localhost') {
    return `"${host}" is not an IP address; use a numeric address such as 127.0.0.1, 0.0.0.0, ::1 or ::`;
  }
  const port = m[2] === undefined ? defaultPort : Number(m[2]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) return `port ${m[2]} is out of range (0-65535)`;
  return { host, port };
}

export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** RFC 3720 8.2.1 asks for CHAP secrets of at least 96 bits; open-iscsi accepts up to 256 bytes. */
export function checkChapSecret(secret: string): string | undefined {
  const n = Buffer.byteLength(secret);
  if (n < 12) return `the CHAP secret is ${n} bytes; use at least 12 (RFC 3720 8.2.1 requires 96 bits)`;
  if (n > 256) return `the CHAP secret is ${n} bytes; initiators accept at most 256`;
  return undefined;
}

export function checkChapUser(user: string): string | undefined {
  return user.length >= 1 && user.length <= 255 && /^[\x21-\x7e]+$/.test(user)
    ? undefined
    : 'a CHAP user name is 1-255 printable characters without spaces';
}

/** "192.0.2.7", "10.0.0.0/8", "fd00::/8": where an ACL's initiator may connect from. */
export function checkCidr(v: string): string | undefined {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(v);
  const kind = m ? isIP(m[1]!) : 0;
  if (!m || kind === 0) return `"${v}" is not an IP address or CIDR block (e.g. 192.0.2.7, 10.0.0.0/8, fd00::/8)`;
  if (m[2] !== undefined && Number(m[2]) > (kind === 4 ? 32 : 128)) return `prefix length /${m[2]} is too long for ${m[1]}`;
  return undefined;
}
