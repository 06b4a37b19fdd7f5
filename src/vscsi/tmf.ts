/**
 * Task management functions (SAM-5 7). Aborted commands never complete to the initiator after the
 * TMF response: every function here waits until the commands it aborted can no longer complete or
 * touch the medium before answering.
 */
import { TmfFunction, TmfResponse, type TmfRequest, type TmfResult } from './fabric.js';
import type { LogicalUnit } from './logical-unit.js';
import type { ActiveCommand, NexusImpl } from './nexus.js';
import { Reason, type ReasonName } from './sense.js';
import type { CoreServices } from './core-services.js';

const result = (response: TmfResponse): TmfResult => ({ response });

/**
 * Abort every task of `lu` (CLEAR TASK SET, LOGICAL UNIT RESET, PREEMPT AND ABORT): the requester's
 * silently; other nexuses' with TASK ABORTED status when TAS=1, otherwise silently with a COMMANDS
 * CLEARED BY ANOTHER INITIATOR unit attention (SAM-5 5.6, SPC-4 7.5.8).
 */
export async function abortTasksOfUnit(
  owner: CoreServices,
  requester: NexusImpl | undefined,
  lu: LogicalUnit,
  only?: (n: NexusImpl) => boolean,
): Promise<void> {
  const waits: Promise<void>[] = [];
  for (const { nexus, luns } of owner.nexusesOf(lu)) {
    if (only && !only(nexus)) continue;
    const cmds = nexus.commandsFor(lu);
    if (cmds.length === 0) continue;
    if (nexus === requester) {
      for (const c of cmds) waits.push(nexus.abortCommand(c, 'silent'));
    } else if (lu.mode.tas) {
      for (const c of cmds) waits.push(nexus.abortCommand(c, 'taskAborted'));
    } else {
      for (const c of cmds) waits.push(nexus.abortCommand(c, 'silent'));
      for (const l of luns) nexus.addUnitAttention(l, 'COMMANDS_CLEARED_BY_ANOTHER_INITIATOR');
    }
  }
  await Promise.all(waits);
}

/** SAM-5 7.7 LOGICAL UNIT RESET: abort all tasks, drop RESERVE(6)-style and PREVENT state, UA 29/03. */
export async function resetLogicalUnit(
  requester: NexusImpl,
  lu: LogicalUnit,
  reason: ReasonName = 'BUS_DEVICE_RESET_FUNCTION_OCCURRED',
): Promise<void> {
  await abortTasksOfUnit(requester.owner, requester, lu);
  lu.preventers.clear();
  lu.reservations?.onLogicalUnitReset();
  for (const { nexus, luns } of requester.owner.nexusesOf(lu)) {
    for (const l of luns) nexus.addUnitAttention(l, reason);
  }
}

function unitsOfTarget(n: NexusImpl): Set<LogicalUnit> {
  const units = new Set<LogicalUnit>();
  for (const [, lu] of n.target.luns.entries()) units.add(lu);
  for (const other of n.target.nexuses() as NexusImpl[]) for (const [, lu] of other.lunMap.entries()) units.add(lu);
  for (const [, lu] of n.lunMap.entries()) units.add(lu);
  return units;
}

export async function handleTaskManagement(nexus: NexusImpl, req: TmfRequest): Promise<TmfResult> {
  try {
    return await dispatch(nexus, req);
  } catch (err) {
    nexus.logger?.error({ err, fn: req.fn }, 'task management function failed');
    return result(TmfResponse.SERVICE_DELIVERY_OR_TARGET_FAILURE);
  }
}

async function dispatch(nexus: NexusImpl, req: TmfRequest): Promise<TmfResult> {
  if (nexus.isClosed) return result(TmfResponse.FUNCTION_REJECTED);
  switch (req.fn) {
    case TmfFunction.I_T_NEXUS_RESET: {
      await Promise.all([...nexus.active.values()].map((c) => nexus.abortCommand(c, 'silent')));
      nexus.clearUnitAttentions();
      nexus.owner.nexusLoss(nexus);
      for (const lun of nexus.lunNumbers()) nexus.addUnitAttention(lun, 'I_T_NEXUS_LOSS_OCCURRED');
      return result(TmfResponse.FUNCTION_COMPLETE);
    }
    case TmfFunction.TARGET_RESET: {
      // A target reset is a reset of the whole device: the generic reset condition (29/00).
      for (const lu of unitsOfTarget(nexus)) await resetLogicalUnit(nexus, lu, 'POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED');
      return result(TmfResponse.FUNCTION_COMPLETE);
    }
    default:
      break;
  }
  const lu = nexus.unitAt(req.lun);
  if (!lu) return result(TmfResponse.INCORRECT_LOGICAL_UNIT_NUMBER);
  const mine = (): ActiveCommand[] => nexus.commandsFor(lu).filter((c) => c.lun === req.lun);
  switch (req.fn) {
    case TmfFunction.ABORT_TASK: {
      const cmd = req.referencedTag === undefined ? undefined : nexus.active.get(req.referencedTag);
      if (cmd && cmd.lu === lu && cmd.state !== 'done') await nexus.abortCommand(cmd, 'silent');
      return result(TmfResponse.FUNCTION_COMPLETE);
    }
    case TmfFunction.ABORT_TASK_SET:
      await Promise.all(mine().map((c) => nexus.abortCommand(c, 'silent')));
      return result(TmfResponse.FUNCTION_COMPLETE);
    case TmfFunction.CLEAR_TASK_SET:
      await abortTasksOfUnit(nexus.owner, nexus, lu);
      return result(TmfResponse.FUNCTION_COMPLETE);
    case TmfFunction.LOGICAL_UNIT_RESET:
      await resetLogicalUnit(nexus, lu);
      return result(TmfResponse.FUNCTION_COMPLETE);
    case TmfFunction.QUERY_TASK: {
      const cmd = req.referencedTag === undefined ? undefined : nexus.active.get(req.referencedTag);
      const present = cmd !== undefined && cmd.lu === lu && cmd.state !== 'done' && !cmd.abortMode;
      return result(present ? TmfResponse.FUNCTION_SUCCEEDED : TmfResponse.FUNCTION_COMPLETE);
    }
    case TmfFunction.QUERY_TASK_SET:
      return result(mine().some((c) => !c.abortMode) ? TmfResponse.FUNCTION_SUCCEEDED : TmfResponse.FUNCTION_COMPLETE);
    case TmfFunction.QUERY_ASYNCHRONOUS_EVENT: {
      const reason = nexus.unitAttentions(req.lun)?.peek();
      if (!reason) return result(TmfResponse.FUNCTION_COMPLETE);
      const code = Reason[reason];
      return {
        response: TmfResponse.FUNCTION_SUCCEEDED,
        additionalResponseInfo: { senseKey: code.key, asc: code.asc, ascq: code.ascq, uaPending: true },
      };
    }
    case TmfFunction.CLEAR_ACA:
      // NACA=1 is rejected, so there is never an ACA condition to clear.
      return result(TmfResponse.FUNCTION_REJECTED);
    default:
      return result(TmfResponse.FUNCTION_REJECTED);
  }
}
