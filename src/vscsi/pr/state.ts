/**
 * The persistent reservation state of one logical unit (SPC-4 5.12): registrations, the reservation
 * and PRGENERATION. Plain data so a PERSISTENT RESERVE OUT can work on a copy and only publish it once
 * it is durable (APTPL), and so it serialises to the APTPL file without surprises.
 */
import { Buffer } from 'node:buffer';
import { isAllRegistrants, isPrType, MAX_REGISTRATIONS, ProtocolId, type PrType } from './constants.js';
import { identityCovers, normaliseIsidSuffix, type PortIdentity } from './transport-id.js';

export interface Registration {
  /** Local identity, stable for the registration's life; the reservation refers to it. */
  id: number;
  /** RESERVATION KEY (64-bit, never zero while registered). */
  key: bigint;
  identity: PortIdentity;
  /** TransportID reported by READ FULL STATUS. */
  transportId: Buffer;
  /** ALL_TG_PT: the registration covers this initiator port at every target port of the device. */
  allTgPt: boolean;
  /** The target port of the registration (when !allTgPt; otherwise where it was made). */
  targetPortName: string;
  relativeTargetPortId: number;
}

export interface Reservation {
  type: PrType;
  scope: number;
  /** Registration id of the holder; null for the all-registrants types, where every registrant holds it. */
  holderId: number | null;
}

export interface PrState {
  generation: number;
  /** Activate Persist Through Power Loss, from the last REGISTER / REGISTER AND MOVE. */
  aptpl: boolean;
  nextId: number;
  registrations: Registration[];
  reservation: Reservation | null;
}

/** The I_T nexus a command came through, reduced to what reservations compare. */
export interface NexusView {
  key: string;
  identity: PortIdentity;
  targetPortName: string;
  relativeTargetPortId: number;
  /** The fabric's TransportID for the initiator port (used for non-iSCSI READ FULL STATUS). */
  transportId?: Buffer;
}

export const emptyState = (): PrState => ({
  generation: 0,
  aptpl: false,
  nextId: 1,
  registrations: [],
  reservation: null,
});

export function cloneState(s: PrState): PrState {
  return {
    generation: s.generation,
    aptpl: s.aptpl,
    nextId: s.nextId,
    registrations: s.registrations.map((r) => ({
      ...r,
      identity: { ...r.identity },
      transportId: Buffer.from(r.transportId),
    })),
    reservation: s.reservation ? { ...s.reservation } : null,
  };
}

export const bumpGeneration = (s: PrState): void => {
  s.generation = (s.generation + 1) >>> 0; // SPC-4 6.16.2: a 32-bit wrapping counter
};

export function registrationCovers(reg: Registration, nexus: NexusView): boolean {
  return identityCovers(reg.identity, nexus.identity) && (reg.allTgPt || reg.targetPortName === nexus.targetPortName);
}

/**
 * The registration of an I_T nexus. When several cover it (a per-port one and an ALL_TG_PT or
 * device-wide one) the most specific wins, so key changes and unregistering touch only that one.
 */
export function findRegistration(s: PrState, nexus: NexusView): Registration | undefined {
  let best: Registration | undefined;
  let bestScore = -1;
  for (const r of s.registrations) {
    if (!registrationCovers(r, nexus)) continue;
    const score = (r.allTgPt ? 0 : 2) + (r.identity.portSuffix === null ? 0 : 1);
    if (score > bestScore) {
      best = r;
      bestScore = score;
    }
  }
  return best;
}

export function isHolder(s: PrState, reg: Registration | undefined): boolean {
  const res = s.reservation;
  if (!res || !reg) return false;
  return isAllRegistrants(res.type) || res.holderId === reg.id;
}

export function addRegistration(s: PrState, r: Omit<Registration, 'id'>): Registration | undefined {
  if (s.registrations.length >= MAX_REGISTRATIONS) return undefined;
  const reg: Registration = { ...r, id: s.nextId++ };
  s.registrations.push(reg);
  return reg;
}

/** Remove registrations; releases an all-registrants reservation once nobody is left (SPC-4 5.12.10). */
export function removeRegistrations(s: PrState, ids: ReadonlySet<number>): void {
  s.registrations = s.registrations.filter((r) => !ids.has(r.id));
  const res = s.reservation;
  if (!res) return;
  if (res.holderId !== null && ids.has(res.holderId)) s.reservation = null;
  else if (isAllRegistrants(res.type) && s.registrations.length === 0) s.reservation = null;
}

// ---------------------------------------------------------------------------------------------
// Serialisation for the APTPL file. Versioned, keys as hex (JSON has no 64-bit integers).

const FILE_FORMAT = 'vtgt-persistent-reservations';
const FILE_VERSION = 1;

