/**
 * RFC 7143 §13 text keys: definitions, defaults, ranges and the target side of negotiation (§6.2).
 * The initiator offers; for every key the target answers with the negotiated result, "Irrelevant",
 * "NotUnderstood" or "Reject", or records a declaration without answering.
 */
import type { KeyValues } from './text-keys.js';

/** Negotiated operational values of a session and connection (names as in RFC 7143 §13). */
export interface OperationalParams {
  HeaderDigest: boolean; // connection
  DataDigest: boolean; // connection
  MaxConnections: number;
  InitialR2T: boolean;
  ImmediateData: boolean;
  /** What the initiator may receive: limits every PDU we send on this connection. */
  MaxRecvDataSegmentLength: number;
  /** What we declared: limits every PDU the initiator sends us. */
  TargetMaxRecvDataSegmentLength: number;
  MaxBurstLength: number;
  FirstBurstLength: number;
  DefaultTime2Wait: number;
  DefaultTime2Retain: number;
  MaxOutstandingR2T: number;
  DataPDUInOrder: boolean;
  DataSequenceInOrder: boolean;
  ErrorRecoveryLevel: number;
  iSCSIProtocolLevel: number;
  TaskReporting: string;
}

/** The negotiated digests as log lines and the management view name them. */
export function digestNames(p: Pick<OperationalParams, 'HeaderDigest' | 'DataDigest'>): { headerDigest: 'None' | 'CRC32C'; dataDigest: 'None' | 'CRC32C' } {
  return { headerDigest: p.HeaderDigest ? 'CRC32C' : 'None', dataDigest: p.DataDigest ? 'CRC32C' : 'None' };
}

/** RFC 7143 §13 defaults (what holds when a key is never negotiated). */
export const RFC_DEFAULTS: Readonly<OperationalParams> = Object.freeze({
  HeaderDigest: false,
  DataDigest: false,
  MaxConnections: 1,
  InitialR2T: true,
  ImmediateData: true,
  MaxRecvDataSegmentLength: 8192,
  TargetMaxRecvDataSegmentLength: 8192,
  MaxBurstLength: 262144,
  FirstBurstLength: 65536,
  DefaultTime2Wait: 2,
  DefaultTime2Retain: 20,
  MaxOutstandingR2T: 1,
  DataPDUInOrder: true,
  DataSequenceInOrder: true,
  ErrorRecoveryLevel: 0,
  iSCSIProtocolLevel: 0,
  TaskReporting: 'RFC3720',
});

type Rule =
  | { kind: 'bool-or' | 'bool-and' }
  | { kind: 'min' | 'max'; lo: number; hi: number }
  | { kind: 'list'; values: string[] }
  | { kind: 'declared-number'; lo: number; hi: number }
  | { kind: 'declarative' }
  | { kind: 'markers-off' }
  | { kind: 'reject' };

interface KeyDef {
  rule: Rule;
  /** Session-wide keys may only be negotiated on the leading connection (§13). */
  leadingOnly: boolean;
  /** Answered with "Irrelevant" in a discovery session. */
  irrelevantInDiscovery: boolean;
  /** Keys that only exist during login. */
  loginOnly: boolean;
  /** Security stage keys (AuthMethod, CHAP_*) are handled by login.ts/chap.ts, not here. */
  security?: boolean;
}

const k = (rule: Rule, leadingOnly: boolean, irrelevantInDiscovery: boolean, loginOnly = true): KeyDef => ({
  rule,
  leadingOnly,
  irrelevantInDiscovery,
  loginOnly,
});
const U24 = 0xffffff;

