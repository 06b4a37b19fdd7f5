/**
 * PERSISTENT RESERVE OUT service actions (SPC-4 5.12.5 - 5.12.11, 6.17) as a pure step: validate the CDB
 * and parameter list, then change a copy of the state. The caller publishes the copy (after persisting
 * it when APTPL is active) and turns the abstract effects into unit attentions and aborts for live
 * I_T nexuses.
 */
import {
  isAllRegistrants,
  isPrType,
  isRegistrantsOnly,
  LU_SCOPE,
  MAX_REGISTRATIONS,
  PROUT_BASIC_PARAMETER_LENGTH,
  PrOutServiceAction as SA,
  type PrType,
} from './constants.js';
import { failure, invalidCdbField, invalidParamField, type ReasonName, type ScsiFailure } from '../sense.js';
import {
  addRegistration,
  bumpGeneration,
  findRegistration,
  isHolder,
  removeRegistrations,
  type NexusView,
  type PrState,
  type Registration,
} from './state.js';
import { buildTransportId, identityCovers, parseTransportId, type PortIdentity } from './transport-id.js';

/**
 * An effect on I_T nexuses, named by the registrations that cover them. The caller leaves out the
 * sender's own I_T nexus, but not the sender's other paths of an ALL_TG_PT registration: SPC-4 counts
 * those as other I_T nexuses.
 */
export type AbstractEffect =
  | { kind: 'unitAttention'; registrations: Registration[]; reason: ReasonName }
  | { kind: 'abortTasks'; registrations: Registration[] };

export type ProutStep =
  | { kind: 'good'; changed: boolean; effects: AbstractEffect[] }
  | { kind: 'conflict' }
  | { kind: 'check'; failure: ScsiFailure };

export interface ProutEnv {
  /** PTPL_C: APTPL may be set (a state file is configured). */
  aptplSupported: boolean;
  /** Target port name for a RELATIVE TARGET PORT IDENTIFIER of this device (REGISTER AND MOVE). */
  resolveTargetPort(relativeTargetPortId: number): string | undefined;
}

const good = (changed: boolean, effects: AbstractEffect[] = []): ProutStep => ({ kind: 'good', changed, effects });
const conflict: ProutStep = { kind: 'conflict' };
const check = (f: ScsiFailure): ProutStep => ({ kind: 'check', failure: f });

// PR OUT CDB (SPC-4 6.17.1 table 176)
const CDB_LENGTH = 10;
// Basic parameter list (SPC-4 6.17.3 table 179)
const P_RESERVATION_KEY = 0;
const P_SERVICE_ACTION_RESERVATION_KEY = 8;
const P_FLAGS = 20;
const FLAG_SPEC_I_PT = 0x08;
const FLAG_ALL_TG_PT = 0x04;
const FLAG_APTPL = 0x01;
const P_TRANSPORTID_PARAMETER_DATA_LENGTH = 24;
const P_TRANSPORTIDS = 28;
// REGISTER AND MOVE parameter list (SPC-4 6.17.4 table 181)
const RM_FLAGS = 17;
const RM_FLAG_UNREG = 0x02;
const RM_FLAG_APTPL = 0x01;
const RM_RELATIVE_TARGET_PORT_IDENTIFIER = 18;
const RM_TRANSPORTID_PARAMETER_DATA_LENGTH = 20;
const RM_TRANSPORTID = 24;

/** Parse the CDB fields every service action needs; CDB errors come before parameter list errors. */
export function parseProutCdb(cdb: Buffer): { sa: number; scope: number; type: number; listLength: number } | ScsiFailure {
  if (cdb.length < CDB_LENGTH) return failure('INVALID_FIELD_IN_CDB', { field: { inCdb: true, byte: 0 } });
  if (cdb[1]! & 0xe0) return invalidCdbField(1, 7);
  const sa = cdb[1]! & 0x1f;
  if (sa > SA.REGISTER_AND_MOVE) return invalidCdbField(1, 4);
  if (cdb[3] !== 0) return invalidCdbField(3);
  if (cdb[4] !== 0) return invalidCdbField(4);
  return { sa, scope: cdb[2]! >> 4, type: cdb[2]! & 0x0f, listLength: cdb.readUInt32BE(5) };
}

