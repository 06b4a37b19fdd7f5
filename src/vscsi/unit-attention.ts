/**
 * Unit attention conditions of one I_T_L nexus (SAM-5 5.14). Conditions are reported oldest first;
 * a power on / reset condition supersedes the others (SAM-5 5.14: they may be cleared by it), and the
 * queue is bounded so a storm of changes cannot grow memory without limit.
 */
import type { ReasonName } from './sense.js';

const MAX_PENDING = 16;

/** Reset-class conditions that make older pending conditions redundant. */
const RESET_REASONS: ReadonlySet<ReasonName> = new Set<ReasonName>([
  'POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED',
  'POWER_ON_OCCURRED',
  'BUS_DEVICE_RESET_FUNCTION_OCCURRED',
  'I_T_NEXUS_LOSS_OCCURRED',
]);

export class UnitAttentionQueue {
  private readonly pending: ReasonName[] = [];

  add(reason: ReasonName): void {
    if (RESET_REASONS.has(reason)) {
      this.pending.length = 0;
      this.pending.push(reason);
      return;
    }
    if (this.pending.includes(reason)) return;
    if (this.pending.length >= MAX_PENDING) {
      // SAM-5 5.14: when conditions are lost, report the generic "device server changed" condition.
      this.pending.splice(1);
      return;
    }
    this.pending.push(reason);
  }

  peek(): ReasonName | undefined {
    return this.pending[0];
  }

  take(): ReasonName | undefined {
    return this.pending.shift();
  }

  /** Remove one specific condition (REPORT LUNS clears REPORTED LUNS DATA HAS CHANGED, SPC-4 6.33). */
  remove(reason: ReasonName): void {
    const i = this.pending.indexOf(reason);
    if (i >= 0) this.pending.splice(i, 1);
  }

  get size(): number {
    return this.pending.length;
  }

  clear(): void {
    this.pending.length = 0;
  }
}
