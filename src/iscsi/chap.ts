/**
 * CHAP for iSCSI login (RFC 7143 §12.1.3, RFC 1994), target side: one-way and mutual, with the digest
 * algorithms an initiator may offer in CHAP_A (5 = MD5; 6 = SHA-1, 7 = SHA-256, 8 = SHA3-256 as
 * registered for iSCSI by RFC 7143's update and used by Linux initiators and targets).
 */
import { Buffer } from 'node:buffer';
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const ChapAlgorithm = { MD5: 5, SHA1: 6, SHA256: 7, SHA3_256: 8 } as const;
const HASH: Record<number, { name: string; size: number }> = {
  [ChapAlgorithm.MD5]: { name: 'md5', size: 16 },
  [ChapAlgorithm.SHA1]: { name: 'sha1', size: 20 },
  [ChapAlgorithm.SHA256]: { name: 'sha256', size: 32 },
  [ChapAlgorithm.SHA3_256]: { name: 'sha3-256', size: 32 },
};

export const isSupportedAlgorithm = (a: number): boolean => a in HASH;

/** Choose from the initiator's CHAP_A list (§12.1.3: the target picks one it supports). */
export function pickAlgorithm(offer: string): number | undefined {
  const offered = offer.split(',').map((s) => Number(s.trim())).filter((n) => Number.isInteger(n));
  // The initiator lists in its own preference order; honour it among those we support.
  return offered.find((a) => isSupportedAlgorithm(a));
}

/** RFC 1994 §4.1: Response = H(Identifier || secret || Challenge). */
export function chapResponse(algorithm: number, id: number, secret: string | Buffer, challenge: Buffer): Buffer {
  const h = HASH[algorithm];
  if (!h) throw new RangeError(`CHAP algorithm ${algorithm} is not supported`);
  return createHash(h.name)
    .update(Buffer.from([id & 0xff]))
    .update(typeof secret === 'string' ? Buffer.from(secret, 'utf8') : secret)
    .update(challenge)
    .digest();
}

/** RFC 7143 §6.1: binary values are "0x" hex or "0b" base64. Returns undefined for malformed input. */
export function decodeBinary(v: string): Buffer | undefined {
  if (/^0x([0-9a-f]{2})+$/i.test(v)) return Buffer.from(v.slice(2), 'hex');
  if (/^0x[0-9a-f]+$/i.test(v)) return Buffer.from('0' + v.slice(2), 'hex'); // odd nibble count
  if (/^0b[A-Za-z0-9+/]+=*$/.test(v)) return Buffer.from(v.slice(2), 'base64');
  return undefined;
}
export const encodeHex = (b: Buffer): string => '0x' + b.toString('hex');

export interface ChapChallenge {
  algorithm: number;
  id: number;
  challenge: Buffer;
}

export function newChallenge(algorithm: number): ChapChallenge {
  const size = Math.max(16, HASH[algorithm]?.size ?? 16);
  return { algorithm, id: randomBytes(1)[0]!, challenge: randomBytes(size) };
}

export function verifyResponse(c: ChapChallenge, secret: string, response: Buffer): boolean {
  const want = chapResponse(c.algorithm, c.id, secret, c.challenge);
  return want.length === response.length && timingSafeEqual(want, response);
}
