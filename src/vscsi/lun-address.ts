/**
 * SAM-5 4.7 LUN addressing: the 8-byte LUN field fabrics carry, decoded to the LUN number the core's
 * LUN maps use. Only single-level peripheral (00b) and flat space (01b) addressing are supported;
 * anything else (hierarchical levels, extended, well-known LUNs) decodes to INVALID_LUN so the core
 * answers LOGICAL UNIT NOT SUPPORTED instead of guessing.
 */
import { Buffer } from 'node:buffer';
import { INVALID_LUN } from './fabric.js';

export { INVALID_LUN };

/** SAM-5 4.7.7 address methods (bits 7-6 of byte 0). */
const ADDRESS_METHOD_PERIPHERAL = 0x0;
const ADDRESS_METHOD_FLAT = 0x1;

/** Highest LUN the flat space method can carry (14 bits). */
export const MAX_FLAT_LUN = 0x3fff;

/** Decode the first level of an 8-byte SAM LUN; never throws. */
export function decodeSamLun(buf: Buffer): number {
  if (!Buffer.isBuffer(buf) || buf.length < 8) return INVALID_LUN;
  // Second to fourth levels must be empty for a single-level LUN.
  for (let i = 2; i < 8; i++) if (buf[i] !== 0) return INVALID_LUN;
  const method = buf[0]! >> 6;
  if (method === ADDRESS_METHOD_PERIPHERAL) {
    // Bus identifier (byte 0 bits 5-0) must be 0: we expose a single bus.
    if ((buf[0]! & 0x3f) !== 0) return INVALID_LUN;
    return buf[1]!;
  }
  if (method === ADDRESS_METHOD_FLAT) return ((buf[0]! & 0x3f) << 8) | buf[1]!;
  return INVALID_LUN;
}

/** Encode a LUN number: peripheral device addressing below 256, flat space addressing up to 16383. */
export function encodeSamLun(n: number): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > MAX_FLAT_LUN) {
    throw new RangeError(`LUN ${n} cannot be encoded: must be an integer 0..${MAX_FLAT_LUN}`);
  }
  const b = Buffer.alloc(8);
  if (n < 256) {
    b[1] = n;
  } else {
    b[0] = (ADDRESS_METHOD_FLAT << 6) | (n >> 8);
    b[1] = n & 0xff;
  }
  return b;
}