function validScopeAndType(scope: number, type: number): ScsiFailure | undefined {
  if (scope !== LU_SCOPE) return invalidCdbField(2, 7);
  if (!isPrType(type)) return invalidCdbField(2, 3);
  return undefined;
}

/** Run one PR OUT command against `s` (a private copy the caller may publish). */
export function executeProut(s: PrState, nexus: NexusView, cdb: Buffer, params: Buffer, env: ProutEnv): ProutStep {
  const parsed = parseProutCdb(cdb);
  if ('reason' in parsed) return check(parsed);
  const { sa, scope, type, listLength } = parsed;
  if (sa === SA.RESERVE) {
    const bad = validScopeAndType(scope, type);
    if (bad) return check(bad);
  } else if (sa === SA.PREEMPT || sa === SA.PREEMPT_AND_ABORT) {
    // PREEMPT ignores TYPE when it merely removes registrations, but a bad SCOPE is always wrong.
    if (scope !== LU_SCOPE) return check(invalidCdbField(2, 7));
  }
  // REGISTER AND MOVE ignores SCOPE and TYPE: the reservation moves as it is (SPC-4 5.12.8 b).
  // The data the initiator actually sent must cover the PARAMETER LIST LENGTH.
  if (params.length < listLength) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
  const p = params.subarray(0, listLength);
  if (sa === SA.REGISTER_AND_MOVE) return registerAndMove(s, nexus, p, env);
  if (p.length < PROUT_BASIC_PARAMETER_LENGTH) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
  const flags = p[P_FLAGS]!;
  const specIPt = (flags & FLAG_SPEC_I_PT) !== 0;
  if (specIPt && sa !== SA.REGISTER) return check(invalidParamField(P_FLAGS, 3));
  if (!specIPt && p.length !== PROUT_BASIC_PARAMETER_LENGTH) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
  const key = p.readBigUInt64BE(P_RESERVATION_KEY);
  const sark = p.readBigUInt64BE(P_SERVICE_ACTION_RESERVATION_KEY);
  const reg = findRegistration(s, nexus);
  switch (sa) {
    case SA.REGISTER:
    case SA.REGISTER_AND_IGNORE_EXISTING_KEY:
      return register(s, nexus, reg, sa === SA.REGISTER_AND_IGNORE_EXISTING_KEY, key, sark, flags, p, env);
    case SA.RESERVE:
      if (!reg || reg.key !== key) return conflict;
      return reserve(s, reg, type as PrType, scope);
    case SA.RELEASE:
      if (!reg || reg.key !== key) return conflict;
      return release(s, reg, type, scope);
    case SA.CLEAR:
      if (!reg || reg.key !== key) return conflict;
      return clear(s);
    default: // PREEMPT, PREEMPT AND ABORT
      if (!reg || reg.key !== key) return conflict;
      return preempt(s, reg, sark, scope, type, sa === SA.PREEMPT_AND_ABORT);
  }
}

