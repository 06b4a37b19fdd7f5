/**
 * The login phase of one connection (RFC 7143 §6.3, §11.12, §11.13): stage transitions, security
 * negotiation with CHAP (chap.ts), operational negotiation (params.ts) and admission into a new or
 * existing session (through `LoginHost`, implemented by the server). One instance per connection; it
 * handles one Login Request at a time and returns the PDUs to send.
 */
import { Buffer } from 'node:buffer';
import { LoginStage, LoginStatus } from './constants.js';
import { type LoginRequestPdu, buildLoginResponse } from './pdu-login.js';
import type { OutPdu } from './pdu.js';
import { type KeyValues, decodeTextKeys, encodeTextKeys } from './text-keys.js';
import { type OperationalParams, ParamNegotiator, type TargetParamPolicy } from './params.js';
import { type ChapChallenge, decodeBinary, encodeHex, chapResponse, newChallenge, pickAlgorithm, verifyResponse } from './chap.js';
import type { ChapCredentials } from './server.js';

/** What the server tells login about the target an initiator asked for. */
export interface LoginTargetInfo {
  name: string;
  policy: TargetParamPolicy;
  allowed: boolean;
  chap?: ChapCredentials;
  mutualChap?: ChapCredentials;
  /** TPGT of the portal this connection arrived on serves this target. */
  servedOnPortal: boolean;
  alias?: string;
}

/** Facts about a completed negotiation handed to the server for admission. */
export interface LoginResult {
  sessionType: 'Normal' | 'Discovery';
  initiatorName: string;
  initiatorAlias?: string;
  targetName?: string;
  isid: Buffer;
  tsih: number;
  cid: number;
  /** CmdSN of the leading login request: the session's first ExpCmdSN. */
  cmdSn: number;
  params: OperationalParams;
  /** The CHAP user name the initiator authenticated as, if any. */
  authenticatedAs?: string;
}

export type AdmitResult =
  | { ok: true; tsih: number; expCmdSn: number; maxCmdSn: number }
  | { ok: false; status: number; message: string };

export interface LoginHost {
  readonly tpgt: number;
  readonly peerAddress: string;
  lookupTarget(name: string, initiatorName: string): LoginTargetInfo | undefined;
  discoveryAuth(): { policy: TargetParamPolicy; chap?: ChapCredentials; mutualChap?: ChapCredentials };
  /** Operational values of the session a secondary connection joins, or undefined if none. */
  existingSession(initiatorName: string, isid: Buffer, tsih: number, targetName: string | undefined): OperationalParams | undefined;
  /** Create, reinstate or join the session and return its TSIH and CmdSN window. */
  admit(result: LoginResult): Promise<AdmitResult>;
}

export interface LoginStep {
  responses: OutPdu[];
  /** 'continue': wait for the next Login Request; 'ffp': the connection is in Full Feature Phase; 'fail': close. */
  outcome: 'continue' | 'ffp' | 'fail';
  result?: LoginResult;
  failure?: { status: number; message: string };
}

type ChapState = 'none' | 'await-algorithm' | 'await-response' | 'done';

/** RFC 7143 §4.2.7.1/§4.2.7.2: iqn., eui. or naa. names of at most 223 bytes, no control characters. */
export function isIscsiName(name: string): boolean {
  return Buffer.byteLength(name) <= 223 && /^(iqn\.\d{4}-\d{2}\.[^\s\x00-\x1f]+|eui\.[0-9a-f]{16}|naa\.[0-9a-f]{16}([0-9a-f]{16})?)$/i.test(name);
}

/** Bound on accumulated login text across C-bit continuations. */
const MAX_LOGIN_TEXT = 65536;

export class LoginMachine {
  private stage: number = LoginStage.SECURITY_NEGOTIATION;
  private first = true;
  private isid = Buffer.alloc(6);
  private tsih = 0;
  private cid = 0;
  private cmdSn = 0;
  private initiatorName = '';
  private initiatorAlias: string | undefined;
  private sessionType: 'Normal' | 'Discovery' = 'Normal';
  private targetName: string | undefined;
  private negotiator: ParamNegotiator | undefined;
  private authRequired = false;
  private chap: ChapCredentials | undefined;
  private mutualChap: ChapCredentials | undefined;
  private chapState: ChapState = 'none';
  private challenge: ChapChallenge | undefined;
  private authenticatedAs: string | undefined;
  private pendingText: Buffer[] = [];
  private pendingTextLength = 0;
  private statSn: number;