/** RFC 7143 §13.x key table. */
export const KEY_DEFS: Record<string, KeyDef> = {
  HeaderDigest: k({ kind: 'list', values: ['None', 'CRC32C'] }, false, false), // §13.1
  DataDigest: k({ kind: 'list', values: ['None', 'CRC32C'] }, false, false), // §13.1
  MaxConnections: k({ kind: 'min', lo: 1, hi: 65535 }, true, true), // §13.2
  SendTargets: k({ kind: 'declarative' }, false, false, false), // §13.3 (Text only)
  TargetName: k({ kind: 'declarative' }, true, false), // §13.4
  InitiatorName: k({ kind: 'declarative' }, true, false), // §13.5
  TargetAlias: k({ kind: 'declarative' }, true, false), // §13.6
  InitiatorAlias: k({ kind: 'declarative' }, true, false), // §13.7
  TargetAddress: k({ kind: 'declarative' }, false, false, false), // §13.8
  TargetPortalGroupTag: k({ kind: 'declarative' }, true, false), // §13.9
  InitialR2T: k({ kind: 'bool-or' }, true, true), // §13.10
  ImmediateData: k({ kind: 'bool-and' }, true, true), // §13.11
  MaxRecvDataSegmentLength: k({ kind: 'declared-number', lo: 512, hi: U24 }, false, false, false), // §13.12
  MaxBurstLength: k({ kind: 'min', lo: 512, hi: U24 }, true, true), // §13.13
  FirstBurstLength: k({ kind: 'min', lo: 512, hi: U24 }, true, true), // §13.14
  DefaultTime2Wait: k({ kind: 'max', lo: 0, hi: 3600 }, true, true), // §13.15
  DefaultTime2Retain: k({ kind: 'min', lo: 0, hi: 3600 }, true, true), // §13.16
  MaxOutstandingR2T: k({ kind: 'min', lo: 1, hi: 65535 }, true, true), // §13.17
  DataPDUInOrder: k({ kind: 'bool-or' }, true, true), // §13.18
  DataSequenceInOrder: k({ kind: 'bool-or' }, true, true), // §13.19
  ErrorRecoveryLevel: k({ kind: 'min', lo: 0, hi: 2 }, true, false), // §13.20
  SessionType: k({ kind: 'declarative' }, true, false), // §13.21
  TaskReporting: k({ kind: 'list', values: ['RFC3720'] }, true, true), // §13.23
  iSCSIProtocolLevel: k({ kind: 'min', lo: 0, hi: 31 }, true, true), // RFC 7144 §2.1
  // §13.25: obsoleted marker keys. IFMarker/OFMarker may be answered "No" (what RFC 3720 initiators
  // expect to read); IFMarkInt/OFMarkInt must be answered "Reject".
  IFMarker: k({ kind: 'markers-off' }, false, false),
  OFMarker: k({ kind: 'markers-off' }, false, false),
  IFMarkInt: k({ kind: 'reject' }, false, false),
  OFMarkInt: k({ kind: 'reject' }, false, false),
  AuthMethod: { ...k({ kind: 'declarative' }, false, false), security: true },
  CHAP_A: { ...k({ kind: 'declarative' }, false, false), security: true },
  CHAP_I: { ...k({ kind: 'declarative' }, false, false), security: true },
  CHAP_C: { ...k({ kind: 'declarative' }, false, false), security: true },
  CHAP_N: { ...k({ kind: 'declarative' }, false, false), security: true },
  CHAP_R: { ...k({ kind: 'declarative' }, false, false), security: true },
};

/** Target-side limits and preferences, from defaults plus a target's `params` overrides. */
export interface TargetParamPolicy {
  HeaderDigest: string[]; // acceptable values in preference order
  DataDigest: string[];
  MaxConnections: number;
  InitialR2T: boolean;
  ImmediateData: boolean;
  MaxRecvDataSegmentLength: number; // what we declare
  MaxBurstLength: number;
  FirstBurstLength: number;
  DefaultTime2Wait: number;
  DefaultTime2Retain: number;
  MaxOutstandingR2T: number;
  DataPDUInOrder: boolean;
  DataSequenceInOrder: boolean;
  ErrorRecoveryLevel: number;
  iSCSIProtocolLevel: number;
}

