/**
 * Task Management Function requests (RFC 7143 §11.5, RFC 7144 §4.3) mapped onto the core's SAM-5
 * functions, and the core's service responses mapped back to iSCSI response codes (§11.6.1).
 */
import { Buffer } from 'node:buffer';
import { TmfCode, TmfResponseCode } from './constants.js';
import type { TmfRequestPdu } from './pdu-misc.js';
import type { ScsiTask } from './scsi-task.js';
import type { IscsiSession } from './session.js';
import { INVALID_LUN, type TmfFunction, type TmfRequest, TmfResponse, type TmfResult } from '../vscsi/fabric.js';

export interface TmfOutcome {
  code: number;
  /** RFC 7144 §4.3.3: Additional Response Information for QUERY ASYNCHRONOUS EVENT (3 bytes). */
  additional?: Buffer;
}

const FUNCTIONS: Partial<Record<number, TmfFunction>> = {
  [TmfCode.ABORT_TASK]: 'ABORT_TASK',
  [TmfCode.ABORT_TASK_SET]: 'ABORT_TASK_SET',
  [TmfCode.CLEAR_ACA]: 'CLEAR_ACA',
  [TmfCode.CLEAR_TASK_SET]: 'CLEAR_TASK_SET',
  [TmfCode.LOGICAL_UNIT_RESET]: 'LOGICAL_UNIT_RESET',
  [TmfCode.TARGET_WARM_RESET]: 'TARGET_RESET',
  [TmfCode.TARGET_COLD_RESET]: 'TARGET_RESET',
  [TmfCode.QUERY_TASK]: 'QUERY_TASK',
  [TmfCode.QUERY_TASK_SET]: 'QUERY_TASK_SET',
  [TmfCode.I_T_NEXUS_RESET]: 'I_T_NEXUS_RESET',
  [TmfCode.QUERY_ASYNC_EVENT]: 'QUERY_ASYNCHRONOUS_EVENT',
};

const RESPONSE_CODES: Record<string, number> = {
  [TmfResponse.FUNCTION_COMPLETE]: TmfResponseCode.FUNCTION_COMPLETE,
  [TmfResponse.FUNCTION_SUCCEEDED]: TmfResponseCode.FUNCTION_SUCCEEDED,
  [TmfResponse.FUNCTION_REJECTED]: TmfResponseCode.FUNCTION_REJECTED,
  [TmfResponse.INCORRECT_LOGICAL_UNIT_NUMBER]: TmfResponseCode.LUN_DOES_NOT_EXIST,
  [TmfResponse.SERVICE_DELIVERY_OR_TARGET_FAILURE]: TmfResponseCode.FUNCTION_REJECTED,
};

/**
 * Decide what a TMF request means for this session: an immediate iSCSI answer, or the core request
 * plus the tasks whose pending data transfers it will abort.
 */
export function planTmf(t: TmfRequestPdu, lun: number, s: IscsiSession): TmfOutcome | { request: TmfRequest; aborting: ScsiTask[] } {
  // ErrorRecoveryLevel 0: tasks never outlive their connection, so there is nothing to reassign.
  if (t.fn === TmfCode.TASK_REASSIGN) return { code: TmfResponseCode.TASK_REASSIGNMENT_NOT_SUPPORTED };
  const fn = FUNCTIONS[t.fn];
  if (!fn) return { code: TmfResponseCode.TMF_NOT_SUPPORTED };
  const lunScoped = fn !== 'TARGET_RESET' && fn !== 'I_T_NEXUS_RESET';
  if (lunScoped && lun === INVALID_LUN) return { code: TmfResponseCode.LUN_DOES_NOT_EXIST };
  let referenced: ScsiTask | undefined;
  if (fn === 'ABORT_TASK' || fn === 'QUERY_TASK') {
    referenced = s.tasks.get(t.referencedTaskTag);
    if (!referenced || referenced.lun !== lun) {
      // §11.5.1: a task not received yet whose RefCmdSN is inside the window counts as aborted.
      if (fn === 'ABORT_TASK' && !referenced && s.inWindow(t.refCmdSn)) return { code: TmfResponseCode.FUNCTION_COMPLETE };
      return { code: TmfResponseCode.TASK_DOES_NOT_EXIST };
    }
  }
  const request: TmfRequest = { fn, lun: lunScoped ? lun : 0 };
  if (referenced) request.referencedTag = BigInt(t.referencedTaskTag);
  let aborting: ScsiTask[] = [];
  if (fn === 'ABORT_TASK') aborting = [referenced!];
  else if (fn === 'ABORT_TASK_SET' || fn === 'CLEAR_TASK_SET' || fn === 'LOGICAL_UNIT_RESET') aborting = [...s.tasks.values()].filter((x) => x.lun === lun);
  else if (!lunScoped) aborting = [...s.tasks.values()];
  return { request, aborting };
}

export function tmfOutcome(result: TmfResult): TmfOutcome {
  const out: TmfOutcome = { code: RESPONSE_CODES[result.response] ?? TmfResponseCode.FUNCTION_REJECTED };
  const a = result.additionalResponseInfo;
  if (a) out.additional = Buffer.from([(a.uaPending ? 0x10 : 0) | (a.senseKey & 0x0f), a.asc, a.ascq]);
  return out;
}