  constructor(
    private readonly host: LoginHost,
    initialStatSn: number,
  ) {
    this.statSn = initialStatSn >>> 0;
  }

  /** The StatSN the connection continues with after login. */
  get nextStatSn(): number {
    return this.statSn;
  }

  async handle(req: LoginRequestPdu): Promise<LoginStep> {
    if (this.first) {
      // §11.12.4: the only version is 0.
      if (req.versionMin > 0) return this.fail(req, LoginStatus.UNSUPPORTED_VERSION, `initiator requires iSCSI version >= ${req.versionMin}`);
      if (req.csg !== LoginStage.SECURITY_NEGOTIATION && req.csg !== LoginStage.OPERATIONAL_NEGOTIATION) {
        return this.fail(req, LoginStatus.INITIATOR_ERROR, `first login request in stage ${req.csg}`);
      }
      this.stage = req.csg;
      req.isid.copy(this.isid);
      this.tsih = req.tsih;
      this.cid = req.cid;
      this.cmdSn = req.cmdSn;
    } else if (!req.isid.equals(this.isid) || req.tsih !== this.tsih || req.cid !== this.cid) {
      return this.fail(req, LoginStatus.INITIATOR_ERROR, 'ISID, TSIH or CID changed during login');
    }
    if (req.csg !== this.stage || req.csg === 2 || (req.transit && (req.nsg <= req.csg || req.nsg === 2))) {
      return this.fail(req, LoginStatus.INITIATOR_ERROR, `invalid login stage transition CSG=${req.csg} NSG=${req.nsg} (current stage ${this.stage})`);
    }
    if (this.pendingTextLength + req.data.length > MAX_LOGIN_TEXT) {
      return this.fail(req, LoginStatus.OUT_OF_RESOURCES, `login text exceeds ${MAX_LOGIN_TEXT} bytes`);
    }
    this.pendingText.push(Buffer.from(req.data));
    this.pendingTextLength += req.data.length;
    if (req.cont) {
      // §6.3: the target answers a continued Login Request with an empty response.
      if (req.transit) return this.fail(req, LoginStatus.INITIATOR_ERROR, 'both C and T bits set in a login request');
      return { responses: [this.response(req, false, [])], outcome: 'continue' };
    }
    const text = Buffer.concat(this.pendingText);
    this.pendingText = [];
    this.pendingTextLength = 0;
    const decoded = decodeTextKeys(text);
    if (!decoded.ok) return this.fail(req, LoginStatus.INITIATOR_ERROR, `malformed login text: ${decoded.error}`);
    const keys = new Map<string, string>();
    for (const [key, value] of decoded.pairs) keys.set(key, value);

    const answers: KeyValues = [];
    if (this.first) {
      this.first = false;
      const err = this.start(keys, answers);
      if (err) return this.fail(req, err.status, err.message);
      if (this.authRequired && this.stage !== LoginStage.SECURITY_NEGOTIATION) {
        return this.fail(req, LoginStatus.AUTHENTICATION_FAILURE, 'authentication required: login must start in the security stage');
      }
    }

    // Security stage: AuthMethod and CHAP.
    if (this.stage === LoginStage.SECURITY_NEGOTIATION) {
      const err = this.security(keys, answers);
      if (err) return this.fail(req, err.status, err.message);
    } else {
      for (const key of keys.keys()) {
        if (key === 'AuthMethod' || key.startsWith('CHAP_')) {
          return this.fail(req, LoginStatus.INITIATOR_ERROR, `security key ${key} in the operational stage`);
        }
      }
    }

    // Operational keys may appear in either stage once the initiator is known.
    const neg = this.negotiator!;
    const outcome = neg.handle(decoded.pairs, { discovery: this.sessionType === 'Discovery', leading: this.tsih === 0, inLogin: true });
    if (!outcome.ok) return this.fail(req, LoginStatus.INITIATOR_ERROR, outcome.error);
    answers.push(...outcome.responses);
    if (this.stage === LoginStage.OPERATIONAL_NEGOTIATION || (req.transit && req.nsg === LoginStage.FULL_FEATURE_PHASE)) {
      answers.push(...neg.ourDeclarations());
    }

    let transit = req.transit;
    if (this.stage === LoginStage.SECURITY_NEGOTIATION && this.authRequired && this.chapState !== 'done') transit = false;
    if (!transit) return { responses: [this.response(req, false, answers)], outcome: 'continue' };

    if (req.nsg === LoginStage.FULL_FEATURE_PHASE) {
      if (this.stage === LoginStage.SECURITY_NEGOTIATION && this.authRequired && this.chapState !== 'done') {
        return this.fail(req, LoginStatus.AUTHENTICATION_FAILURE, 'authentication required');
      }
      const result: LoginResult = {
        sessionType: this.sessionType,
        initiatorName: this.initiatorName,
        isid: Buffer.from(this.isid),
        tsih: this.tsih,
        cid: this.cid,
        cmdSn: this.cmdSn,
        params: { ...neg.values },
      };
      if (this.initiatorAlias !== undefined) result.initiatorAlias = this.initiatorAlias;
      if (this.targetName !== undefined) result.targetName = this.targetName;
      if (this.authenticatedAs !== undefined) result.authenticatedAs = this.authenticatedAs;
      const admitted = await this.host.admit(result);
      if (!admitted.ok) return this.fail(req, admitted.status, admitted.message);
      this.tsih = admitted.tsih;
      result.tsih = admitted.tsih;
      const resp = this.response(req, true, answers, { expCmdSn: admitted.expCmdSn, maxCmdSn: admitted.maxCmdSn });
      this.stage = LoginStage.FULL_FEATURE_PHASE;
      return { responses: [resp], outcome: 'ffp', result };
    }
    const resp = this.response(req, true, answers);
    this.stage = req.nsg;
    return { responses: [resp], outcome: 'continue' };
  }

