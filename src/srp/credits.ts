/**
 * SRP request-limit (credit) accounting, target side (SRP r16a 5.5; srp.md §3).
 *
 * Every SRP_CMD and SRP_TSK_MGMT consumes one credit; each SRP_RSP returns one in req_lim_delta.
 * A request is retired exactly once - either answered (`respond`) or silently dropped after a task
 * management function (`suppress`) - so an abort can never credit twice. What a suppressed response
 * is worth depends on the initiator: the Linux IBM VIO client re-credits itself for every command it
 * completes locally, so returning that credit as well would inflate its limit; an initiator that
 * does not (ib_srp) needs the target to add it to a later response.
 */

import { InFlightTable } from '../vscsi/in-flight-table.js';

export type SuppressedCreditPolicy =
  /** The initiator re-credits itself for commands it completed without a response (Linux ibmvscsi). */
  | 'initiator-recredits'
  /** The target owes one credit per suppressed response and adds it to the next SRP_RSP (ib_srpt, ibmvscsis). */
  | 'target-returns';

export class CreditAccount {
  /** Requests holding a credit (a table, not a Set: no hash-table churn per command). */
  private readonly open = new InFlightTable<number, true>();
  private nextId = 1;
  private owed = 0;

  constructor(
    /** Request limit granted in LOGIN_RSP. */
    readonly limit: number,
    readonly policy: SuppressedCreditPolicy,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`SRP request limit must be >= 1, got ${limit}`);
  }

  /** Requests consumed and not yet retired. */
  get outstanding(): number {
    return this.open.size;
  }

  /**
   * A request arrived. Returns its credit id, or undefined when the initiator has exceeded the
   * request limit (a credit overrun: protocol violation).
   */
  consume(): number | undefined {
    if (this.open.size >= this.limit) return undefined;
    const id = this.nextId++;
    this.open.set(id, true);
    return id;
  }

  /** The request's response is being sent: returns the req_lim_delta to put in it (0 if already retired). */
  respond(id: number): number {
    if (!this.open.delete(id)) return 0;
    const delta = 1 + this.owed;
    this.owed = 0;
    return delta;
  }

  /** The request will never be answered (aborted without TAS, connection reset). */
  suppress(id: number): void {
    if (!this.open.delete(id)) return;
    if (this.policy === 'target-returns') this.owed++;
  }

  /** Forget everything (new login after a reset). */
  reset(): void {
    this.open.clear();
    this.owed = 0;
  }
}
