/**
 * What command handlers and task management need from the core beyond their own nexus and LU:
 * the other nexuses that see an LU (for unit attentions, TAS and reservation effects) and identity.
 */
import type { LogicalUnit } from './logical-unit.js';
import type { NexusImpl } from './nexus.js';
import type { ReasonName } from './sense.js';

export interface CoreServices {
  readonly vendor: string;
  readonly product: string;
  /** Every open nexus that sees `lu`, with the LUN numbers it sees it at. */
  nexusesOf(lu: LogicalUnit): Array<{ nexus: NexusImpl; luns: number[] }>;
  /** Establish a unit attention for `lu` on every nexus that sees it, except `except`. */
  unitAttention(lu: LogicalUnit, reason: ReasonName, except?: NexusImpl): void;
  /** Slot 0 counts the commands submitted on every nexus, slot 1 those in flight (`ScsiCoreOptions.commandCounter`). */
  readonly commandCounter?: Float64Array;
}