export function serialiseState(s: PrState): string {
  const holderIndex = s.reservation?.holderId == null ? null : s.registrations.findIndex((r) => r.id === s.reservation!.holderId);
  return (
    JSON.stringify(
      {
        format: FILE_FORMAT,
        version: FILE_VERSION,
        generation: s.generation,
        aptpl: s.aptpl,
        registrations: s.registrations.map((r) => ({
          key: r.key.toString(16).padStart(16, '0'),
          protocolId: r.identity.protocolId,
          name: r.identity.name,
          portSuffix: r.identity.portSuffix,
          transportId: r.transportId.toString('hex'),
          allTgPt: r.allTgPt,
          targetPortName: r.targetPortName,
          relativeTargetPortId: r.relativeTargetPortId,
        })),
        reservation: s.reservation ? { type: s.reservation.type, scope: s.reservation.scope, holder: holderIndex } : null,
      },
      null,
      2,
    ) + '\n'
  );
}

/** Parse an APTPL file. Returns a string saying what is wrong instead of throwing. */
export function deserialiseState(text: string): PrState | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    return `not valid JSON (${(e as Error).message})`;
  }
  if (typeof doc !== 'object' || doc === null) return 'not a JSON object';
  const d = doc as Record<string, unknown>;
  if (d.format !== FILE_FORMAT) return `format is not "${FILE_FORMAT}"`;
  if (d.version !== FILE_VERSION) return `unsupported version ${String(d.version)} (expected ${FILE_VERSION})`;
  if (!Number.isInteger(d.generation) || (d.generation as number) < 0 || (d.generation as number) > 0xffffffff) {
    return 'generation is not a 32-bit unsigned integer';
  }
  if (typeof d.aptpl !== 'boolean') return 'aptpl is not a boolean';
  if (!Array.isArray(d.registrations)) return 'registrations is not an array';
  if (d.registrations.length > MAX_REGISTRATIONS) return `more than ${MAX_REGISTRATIONS} registrations`;
  const s = emptyState();
  s.generation = d.generation as number;
  s.aptpl = d.aptpl;
  for (const [i, raw] of d.registrations.entries()) {
    if (typeof raw !== 'object' || raw === null) return `registration ${i} is not an object`;
    const r = raw as Record<string, unknown>;
    if (typeof r.key !== 'string' || !/^[0-9a-f]{16}$/.test(r.key) || /^0+$/.test(r.key)) {
      return `registration ${i}: key is not 16 hex digits (non-zero)`;
    }
    if (!Number.isInteger(r.protocolId) || (r.protocolId as number) < 0 || (r.protocolId as number) > 15) {
      return `registration ${i}: bad protocolId`;
    }
    if (typeof r.name !== 'string' || r.name.length === 0) return `registration ${i}: bad name`;
    if (r.portSuffix !== null && typeof r.portSuffix !== 'string') return `registration ${i}: bad portSuffix`;
    if (typeof r.transportId !== 'string' || !/^([0-9a-f]{2})+$/.test(r.transportId)) {
      return `registration ${i}: bad transportId`;
    }
    if (typeof r.allTgPt !== 'boolean') return `registration ${i}: bad allTgPt`;
    if (typeof r.targetPortName !== 'string') return `registration ${i}: bad targetPortName`;
    if (!Number.isInteger(r.relativeTargetPortId) || (r.relativeTargetPortId as number) < 0 || (r.relativeTargetPortId as number) > 0xffff) {
      return `registration ${i}: bad relativeTargetPortId`;
    }
    // Hand-edited files may spell iSCSI names and ISIDs differently; compare them as the wire does.
    const iscsi = r.protocolId === ProtocolId.ISCSI;
    const portSuffix = r.portSuffix as string | null;
    addRegistration(s, {
      key: BigInt('0x' + r.key),
      identity: {
        protocolId: r.protocolId as number,
        name: iscsi ? r.name.toLowerCase() : r.name,
        portSuffix: iscsi && portSuffix ? normaliseIsidSuffix(portSuffix) : portSuffix,
      },
      transportId: Buffer.from(r.transportId, 'hex'),
      allTgPt: r.allTgPt,
      targetPortName: r.targetPortName,
      relativeTargetPortId: r.relativeTargetPortId as number,
    });
  }
  if (d.reservation !== null) {
    if (typeof d.reservation !== 'object' || d.reservation === undefined) return 'reservation is not an object or null';
    const res = d.reservation as Record<string, unknown>;
    if (typeof res.type !== 'number' || !isPrType(res.type)) return 'reservation: bad type';
    if (res.scope !== 0) return 'reservation: scope is not 0 (LU_SCOPE)';
    let holderId: number | null = null;
    if (isAllRegistrants(res.type)) {
      if (res.holder !== null) return 'reservation: all-registrants type must have holder null';
      if (s.registrations.length === 0) return 'reservation: all-registrants type without registrations';
    } else {
      if (!Number.isInteger(res.holder) || (res.holder as number) < 0 || (res.holder as number) >= s.registrations.length) {
        return 'reservation: holder is not the index of a registration';
      }
      holderId = s.registrations[res.holder as number]!.id;
    }
    s.reservation = { type: res.type, scope: 0, holderId };
  }
  return s;
}
