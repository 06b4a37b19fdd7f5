/**
 * PERSISTENT RESERVE IN parameter data (SPC-4 6.16). Each builder returns the whole response; the core
 * truncates it to the ALLOCATION LENGTH, so ADDITIONAL LENGTH always describes the full list.
 */
import { Buffer } from 'node:buffer';
import { isAllRegistrants, PrTypeMask } from './constants.js';
import type { PrState } from './state.js';

/** SPC-4 6.16.2 READ KEYS: PRGENERATION, ADDITIONAL LENGTH, one 8-byte key per registered I_T nexus. */
export function buildReadKeys(s: PrState): Buffer {
  const b = Buffer.alloc(8 + 8 * s.registrations.length);
  b.writeUInt32BE(s.generation, 0);
  b.writeUInt32BE(8 * s.registrations.length, 4);
  s.registrations.forEach((r, i) => b.writeBigUInt64BE(r.key, 8 + 8 * i));
  return b;
}

/** SPC-4 6.16.3 READ RESERVATION: 8-byte header, plus a 16-byte descriptor while a reservation exists. */
export function buildReadReservation(s: PrState): Buffer {
  const res = s.reservation;
  const b = Buffer.alloc(res ? 24 : 8);
  b.writeUInt32BE(s.generation, 0);
  if (!res) return b;
  b.writeUInt32BE(16, 4);
  // SPC-4 6.16.3.2: all-registrants reservations report a zero RESERVATION KEY.
  const holder = res.holderId === null ? undefined : s.registrations.find((r) => r.id === res.holderId);
  b.writeBigUInt64BE(isAllRegistrants(res.type) || !holder ? 0n : holder.key, 8);
  b[21] = ((res.scope & 0x0f) << 4) | (res.type & 0x0f);
  return b;
}

export interface Capabilities {
  /** PTPL_C: APTPL is supported (a state file is configured). */
  ptplCapable: boolean;
  /** PTPL_A: APTPL is active now. */
  ptplActive: boolean;
}

/** SPC-4 6.16.4 REPORT CAPABILITIES: 8 bytes. */
export function buildReportCapabilities(caps: Capabilities): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt16BE(8, 0); // LENGTH
  // RLR_C=0 (no REPLACE LOST RESERVATION), CRH=1 (SPC-4 5.12.3 exceptions for RESERVE/RELEASE),
  // SIP_C=1 (SPEC_I_PT), ATP_C=1 (ALL_TG_PT), PTPL_C.
  b[2] = 0x10 | 0x08 | 0x04 | (caps.ptplCapable ? 0x01 : 0);
  // TMV=1 (the type mask is valid); ALLOW COMMANDS=001b (TEST UNIT READY is allowed through write
  // exclusive and exclusive access reservations); PTPL_A.
  b[3] = 0x80 | (0x1 << 4) | (caps.ptplActive ? 0x01 : 0);
  b.writeUInt16BE(
    PrTypeMask.WR_EX_AR | PrTypeMask.EX_AC_RO | PrTypeMask.WR_EX_RO | PrTypeMask.EX_AC | PrTypeMask.WR_EX | PrTypeMask.EX_AC_AR,
    4,
  );
  return b;
}

/**
 * SPC-4 6.16.5 READ FULL STATUS: one descriptor per registration, with its TransportID. An ALL_TG_PT
 * registration is one descriptor with ALL_TG_PT set (it stands for every target port).
 */
export function buildReadFullStatus(s: PrState): Buffer {
  const res = s.reservation;
  const descriptors = s.registrations.map((r) => {
    const tid = r.transportId;
    const d = Buffer.alloc(24 + tid.length);
    d.writeBigUInt64BE(r.key, 0);
    const holder = !!res && (isAllRegistrants(res.type) || res.holderId === r.id);
    d[12] = (r.allTgPt ? 0x02 : 0) | (holder ? 0x01 : 0);
    if (holder) d[13] = ((res!.scope & 0x0f) << 4) | (res!.type & 0x0f);
    d.writeUInt16BE(r.allTgPt ? 0 : r.relativeTargetPortId & 0xffff, 18);
    d.writeUInt32BE(tid.length, 20);
    tid.copy(d, 24);
    return d;
  });
  const body = Buffer.concat(descriptors);
  const b = Buffer.alloc(8 + body.length);
  b.writeUInt32BE(s.generation, 0);
  b.writeUInt32BE(body.length, 4);
  body.copy(b, 8);
  return b;
}