  /** First Login Request: identify initiator, session type and target; decide on authentication. */
  private start(keys: Map<string, string>, answers: KeyValues): { status: number; message: string } | undefined {
    const initiatorName = keys.get('InitiatorName');
    if (!initiatorName) return { status: LoginStatus.MISSING_PARAMETER, message: 'InitiatorName missing from the first login request' };
    if (!isIscsiName(initiatorName)) return { status: LoginStatus.INITIATOR_ERROR, message: 'InitiatorName is not a valid iSCSI name (iqn., eui. or naa., at most 223 bytes)' };
    this.initiatorName = initiatorName;
    const alias = keys.get('InitiatorAlias');
    if (alias !== undefined) this.initiatorAlias = alias;
    const st = keys.get('SessionType') ?? 'Normal';
    if (st !== 'Normal' && st !== 'Discovery') return { status: LoginStatus.SESSION_TYPE_NOT_SUPPORTED, message: `SessionType ${st} not supported` };
    this.sessionType = st;
    let policy: TargetParamPolicy;
    if (st === 'Discovery') {
      if (this.tsih !== 0) return { status: LoginStatus.CANT_INCLUDE_IN_SESSION, message: 'discovery sessions take one connection' };
      const d = this.host.discoveryAuth();
      policy = d.policy;
      this.chap = d.chap;
      this.mutualChap = d.mutualChap;
    } else {
      const targetName = keys.get('TargetName');
      if (!targetName) return { status: LoginStatus.MISSING_PARAMETER, message: 'TargetName missing from a normal session login' };
      this.targetName = targetName;
      const t = this.host.lookupTarget(targetName, initiatorName);
      if (!t || !t.servedOnPortal) return { status: LoginStatus.NOT_FOUND, message: `target ${targetName} not found on this portal group` };
      if (!t.allowed) return { status: LoginStatus.AUTHORIZATION_FAILURE, message: `initiator not allowed to log in to target ${targetName}` };
      this.targetName = t.name;
      policy = t.policy;
      this.chap = t.chap;
      this.mutualChap = t.mutualChap;
      answers.push(['TargetPortalGroupTag', String(this.host.tpgt)]);
      if (t.alias) answers.push(['TargetAlias', t.alias]);
    }
    this.authRequired = this.chap !== undefined;
    let inherited: OperationalParams | undefined;
    if (this.tsih !== 0) {
      inherited = this.host.existingSession(initiatorName, this.isid, this.tsih, this.targetName);
      if (!inherited) return { status: LoginStatus.SESSION_DOES_NOT_EXIST, message: `no session with TSIH ${this.tsih} for this initiator` };
    }
    this.negotiator = new ParamNegotiator(policy, inherited);
    return undefined;
  }

