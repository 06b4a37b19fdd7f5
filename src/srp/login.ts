/**
 * SRP login negotiation (SRP r16a 6.2-6.4): the checks real targets make, in the order ibmvscsis
 * makes them (srp.md §4), producing either an SRP_LOGIN_RSP or an SRP_LOGIN_REJ with the reason.
 */
import { SrpBufFormat } from './iu-common.js';
import {
  LoginRejectReason,
  MultiChannelAction,
  MultiChannelResult,
  type SrpLoginRej,
  type SrpLoginReq,
  type SrpLoginRsp,
} from './iu-login.js';

export interface LoginPolicy {
  /** Largest initiator-to-target IU accepted (VIO: 256, the client's IU slot). */
  maxItIuLen: number;
  /** Largest target-to-initiator IU this target sends. */
  maxTiIuLen: number;
  /** Credits granted in LOGIN_RSP. */
  requestLimit: number;
  /** Descriptor formats supported (SRP_BUF_FORMAT_* bits). */
  bufFmt: number;
  /** Accept MULTI-CHANNEL ACTION 1 (keep other channels). VIO has a single channel per adapter. */
  multiChannel: boolean;
  /**
   * Refuse port identifiers with a non-zero id_extension (first 8 bytes) - ibmvscsis does, since a VIO
   * adapter pair has no port identifiers.
   */
  requireZeroIdExtension: boolean;
}

/** Smallest IU an initiator must be able to send: the login request itself. */
export const SRP_MIN_IT_IU_LEN = 64;

export type LoginDecision =
  | { accept: true; rsp: SrpLoginRsp }
  | { accept: false; rej: SrpLoginRej; why: string };

export interface LoginContext {
  /** This channel is already logged in. */
  loggedIn: boolean;
  /** Other channels of the same I_T nexus that a single-channel login would terminate. */
  otherChannels: number;
}

export function negotiateLogin(req: SrpLoginReq, policy: LoginPolicy, ctx: LoginContext): LoginDecision {
  const reject = (reason: LoginRejectReason, why: string): LoginDecision => ({
    accept: false,
    rej: { tag: req.tag, reason, bufFmt: policy.bufFmt },
    why,
  });
  if (req.reqItIuLen > policy.maxItIuLen) {
    return reject(
      LoginRejectReason.REQ_IT_IU_LENGTH_TOO_LARGE,
      `requested IU length ${req.reqItIuLen} exceeds the target's ${policy.maxItIuLen}`,
    );
  }
  if (req.reqItIuLen < SRP_MIN_IT_IU_LEN) {
    return reject(LoginRejectReason.UNABLE_ESTABLISH_CHANNEL, `requested IU length ${req.reqItIuLen} is below ${SRP_MIN_IT_IU_LEN}`);
  }
  if (
    policy.requireZeroIdExtension &&
    (req.initiatorPortId.readBigUInt64BE(0) !== 0n || req.targetPortId.readBigUInt64BE(0) !== 0n)
  ) {
    return reject(LoginRejectReason.UNABLE_ASSOCIATE_CHANNEL, 'port identifier id_extension must be zero on this transport');
  }
  const action = req.reqFlags & 0x03;
  if (action === MultiChannelAction.MULTI && !policy.multiChannel) {
    return reject(LoginRejectReason.MULTI_CHANNEL_UNSUPPORTED, 'multi-channel login requested but not supported');
  }
  if (action > MultiChannelAction.MULTI) {
    return reject(LoginRejectReason.UNABLE_ESTABLISH_CHANNEL, `MULTI-CHANNEL ACTION ${action} is reserved`);
  }
  const wanted = req.reqBufFmt & 0xff;
  const supported = SrpBufFormat.DIRECT | SrpBufFormat.INDIRECT;
  if ((wanted & ~supported) !== 0 || (wanted & policy.bufFmt) === 0) {
    return reject(
      LoginRejectReason.UNSUPPORTED_DESCRIPTOR_FMT,
      `descriptor formats 0x${req.reqBufFmt.toString(16)} not supported (target supports 0x${policy.bufFmt.toString(16)})`,
    );
  }
  if (ctx.loggedIn) return reject(LoginRejectReason.CHANNEL_LIMIT_REACHED, 'channel is already logged in');
  let rspFlags: number = MultiChannelResult.NO_EXISTING;
  if (ctx.otherChannels > 0) {
    rspFlags = action === MultiChannelAction.MULTI ? MultiChannelResult.MAINTAINED : MultiChannelResult.TERMINATED;
  }
  return {
    accept: true,
    rsp: {
      tag: req.tag,
      reqLimDelta: policy.requestLimit,
      maxItIuLen: policy.maxItIuLen,
      maxTiIuLen: policy.maxTiIuLen,
      bufFmt: policy.bufFmt,
      rspFlags,
    },
  };
}
