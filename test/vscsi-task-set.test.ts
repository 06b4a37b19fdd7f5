import { describe, expect, it } from 'vitest';
import { TaskAttribute } from '../src/vscsi/fabric.js';
import { TaskSet, type TaskSetEntry } from '../src/vscsi/task-set.js';

function entry(tag: number, attribute: TaskAttribute, started: number[]): TaskSetEntry {
  return { nexusId: 1, tag: BigInt(tag), attribute, setState: 'waiting', start: () => started.push(tag) };
}

describe('TaskSet ordering rules', () => {
  it('SIMPLE tasks start at once; ORDERED waits for all older; SIMPLE after ORDERED waits for it', () => {
    const started: number[] = [];
    const ts = new TaskSet();
    const a = entry(1, TaskAttribute.SIMPLE, started);
    const b = entry(2, TaskAttribute.SIMPLE, started);
    const o = entry(3, TaskAttribute.ORDERED, started);
    const c = entry(4, TaskAttribute.SIMPLE, started);
    [a, b, o, c].forEach((e) => ts.add(e));
    expect(started).toEqual([1, 2]);
    ts.remove(a);
    expect(started).toEqual([1, 2]);
    ts.remove(b);
    expect(started).toEqual([1, 2, 3]);
    ts.remove(o);
    expect(started).toEqual([1, 2, 3, 4]);
    ts.remove(c);
    expect(ts.size).toBe(0);
  });

  it('HEAD OF QUEUE starts at once and holds back later SIMPLE tasks until it ends', () => {
    const started: number[] = [];
    const ts = new TaskSet();
    const a = entry(1, TaskAttribute.SIMPLE, started);
    const h = entry(2, TaskAttribute.HEAD_OF_QUEUE, started);
    const b = entry(3, TaskAttribute.SIMPLE, started);
    ts.add(a);
    ts.add(h);
    ts.add(b);
    expect(started).toEqual([1, 2]);
    expect(ts.all().map((e) => Number(e.tag))).toEqual([2, 1, 3]);
    ts.remove(h);
    expect(started).toEqual([1, 2, 3]);
  });

  it('removing a waiting task (abort) releases the ones behind it', () => {
    const started: number[] = [];
    const ts = new TaskSet();
    const a = entry(1, TaskAttribute.SIMPLE, started);
    const o = entry(2, TaskAttribute.ORDERED, started);
    const b = entry(3, TaskAttribute.SIMPLE, started);
    [a, o, b].forEach((e) => ts.add(e));
    expect(started).toEqual([1]);
    ts.remove(o); // aborted while waiting
    expect(started).toEqual([1, 3]);
    ts.remove(a);
    ts.remove(b);
    ts.remove(b); // idempotent
    expect(ts.size).toBe(0);
  });

  it('many SIMPLE tasks from many nexuses all run concurrently', () => {
    const started: number[] = [];
    const ts = new TaskSet();
    const es = Array.from({ length: 2000 }, (_, i) => entry(i, TaskAttribute.SIMPLE, started));
    es.forEach((e) => ts.add(e));
    expect(started.length).toBe(2000);
    es.forEach((e) => ts.remove(e));
    expect(ts.size).toBe(0);
  });
});