/** SPC-4 5.12.7: REGISTER and REGISTER AND IGNORE EXISTING KEY. */
function register(
  s: PrState,
  nexus: NexusView,
  reg: Registration | undefined,
  ignoreKey: boolean,
  key: bigint,
  sark: bigint,
  flags: number,
  p: Buffer,
  env: ProutEnv,
): ProutStep {
  const aptpl = (flags & FLAG_APTPL) !== 0;
  const allTgPt = (flags & FLAG_ALL_TG_PT) !== 0;
  const specIPt = (flags & FLAG_SPEC_I_PT) !== 0;
  if (reg) {
    if (!ignoreKey && reg.key !== key) return conflict;
    if (specIPt) return check(invalidParamField(P_FLAGS, 3));
    if (sark === 0n) return good(true, unregister(s, reg));
    if (aptpl && !env.aptplSupported) return check(invalidParamField(P_FLAGS, 0));
    reg.key = sark;
    s.aptpl = aptpl;
    bumpGeneration(s);
    return good(true);
  }
  // Not registered: a non-zero RESERVATION KEY means the initiator believes otherwise (SPC-4 5.12.7).
  if (!ignoreKey && key !== 0n) return conflict;
  if (sark === 0n) return good(false); // unregistering an unregistered nexus: GOOD, nothing changes
  if (aptpl && !env.aptplSupported) return check(invalidParamField(P_FLAGS, 0));
  const targets: { identity: PortIdentity; transportId: Buffer }[] = [
    { identity: nexus.identity, transportId: buildTransportId(nexus.identity, nexus.transportId) },
  ];
  if (specIPt) {
    if (p.length < P_TRANSPORTIDS) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
    const tidLength = p.readUInt32BE(P_TRANSPORTID_PARAMETER_DATA_LENGTH);
    if (P_TRANSPORTIDS + tidLength > p.length) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
    const end = P_TRANSPORTIDS + tidLength;
    // Index what exists so a long hostile list costs linear time, and stop at the registration limit.
    const seen = new Set([identityKey(nexus.identity)]);
    const byDevice = new Map<string, Registration[]>();
    for (const r of s.registrations) {
      const k = deviceKey(r.identity);
      const list = byDevice.get(k);
      if (list) list.push(r);
      else byDevice.set(k, [r]);
    }
    for (let off = P_TRANSPORTIDS; off < end; ) {
      if (s.registrations.length + targets.length >= MAX_REGISTRATIONS) return check(failure('INSUFFICIENT_REGISTRATION_RESOURCES'));
      const t = parseTransportId(p, off, end);
      if (!t.ok) return check(invalidParamField(t.errorOffset));
      off += t.length;
      // Without ALL_TG_PT the new I_T nexuses are at the receiving target port, so only initiator
      // ports of its protocol can form them.
      if (!allTgPt && t.identity.protocolId !== nexus.identity.protocolId) return check(invalidParamField(off - t.length));
      if (seen.has(identityKey(t.identity))) continue; // listed twice, or the sender
      seen.add(identityKey(t.identity));
      // Each named I_T nexus must not be registered yet (SPC-4 5.12.7).
      const tidOffset = off - t.length;
      if ((byDevice.get(deviceKey(t.identity)) ?? []).some((r) => overlaps(r, t.identity, allTgPt, nexus.targetPortName))) {
        return check(invalidParamField(tidOffset));
      }
      targets.push({ identity: t.identity, transportId: t.transportId });
    }
  }
  for (const t of targets) {
    const added = addRegistration(s, {
      key: sark,
      identity: t.identity,
      transportId: t.transportId,
      allTgPt,
      targetPortName: nexus.targetPortName,
      relativeTargetPortId: nexus.relativeTargetPortId,
    });
    if (!added) return check(failure('INSUFFICIENT_REGISTRATION_RESOURCES'));
  }
  s.aptpl = aptpl;
  bumpGeneration(s);
  return good(true);
}

const deviceKey = (i: PortIdentity): string => `${i.protocolId}|${i.name}`;
const identityKey = (i: PortIdentity): string => `${i.protocolId}|${i.name}|${i.portSuffix ?? '*'}`;

/** Would registering `identity` (at `targetPortName`, or everywhere) touch an I_T nexus `r` already covers? */
function overlaps(r: Registration, identity: PortIdentity, allTgPt: boolean, targetPortName: string): boolean {
  if (r.identity.protocolId !== identity.protocolId || r.identity.name !== identity.name) return false;
  const portsMeet = r.identity.portSuffix === null || identity.portSuffix === null || r.identity.portSuffix === identity.portSuffix;
  return portsMeet && (r.allTgPt || allTgPt || r.targetPortName === targetPortName);
}

