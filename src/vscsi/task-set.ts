/**
 * The task set of one logical unit (SAM-5 8.6, queue algorithm modifier 0 semantics for ordering):
 * HEAD OF QUEUE tasks start at once and go to the head; ORDERED tasks start when every older task has
 * finished; SIMPLE tasks start when no older ORDERED or HEAD OF QUEUE task is still in the set.
 *
 * Almost every command is SIMPLE, and with many sessions a shared LU holds thousands of tasks, so the
 * set is a doubly linked list (O(1) add/remove) and the ordering scan only runs while an ORDERED or
 * HEAD OF QUEUE task is present or a task is waiting: a SIMPLE task among SIMPLE tasks starts at once.
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

interface Node {
  entry: TaskSetEntry;
  prev: Node | undefined;
  next: Node | undefined;
}

const blocks = (e: TaskSetEntry): boolean => e.attribute === TaskAttribute.ORDERED || e.attribute === TaskAttribute.HEAD_OF_QUEUE;

export class TaskSet {
  private readonly nodes = new Map<TaskSetEntry, Node>();
  private head: Node | undefined;
  private tail: Node | undefined;
  /** ORDERED and HEAD OF QUEUE tasks in the set: while 0, nothing can be waiting. */
  private blockers = 0;
  private waiting = 0;

  add(entry: TaskSetEntry): void {
    if (this.nodes.has(entry)) return;
    const node: Node = { entry, prev: undefined, next: undefined };
    this.nodes.set(entry, node);
    if (entry.attribute === TaskAttribute.HEAD_OF_QUEUE) {
      node.next = this.head;
      if (this.head) this.head.prev = node;
      else this.tail = node;
      this.head = node;
    } else {
      node.prev = this.tail;
      if (this.tail) this.tail.next = node;
      else this.head = node;
      this.tail = node;
    }
    if (entry.state === 'waiting') this.waiting++;
    if (blocks(entry)) this.blockers++;
    if (this.blockers === 0 && this.waiting === 1 && entry.state === 'waiting') {
      // Fast path: SIMPLE among SIMPLE tasks (nothing else can be waiting) is enabled at once.
      entry.state = 'running';
      this.waiting--;
      entry.start();
      return;
    }
    this.pump();
  }

  /** The task finished or was aborted: remove it and start whatever it was holding back. */
  remove(entry: TaskSetEntry): void {
    const node = this.nodes.get(entry);
    if (!node) return;
    this.nodes.delete(entry);
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    if (entry.state === 'waiting') this.waiting--;
    if (blocks(entry)) this.blockers--;
    if (this.waiting > 0) this.pump();
  }

  get size(): number {
    return this.nodes.size;
  }

  all(): readonly TaskSetEntry[] {
    const out: TaskSetEntry[] = [];
    for (let n = this.head; n; n = n.next) out.push(n.entry);
    return out;
  }

  private pump(): void {
    let blockingSimple = false; // an older ORDERED / HEAD OF QUEUE task is present
    const toStart: TaskSetEntry[] = [];
    let first = true;
    for (let n = this.head; n && this.waiting > toStart.length; n = n.next) {
      const e = n.entry;
      if (e.state === 'waiting') {
        let enabled: boolean;
        if (e.attribute === TaskAttribute.HEAD_OF_QUEUE) enabled = true;
        else if (e.attribute === TaskAttribute.ORDERED) enabled = first;
        else enabled = !blockingSimple;
        if (enabled) {
          e.state = 'running';
          toStart.push(e);
        }
      }
      if (blocks(e)) blockingSimple = true;
      first = false;
    }
    this.waiting -= toStart.length;
    for (const e of toStart) e.start();
  }
}
