/**
 * The task set of one logical unit (SAM-5 8.6, queue algorithm modifier 0 semantics for ordering):
 * HEAD OF QUEUE tasks start at once and go to the head; ORDERED tasks start when every older task has
 * finished; SIMPLE tasks start when no older ORDERED or HEAD OF QUEUE task is still in the set.
 *
 * Almost every command is SIMPLE, and with many sessions a shared LU holds thousands of tasks, so the
 * ordering scan only runs while an ORDERED or HEAD OF QUEUE task is present or a task is waiting: a
 * SIMPLE task among SIMPLE tasks starts at once. The set is a doubly linked list threaded through the
 * entries themselves: removal is O(1) and allocates nothing (an array's indexOf + splice was O(n) per
 * command; a Map from entry to node made garbage — BENCHMARKS.md, sections 2 and 10).
 */
import { TaskAttribute } from './fabric.js';

export interface TaskSetEntry {
  readonly nexusId: number;
  readonly tag: bigint;
  readonly attribute: TaskAttribute;
  /** Owned by the TaskSet: 'running' once start() was called. */
  setState: 'waiting' | 'running';
  /** Called once, when the task becomes enabled. */
  start(): void;
  /** List links, owned by the TaskSet holding the entry (initialise to undefined for a stable shape). */
  prevInSet?: TaskSetEntry | undefined;
  nextInSet?: TaskSetEntry | undefined;
  inSet?: TaskSet | undefined;
}

const blocks = (e: TaskSetEntry): boolean => e.attribute === TaskAttribute.ORDERED || e.attribute === TaskAttribute.HEAD_OF_QUEUE;

export class TaskSet {
  private head: TaskSetEntry | undefined;
  private tail: TaskSetEntry | undefined;
  private count = 0;
  /** ORDERED and HEAD OF QUEUE tasks in the set: while 0, no SIMPLE task can be held back. */
  private blockers = 0;
  /** Tasks in the set not yet started. */
  private waiting = 0;

  add(entry: TaskSetEntry): void {
    if (entry.inSet) throw new Error(`task ${entry.tag} of nexus ${entry.nexusId} is already in a task set`);
    entry.inSet = this;
    if (entry.attribute === TaskAttribute.HEAD_OF_QUEUE) {
      entry.prevInSet = undefined;
      entry.nextInSet = this.head;
      if (this.head) this.head.prevInSet = entry;
      else this.tail = entry;
      this.head = entry;
    } else {
      entry.nextInSet = undefined;
      entry.prevInSet = this.tail;
      if (this.tail) this.tail.nextInSet = entry;
      else this.head = entry;
      this.tail = entry;
    }
    this.count++;
    if (blocks(entry)) this.blockers++;
    if (entry.setState !== 'waiting') return;
    if (this.blockers === 0 && this.waiting === 0) {
      // SIMPLE among SIMPLE tasks: enabled at once, no scan.
      entry.setState = 'running';
      entry.start();
      return;
    }
    this.waiting++;
    this.pump();
  }

  /** The task finished or was aborted: remove it and start whatever it was holding back. */
  remove(entry: TaskSetEntry): void {
    if (entry.inSet !== this) return;
    const { prevInSet: prev, nextInSet: next } = entry;
    if (prev) prev.nextInSet = next;
    else this.head = next;
    if (next) next.prevInSet = prev;
    else this.tail = prev;
    entry.prevInSet = entry.nextInSet = entry.inSet = undefined;
    this.count--;
    if (blocks(entry)) this.blockers--;
    if (entry.setState === 'waiting') this.waiting--;
    if (this.waiting > 0) this.pump();
  }

  get size(): number {
    return this.count;
  }

  /** The entries in task set order (a copy; for task management and tests). */
  all(): TaskSetEntry[] {
    const out: TaskSetEntry[] = [];
    for (let e = this.head; e; e = e.nextInSet) out.push(e);
    return out;
  }

  private pump(): void {
    let blockingSimple = false; // an older ORDERED / HEAD OF QUEUE task is present
    const toStart: TaskSetEntry[] = [];
    for (let e = this.head; e && toStart.length < this.waiting; e = e.nextInSet) {
      if (e.setState === 'waiting') {
        let enabled: boolean;
        if (e.attribute === TaskAttribute.HEAD_OF_QUEUE) enabled = true;
        else if (e.attribute === TaskAttribute.ORDERED) enabled = e === this.head;
        else enabled = !blockingSimple;
        if (enabled) {
          e.setState = 'running';
          toStart.push(e);
        }
      }
      if (blocks(e)) blockingSimple = true;
    }
    this.waiting -= toStart.length;
    for (const e of toStart) e.start();
  }
}