/** SPC-4 5.12.11.3 (unregistering): drop the registration; a holder's reservation goes with it. */
function unregister(s: PrState, reg: Registration): AbstractEffect[] {
  const res = s.reservation;
  const effects: AbstractEffect[] = [];
  const releasesReservation = !!res && res.holderId === reg.id;
  removeRegistrations(s, new Set([reg.id]));
  if (releasesReservation && isRegistrantsOnly(res!.type)) {
    effects.push({ kind: 'unitAttention', registrations: [...s.registrations], reason: 'RESERVATIONS_RELEASED' });
  }
  bumpGeneration(s);
  return effects;
}

/** SPC-4 5.12.9: RESERVE. Holding the same reservation again is GOOD; anything else conflicts. */
function reserve(s: PrState, reg: Registration, type: PrType, scope: number): ProutStep {
  const res = s.reservation;
  if (res) {
    if (isHolder(s, reg) && res.type === type && res.scope === scope) return good(false);
    return conflict;
  }
  s.reservation = { type, scope, holderId: isAllRegistrants(type) ? null : reg.id };
  return good(true);
}

/** SPC-4 5.12.11.2: RELEASE. Non-holders and an absent reservation get GOOD without effect. */
function release(s: PrState, reg: Registration, type: number, scope: number): ProutStep {
  const res = s.reservation;
  if (!res || !isHolder(s, reg)) return good(false);
  if (res.type !== type || res.scope !== scope) return check(failure('INVALID_RELEASE_OF_PERSISTENT_RESERVATION'));
  s.reservation = null;
  const effects: AbstractEffect[] = [];
  if (isRegistrantsOnly(res.type) || isAllRegistrants(res.type)) {
    effects.push({
      kind: 'unitAttention',
      registrations: [...s.registrations],
      reason: 'RESERVATIONS_RELEASED',
    });
  }
  return good(true, effects);
}

/** SPC-4 5.12.11.6: CLEAR releases the reservation and removes every registration. */
function clear(s: PrState): ProutStep {
  const everyone = s.registrations;
  s.registrations = [];
  s.reservation = null;
  bumpGeneration(s);
  return good(true, [{ kind: 'unitAttention', registrations: everyone, reason: 'RESERVATIONS_PREEMPTED' }]);
}

/** SPC-4 5.12.11.4: PREEMPT and PREEMPT AND ABORT. */
function preempt(s: PrState, reg: Registration, sark: bigint, scope: number, type: number, abort: boolean): ProutStep {
  const res = s.reservation;
  const effects: AbstractEffect[] = [];
  const finish = (lost: Registration[]): ProutStep => {
    if (lost.length > 0) effects.unshift({ kind: 'unitAttention', registrations: lost, reason: 'REGISTRATIONS_PREEMPTED' });
    if (abort && lost.length > 0) effects.push({ kind: 'abortTasks', registrations: lost });
    bumpGeneration(s);
    return good(true, effects);
  };
  /** SPC-4 5.12.11.4.3: remove the registrations holding SARK (the reservation, if any, stays). */
  const removeByKey = (sparesSender: boolean): ProutStep => {
    const lost = s.registrations.filter((r) => r.key === sark && !(sparesSender && r.id === reg.id));
    if (lost.length === 0) return conflict;
    removeRegistrations(s, new Set(lost.map((r) => r.id)));
    return finish(lost);
  };

  if (res && isAllRegistrants(res.type)) {
    if (sark !== 0n) return removeByKey(true);
    // SPC-4 5.12.11.4.4: a zero key preempts every other registrant and the reservation itself.
    if (!isPrType(type)) return check(invalidCdbField(2, 3));
    const lost = s.registrations.filter((r) => r.id !== reg.id);
    removeRegistrations(s, new Set(lost.map((r) => r.id)));
    s.reservation = { type, scope, holderId: isAllRegistrants(type) ? null : reg.id };
    return finish(lost);
  }
  // A zero key cannot name anyone unless an all-registrants reservation exists (SPC-4 5.12.11.4.1).
  if (sark === 0n) return check(invalidParamField(P_SERVICE_ACTION_RESERVATION_KEY));
  const holder = res && res.holderId !== null ? s.registrations.find((r) => r.id === res.holderId) : undefined;
  if (!res || !holder || holder.key !== sark) return removeByKey(false);
  // SPC-4 5.12.11.4.2: preempting the holder. The sender keeps its own registration even if it shares the key.
  if (!isPrType(type)) return check(invalidCdbField(2, 3));
  const lost = s.registrations.filter((r) => r.key === sark && r.id !== reg.id);
  removeRegistrations(s, new Set(lost.map((r) => r.id)));
  const changed = res.type !== type || res.scope !== scope;
  s.reservation = { type, scope, holderId: isAllRegistrants(type) ? null : reg.id };
  if (changed) {
    effects.push({ kind: 'unitAttention', registrations: [...s.registrations], reason: 'RESERVATIONS_RELEASED' });
  }
  return finish(lost);
}

