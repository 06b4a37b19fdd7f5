/**
 * IBM VIO LUN addressing (ibmvio.md §5). The Linux client sends SAM logical-unit addressing
 * (method 10b): byte 0 = 0x80 | target, byte 1 = bus << 5 | lun; ibmvscsis flattens that to
 * target·256 + bus·32 + lun. AIX numbers its virtual disks by the target field (LUN 1 is
 * 0x8100000000000000). Methods 00b and 01b are accepted as in SAM.
 */
import { Buffer } from 'node:buffer';
import { INVALID_LUN } from '../vscsi/fabric.js';
import { decodeSamLun } from '../vscsi/lun-address.js';

export type VioLunProfile = 'linux' | 'aix';

/** ibmvscsi limits: max_id 64 targets, 8 buses (3 bits), IBMVSCSI_MAX_LUN 32. */
export const VIO_MAX_TARGET = 63;
export const VIO_MAX_LUN = 31;

export function decodeVioLun(lun: Buffer, profile: VioLunProfile): number {
  if (!Buffer.isBuffer(lun) || lun.length < 8) return INVALID_LUN;
  if (lun[0]! >> 6 !== 0b10) return decodeSamLun(lun);
  for (let i = 2; i < 8; i++) if (lun[i] !== 0) return INVALID_LUN;
  const target = lun[0]! & 0x3f;
  const bus = lun[1]! >> 5;
  const l = lun[1]! & 0x1f;
  if (profile === 'aix') return bus === 0 && l === 0 ? target : INVALID_LUN;
  return target * 256 + bus * 32 + l;
}

/** The LUN field a client uses for core LUN `n` (the inverse of decodeVioLun). */
export function encodeVioLun(n: number, profile: VioLunProfile): Buffer {
  const b = Buffer.alloc(8);
  if (profile === 'aix') {
    if (!Number.isInteger(n) || n < 0 || n > VIO_MAX_TARGET) throw new RangeError(`AIX VIO LUN ${n} out of range 0..${VIO_MAX_TARGET}`);
    b[0] = 0x80 | n;
    return b;
  }
  const target = Math.floor(n / 256);
  const rest = n % 256;
  const bus = Math.floor(rest / 32);
  if (!Number.isInteger(n) || n < 0 || target > VIO_MAX_TARGET || bus > 7) throw new RangeError(`VIO LUN ${n} out of range`);
  b[0] = 0x80 | target;
  b[1] = (bus << 5) | (rest % 32);
  return b;
}