/** What vtgt offers unless a target overrides it. */
export const DEFAULT_POLICY: Readonly<TargetParamPolicy> = Object.freeze({
  HeaderDigest: ['CRC32C', 'None'],
  DataDigest: ['CRC32C', 'None'],
  MaxConnections: 8,
  InitialR2T: false,
  ImmediateData: true,
  MaxRecvDataSegmentLength: 262144,
  MaxBurstLength: 1048576,
  FirstBurstLength: 262144,
  DefaultTime2Wait: 2,
  DefaultTime2Retain: 0,
  MaxOutstandingR2T: 8,
  DataPDUInOrder: true,
  DataSequenceInOrder: true,
  ErrorRecoveryLevel: 0,
  iSCSIProtocolLevel: 1,
});

export function parseNumber(v: string): number | undefined {
  if (/^0x[0-9a-f]{1,8}$/i.test(v)) return parseInt(v.slice(2), 16);
  if (/^[0-9]{1,10}$/.test(v)) return Number(v);
  return undefined;
}
const parseBool = (v: string): boolean | undefined => (v === 'Yes' ? true : v === 'No' ? false : undefined);
const yesNo = (b: boolean): string => (b ? 'Yes' : 'No');

/**
 * Build a policy from `params` overrides (config values are strings as in RFC 7143). Throws with a
 * message naming the key for a value an administrator got wrong (config time, not initiator input).
 */
export function buildPolicy(overrides: Record<string, string> = {}, where = 'target'): TargetParamPolicy {
  const p: TargetParamPolicy = { ...DEFAULT_POLICY, HeaderDigest: [...DEFAULT_POLICY.HeaderDigest], DataDigest: [...DEFAULT_POLICY.DataDigest] };
  for (const [key, value] of Object.entries(overrides)) {
    const def = KEY_DEFS[key];
    const bad = (why: string): never => {
      throw new Error(`iSCSI parameter ${key}=${value} for ${where}: ${why}`);
    };
    if (!def || def.security || !(key in p)) bad('not a configurable operational key');
    const rule = def!.rule;
    if (rule.kind === 'list') {
      const vals = value.split(',').map((s) => s.trim());
      if (!vals.length || vals.some((x) => !rule.values.includes(x))) bad(`expected a list of ${rule.values.join(', ')}`);
      (p as unknown as Record<string, unknown>)[key] = vals;
    } else if (rule.kind === 'bool-or' || rule.kind === 'bool-and') {
      const b = parseBool(value);
      if (b === undefined) bad('expected Yes or No');
      (p as unknown as Record<string, unknown>)[key] = b;
    } else if (rule.kind === 'min' || rule.kind === 'max' || rule.kind === 'declared-number') {
      const n = parseNumber(value);
      if (n === undefined || n < rule.lo || n > rule.hi) bad(`expected a number in ${rule.lo}..${rule.hi}`);
      (p as unknown as Record<string, unknown>)[key] = n;
    }
  }
  if (p.ErrorRecoveryLevel > 0) throw new Error(`iSCSI parameter ErrorRecoveryLevel for ${where}: only level 0 is implemented`);
  if (p.FirstBurstLength > p.MaxBurstLength) p.FirstBurstLength = p.MaxBurstLength;
  return p;
}

export interface NegotiationContext {
  discovery: boolean;
  leading: boolean;
  /** Login or Full Feature Phase (Text). */
  inLogin: boolean;
}

export type NegotiationOutcome =
  | { ok: true; responses: KeyValues }
  | { ok: false; error: string }; // protocol error: the login fails with an initiator error

/**
 * The target half of one negotiation exchange. Keeps the values agreed so far; `handle` answers one
 * PDU's worth of operational keys (security keys are left to the caller).
 */
export class ParamNegotiator {
  readonly values: OperationalParams = { ...RFC_DEFAULTS };
  /** Keys the initiator has offered (a key is negotiated once per login, §6.2). */
  private readonly seen = new Set<string>();
  private declaredOurMrdsl = false;

  constructor(
    readonly policy: TargetParamPolicy,
    /** Values inherited from the session for a non-leading connection. */
    inherited?: OperationalParams,
  ) {
    if (inherited) Object.assign(this.values, inherited, { HeaderDigest: false, DataDigest: false, MaxRecvDataSegmentLength: 8192 });
    this.values.TargetMaxRecvDataSegmentLength = policy.MaxRecvDataSegmentLength;
  }