/** SPC-4 5.12.8: REGISTER AND MOVE hands the reservation to another I_T nexus. */
function registerAndMove(s: PrState, nexus: NexusView, p: Buffer, env: ProutEnv): ProutStep {
  if (p.length < RM_TRANSPORTID) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
  const tidLength = p.readUInt32BE(RM_TRANSPORTID_PARAMETER_DATA_LENGTH);
  if (RM_TRANSPORTID + tidLength > p.length) return check(failure('PARAMETER_LIST_LENGTH_ERROR'));
  const key = p.readBigUInt64BE(P_RESERVATION_KEY);
  const sark = p.readBigUInt64BE(P_SERVICE_ACTION_RESERVATION_KEY);
  const flags = p[RM_FLAGS]!;
  const reg = findRegistration(s, nexus);
  if (!reg || reg.key !== key) return conflict;
  const res = s.reservation;
  // Only the holder may move it, and an all-registrants reservation has no single holder to move.
  if (!res || isAllRegistrants(res.type) || res.holderId !== reg.id) return conflict;
  if (sark === 0n) return check(invalidParamField(P_SERVICE_ACTION_RESERVATION_KEY));
  if (flags & RM_FLAG_APTPL && !env.aptplSupported) return check(invalidParamField(RM_FLAGS, 0));
  const rtpi = p.readUInt16BE(RM_RELATIVE_TARGET_PORT_IDENTIFIER);
  const targetPortName = env.resolveTargetPort(rtpi);
  if (targetPortName === undefined) return check(invalidParamField(RM_RELATIVE_TARGET_PORT_IDENTIFIER));
  const t = parseTransportId(p, RM_TRANSPORTID, RM_TRANSPORTID + tidLength);
  if (!t.ok) return check(invalidParamField(t.errorOffset));
  // The destination shares the sender's fabric: a TransportID of another protocol cannot name an
  // I_T nexus we could reach through a target port of this one.
  if (t.identity.protocolId !== nexus.identity.protocolId) return check(invalidParamField(RM_TRANSPORTID));
  const dest: NexusView = { key: '', identity: t.identity, targetPortName, relativeTargetPortId: rtpi };
  // SPC-4 5.12.8: a TransportID naming the sender's own initiator port (at any target port) is
  // INVALID FIELD IN PARAMETER LIST.
  if (identityCovers(t.identity, nexus.identity)) return check(invalidParamField(RM_TRANSPORTID));
  let destReg = findRegistration(s, dest);
  if (destReg === reg) return check(invalidParamField(RM_TRANSPORTID));
  // An already registered destination takes the new key (SPC-4 5.12.8 c: "retain" the SARK).
  if (destReg) destReg.key = sark;
  if (!destReg) {
    destReg = addRegistration(s, {
      key: sark,
      identity: t.identity,
      transportId: t.transportId,
      allTgPt: false,
      targetPortName,
      relativeTargetPortId: rtpi,
    });
    if (!destReg) return check(failure('INSUFFICIENT_REGISTRATION_RESOURCES'));
  }
  s.reservation = { type: res.type, scope: res.scope, holderId: destReg.id };
  if (flags & RM_FLAG_UNREG) removeRegistrations(s, new Set([reg.id]));
  s.aptpl = (flags & RM_FLAG_APTPL) !== 0;
  bumpGeneration(s);
  return good(true);
}