  private security(keys: Map<string, string>, answers: KeyValues): { status: number; message: string } | undefined {
    const authFail = (message: string) => ({ status: LoginStatus.AUTHENTICATION_FAILURE, message });
    const method = keys.get('AuthMethod');
    if (method !== undefined) {
      const offered = method.split(',');
      if (this.authRequired) {
        if (!offered.includes('CHAP')) return authFail('CHAP authentication required but not offered');
        answers.push(['AuthMethod', 'CHAP']);
        this.chapState = 'await-algorithm';
      } else if (offered.includes('None')) {
        answers.push(['AuthMethod', 'None']);
      } else {
        return authFail(`no authentication configured, and the initiator offered only ${method}`);
      }
    }
    if (keys.has('CHAP_A')) {
      if (this.chapState !== 'await-algorithm') return authFail('CHAP_A out of sequence');
      const alg = pickAlgorithm(keys.get('CHAP_A')!);
      if (alg === undefined) return authFail(`no supported CHAP algorithm in CHAP_A=${keys.get('CHAP_A')}`);
      this.challenge = newChallenge(alg);
      answers.push(['CHAP_A', String(alg)], ['CHAP_I', String(this.challenge.id)], ['CHAP_C', encodeHex(this.challenge.challenge)]);
      this.chapState = 'await-response';
    }
    if (keys.has('CHAP_N') || keys.has('CHAP_R')) {
      if (this.chapState !== 'await-response' || !this.challenge || !this.chap) return authFail('CHAP response out of sequence');
      const name = keys.get('CHAP_N');
      const resp = decodeBinary(keys.get('CHAP_R') ?? '');
      if (name === undefined || !resp) return authFail('CHAP_N or CHAP_R missing or malformed');
      if (name !== this.chap.user || !verifyResponse(this.challenge, this.chap.secret, resp)) {
        return authFail(`CHAP authentication failed for user name ${JSON.stringify(name)}`);
      }
      this.authenticatedAs = name;
      const ci = keys.get('CHAP_I');
      const cc = keys.get('CHAP_C');
      if (ci !== undefined || cc !== undefined) {
        if (!this.mutualChap) return authFail('initiator asked for mutual CHAP but the target has no mutual credentials');
        const id = Number(ci);
        const challenge = decodeBinary(cc ?? '');
        if (!Number.isInteger(id) || id < 0 || id > 255 || !challenge || challenge.length === 0 || challenge.length > 1024) {
          return authFail('malformed mutual CHAP_I/CHAP_C');
        }
        // §12.1.3: a challenge equal to ours is a reflection attack.
        if (challenge.equals(this.challenge.challenge)) return authFail('mutual CHAP challenge reflects the target challenge');
        answers.push(['CHAP_N', this.mutualChap.user], ['CHAP_R', encodeHex(chapResponse(this.challenge.algorithm, id, this.mutualChap.secret, challenge))]);
      } else if (this.mutualChap) {
        return authFail('target requires mutual CHAP but the initiator did not challenge');
      }
      this.chapState = 'done';
    }
    return undefined;
  }

  private response(
    req: LoginRequestPdu,
    transit: boolean,
    answers: KeyValues,
    window?: { expCmdSn: number; maxCmdSn: number },
    status: number = LoginStatus.SUCCESS,
  ): OutPdu {
    const expCmdSn = window?.expCmdSn ?? this.cmdSn;
    const maxCmdSn = window?.maxCmdSn ?? this.cmdSn;
    const pdu = buildLoginResponse(
      {
        transit,
        cont: false,
        csg: req.csg,
        nsg: transit ? req.nsg : 0,
        isid: this.isid,
        tsih: transit && req.nsg === LoginStage.FULL_FEATURE_PHASE ? this.tsih : status === LoginStatus.SUCCESS ? this.tsih : 0,
        itt: req.itt,
        seq: { statSn: this.statSn, expCmdSn, maxCmdSn },
        status,
      },
      encodeTextKeys(answers),
    );
    this.statSn = (this.statSn + 1) >>> 0;
    return pdu;
  }

  private fail(req: LoginRequestPdu, status: number, message: string): LoginStep {
    const resp = this.response({ ...req, csg: this.stage === LoginStage.FULL_FEATURE_PHASE ? 0 : req.csg }, false, [], undefined, status);
    return { responses: [resp], outcome: 'fail', failure: { status, message } };
  }
}