  handle(pairs: KeyValues, ctx: NegotiationContext): NegotiationOutcome {
    const responses: KeyValues = [];
    for (const [key, value] of pairs) {
      const def = KEY_DEFS[key];
      if (!def) {
        responses.push([key, 'NotUnderstood']); // §6.2.1 (X- and X# keys included)
        continue;
      }
      if (def.security) continue;
      if (value === 'NotUnderstood' || value === 'Irrelevant' || value === 'Reject') continue; // answers to our offers
      if (def.loginOnly && !ctx.inLogin) return { ok: false, error: `key ${key} is only valid during login` };
      if (ctx.inLogin && ctx.discovery === false && def.leadingOnly && !ctx.leading && key !== 'InitiatorName' && key !== 'TargetName' && key !== 'SessionType') {
        // §13: leading-only keys on a secondary connection are a protocol error.
        if (def.rule.kind !== 'declarative') return { ok: false, error: `key ${key} may only be negotiated on the leading connection` };
      }
      if (ctx.inLogin && def.rule.kind !== 'declarative' && def.rule.kind !== 'declared-number') {
        if (this.seen.has(key)) return { ok: false, error: `key ${key} negotiated twice` };
        this.seen.add(key);
      }
      if (ctx.discovery && def.irrelevantInDiscovery) {
        responses.push([key, 'Irrelevant']);
        continue;
      }
      const answer = this.negotiate(key, value, def.rule);
      if (answer !== undefined) responses.push([key, answer]);
    }
    // FirstBurstLength is irrelevant when InitialR2T=Yes and ImmediateData=No (§13.14); its value is
    // bounded by MaxBurstLength regardless (§13.14: "MUST NOT exceed").
    if (this.values.FirstBurstLength > this.values.MaxBurstLength) this.values.FirstBurstLength = this.values.MaxBurstLength;
    return { ok: true, responses };
  }

  /** Our MaxRecvDataSegmentLength declaration, once per connection (§13.12). */
  ourDeclarations(): KeyValues {
    if (this.declaredOurMrdsl) return [];
    this.declaredOurMrdsl = true;
    return [['MaxRecvDataSegmentLength', String(this.policy.MaxRecvDataSegmentLength)]];
  }

  private negotiate(key: string, value: string, rule: Rule): string | undefined {
    const vals = this.values as unknown as Record<string, unknown>;
    const pol = this.policy as unknown as Record<string, unknown>;
    switch (rule.kind) {
      case 'reject':
        return 'Reject';
      case 'markers-off':
        return 'No';
      case 'declarative':
        return undefined;
      case 'declared-number': {
        const n = parseNumber(value);
        if (n === undefined || n < rule.lo || n > rule.hi) return 'Reject';
        vals[key] = n;
        return undefined;
      }
      case 'bool-or':
      case 'bool-and': {
        const b = parseBool(value);
        if (b === undefined) return 'Reject';
        const ours = pol[key] as boolean;
        const result = rule.kind === 'bool-or' ? b || ours : b && ours;
        vals[key] = result;
        return yesNo(result);
      }
      case 'min':
      case 'max': {
        const n = parseNumber(value);
        if (n === undefined || n < rule.lo || n > rule.hi) return 'Reject';
        const ours = pol[key] as number;
        const result = rule.kind === 'min' ? Math.min(n, ours) : Math.max(n, ours);
        vals[key] = result;
        return String(result);
      }
      case 'list': {
        const offered = value.split(',');
        const acceptable = key === 'HeaderDigest' || key === 'DataDigest' ? (pol[key] as string[]) : rule.values;
        // §6.2.1: the responder picks the first value of the offer that it supports.
        const pick = offered.find((o) => acceptable.includes(o));
        if (pick === undefined) return 'Reject';
        if (key === 'HeaderDigest' || key === 'DataDigest') vals[key] = pick === 'CRC32C';
        else vals[key] = pick;
        return pick;
      }
    }
  }
}
