/**
 * The task set of one logical unit (SAM-5 8.6, queue algorithm modifier 0 semantics for ordering):
 * HEAD OF QUEUE tasks start at once and go to the head; ORDERED tasks start when every older task has
 * finished; SIMPLE tasks start when no older ORDERED or HEAD OF QUEUE task is still in the set.
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

export class TaskSet {
  private entries: TaskSetEntry[] = [];

  add(entry: TaskSetEntry): void {
    if (entry.attribute === TaskAttribute.HEAD_OF_QUEUE) this.entries.unshift(entry);
    else this.entries.push(entry);
    this.pump();
  }

  /** The task finished or was aborted: remove it and start whatever it was holding back. */
  remove(entry: TaskSetEntry): void {
    const i = this.entries.indexOf(entry);
    if (i < 0) return;
    this.entries.splice(i, 1);
    this.pump();
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
    for (let i = 0; i < this.entries.length; i++) {
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
      if (e.attribute === TaskAttribute.ORDERED || e.attribute === TaskAttribute.HEAD_OF_QUEUE) blockingSimple = true;
    }
    for (const e of toStart) e.start();
  }
}
