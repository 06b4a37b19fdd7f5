/**
 * The task set of one logical unit (SAM-5 8.6, queue algorithm modifier 0 semantics for ordering):
 * HEAD OF QUEUE tasks start at once and go to the head; ORDERED tasks start when every older task has
 * finished; SIMPLE tasks start when no older ORDERED or HEAD OF QUEUE task is still in the set.
 *
 * Almost every command is SIMPLE, and with many sessions a shared LU holds thousands of tasks, so the
 * ordering scan only runs while an ORDERED or HEAD OF QUEUE task is present or a task is waiting: a
 * SIMPLE task among SIMPLE tasks starts at once. Entries stay in a plain array (no per-entry map or
 * node: identity-hashed keys cost more than the removal scan, which finds old tasks near the front).
 */
import { TaskAttribute } from './fabric.js';

export interface TaskSetEntry {
  readonly nexusId: number;
  readonly tag: bigint;
  readonly attribute: TaskAttribute;
  state: 'waiting' | 'running';
  /** Called once, when the task becomes enabled. */
  start(): void;
}

const blocks = (e: TaskSetEntry): boolean => e.attribute === TaskAttribute.ORDERED || e.attribute === TaskAttribute.HEAD_OF_QUEUE;

export class TaskSet {
  private entries: TaskSetEntry[] = [];
  /** ORDERED and HEAD OF QUEUE tasks in the set: while 0, no SIMPLE task can be held back. */
  private blockers = 0;
  /** Tasks in the set not yet started. */
  private waiting = 0;

  add(entry: TaskSetEntry): void {
    if (entry.attribute === TaskAttribute.HEAD_OF_QUEUE) this.entries.unshift(entry);
    else this.entries.push(entry);
    if (blocks(entry)) this.blockers++;
    if (entry.state !== 'waiting') return;
    if (this.blockers === 0 && this.waiting === 0) {
      // SIMPLE among SIMPLE tasks: enabled at once, no scan.
      entry.state = 'running';
      entry.start();
      return;
    }
    this.waiting++;
    this.pump();
  }

  /** The task finished or was aborted: remove it and start whatever it was holding back. */
  remove(entry: TaskSetEntry): void {
    const i = this.entries.indexOf(entry);
    if (i < 0) return;
    this.entries.splice(i, 1);
    if (blocks(entry)) this.blockers--;
    if (entry.state === 'waiting') this.waiting--;
    if (this.waiting > 0) this.pump();
  }

  get size(): number {
    return this.entries.length;
  }

  all(): readonly TaskSetEntry[] {
    return this.entries;
  }

  private pump(): void {
    let blockingSimple = false; // an older ORDERED / HEAD OF QUEUE task is present
    const toStart: TaskSetEntry[] = [];
    for (let i = 0; i < this.entries.length && toStart.length < this.waiting; i++) {
      const e = this.entries[i]!;
      if (e.state === 'waiting') {
        let enabled: boolean;
        if (e.attribute === TaskAttribute.HEAD_OF_QUEUE) enabled = true;
        else if (e.attribute === TaskAttribute.ORDERED) enabled = i === 0;
        else enabled = !blockingSimple;
        if (enabled) {
          e.state = 'running';
          toStart.push(e);
        }
      }
      if (blocks(e)) blockingSimple = true;
    }
    this.waiting -= toStart.length;
    for (const e of toStart) e.start();
  }
}
