/**
 * PERSISTENT RESERVE IN/OUT (SPC-4 6.16, 6.17) and RESERVE/RELEASE(6/10) (SPC-2 7.21-7.24): the core
 * side. The reservation state machine lives in ./pr/; here we fetch the parameter list, bound the
 * returned data by the allocation length, and carry out the effects on other nexuses (unit attentions,
 * PREEMPT AND ABORT task aborts).
 */
import { check, good, isFailure, type CommandContext, type CommandOutcome, type CommandSpec } from './command.js';
import { u16, u32 } from './cdb.js';
import type { PrEffect, PrOutcome } from './reservation-port.js';
import type { CoreServices } from './core-services.js';
import type { LogicalUnit } from './logical-unit.js';
import type { NexusImpl } from './nexus.js';
import { failure } from './sense.js';
import { abortTasksOfUnit } from './tmf.js';

export const Opcode = {
  RESERVE_6: 0x16,
  RELEASE_6: 0x17,
  RESERVE_10: 0x56,
  RELEASE_10: 0x57,
  PERSISTENT_RESERVE_IN: 0x5e,
  PERSISTENT_RESERVE_OUT: 0x5f,
} as const;

/** Without a reservation manager these commands do not exist on the LU. */
const unsupported = (): CommandOutcome =>
  check(failure('INVALID_COMMAND_OPERATION_CODE', { field: { inCdb: true, byte: 0 } }));

/** Carry out reservation effects on the nexuses that see `lu` (unit attentions, PREEMPT AND ABORT). */
export async function applyPrEffects(
  services: CoreServices,
  lu: LogicalUnit,
  effects: readonly PrEffect[],
  requester?: NexusImpl,
): Promise<void> {
  for (const e of effects) {
    const keys = new Set(e.nexusKeys);
    if (e.kind === 'unitAttention') {
      for (const { nexus, luns } of services.nexusesOf(lu)) {
        if (!keys.has(nexus.prInitiator.key)) continue;
        for (const l of luns) nexus.addUnitAttention(l, e.reason);
      }
    } else {
      // PREEMPT AND ABORT (SPC-4 5.12.11.2.6): the preempted nexuses' tasks go as for CLEAR TASK SET.
      await abortTasksOfUnit(services, requester, lu, (n) => keys.has(n.prInitiator.key));
    }
  }
}

async function applyOutcome(ctx: CommandContext, out: PrOutcome, alloc?: number): Promise<CommandOutcome> {
  if (out.kind === 'conflict') return { kind: 'conflict' };
  if (out.kind === 'check') return check(out.failure);
  await applyPrEffects(ctx.services, ctx.unit, out.effects, ctx.nexus);
  if (out.data && alloc !== undefined) return ctx.dataIn(out.data, alloc);
  return good();
}

function persistentReserveIn(ctx: CommandContext) {
  const r = ctx.unit.reservations;
  if (!r) return unsupported();
  return applyOutcome(ctx, r.persistentReserveIn(ctx.nexus.prInitiator, ctx.cdb), u16(ctx.cdb, 7));
}

async function persistentReserveOut(ctx: CommandContext) {
  const r = ctx.unit.reservations;
  if (!r) return unsupported();
  const length = u32(ctx.cdb, 5);
  const params = await ctx.dataOut(length, 'parameters', 5);
  if (isFailure(params)) return check(params);
  if (ctx.aborted) return good();
  return applyOutcome(ctx, await r.persistentReserveOut(ctx.nexus.prInitiator, ctx.cdb, params));
}

function reserveRelease(ctx: CommandContext, reserve: boolean) {
  const r = ctx.unit.reservations;
  if (!r) return unsupported();
  const p = ctx.nexus.prInitiator;
  return applyOutcome(ctx, reserve ? r.reserve(p, ctx.cdb) : r.release(p, ctx.cdb));
}

const prIn = (sa: number, name: string): CommandSpec => ({
  name: `PERSISTENT RESERVE IN / ${name}`,
  opcode: Opcode.PERSISTENT_RESERVE_IN,
  serviceAction: sa,
  usage: [0x5e, 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00],
  cls: 'other',
  run: persistentReserveIn,
});
const prOut = (sa: number, name: string): CommandSpec => ({
  name: `PERSISTENT RESERVE OUT / ${name}`,
  opcode: Opcode.PERSISTENT_RESERVE_OUT,
  serviceAction: sa,
  usage: [0x5f, 0x1f, 0xff, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00],
  cls: 'other',
  timeoutSeconds: 30,
  run: persistentReserveOut,
});

export const reservationCommands: CommandSpec[] = [
  { name: 'RESERVE(6)', opcode: Opcode.RESERVE_6, usage: [0x16, 0, 0, 0, 0, 0], cls: 'other', run: (c) => reserveRelease(c, true) },
  { name: 'RELEASE(6)', opcode: Opcode.RELEASE_6, usage: [0x17, 0, 0, 0, 0, 0], cls: 'other', run: (c) => reserveRelease(c, false) },
  {
    name: 'RESERVE(10)',
    opcode: Opcode.RESERVE_10,
    usage: [0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    cls: 'other',
    run: (c) => reserveRelease(c, true),
  },
  {
    name: 'RELEASE(10)',
    opcode: Opcode.RELEASE_10,
    usage: [0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    cls: 'other',
    run: (c) => reserveRelease(c, false),
  },
  prIn(0x00, 'READ KEYS'),
  prIn(0x01, 'READ RESERVATION'),
  prIn(0x02, 'REPORT CAPABILITIES'),
  prIn(0x03, 'READ FULL STATUS'),
  prOut(0x00, 'REGISTER'),
  prOut(0x01, 'RESERVE'),
  prOut(0x02, 'RELEASE'),
  prOut(0x03, 'CLEAR'),
  prOut(0x04, 'PREEMPT'),
  prOut(0x05, 'PREEMPT AND ABORT'),
  prOut(0x06, 'REGISTER AND IGNORE EXISTING KEY'),
  prOut(0x07, 'REGISTER AND MOVE'),
];
