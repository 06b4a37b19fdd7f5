/**
 * The keys a target answers in a Full Feature Phase Text Request (RFC 7143 §6.1, §13.3, §13.12), the
 * same wherever the connection runs (the main thread or a connection thread).
 */
import type { OperationalParams } from './params.js';
import type { KeyValues } from './text-keys.js';

export interface TextAnswerContext {
  /** The session's type, or undefined before a session exists. */
  sessionType: 'Normal' | 'Discovery' | undefined;
  /** SendTargets=<value> for this initiator ("" = the normal session's own target). */
  sendTargets(value: string): KeyValues;
  /** The connection's parameters (MaxRecvDataSegmentLength may be declared again, §13.12). */
  params: OperationalParams;
}

export function answerTextKeys(pairs: KeyValues, ctx: TextAnswerContext): KeyValues {
  const out: KeyValues = [];
  for (const [key, value] of pairs) {
    if (key === 'SendTargets') {
      // §13.3: SendTargets=All is for discovery sessions; a normal session sees its own target.
      out.push(...ctx.sendTargets(ctx.sessionType === 'Normal' && value === 'All' ? '' : value));
    } else if (key === 'MaxRecvDataSegmentLength') {
      const n = Number(value);
      if (Number.isInteger(n) && n >= 512 && n <= 0xffffff) ctx.params.MaxRecvDataSegmentLength = n;
      else out.push([key, 'Reject']);
    } else if (key.startsWith('X-') || key.startsWith('X#')) {
      out.push([key, 'NotUnderstood']);
    } else {
      out.push([key, 'Irrelevant']);
    }
  }
  return out;
}
