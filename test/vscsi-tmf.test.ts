import { describe, expect, it } from 'vitest';
import { TaskAttribute, TmfFunction, TmfResponse } from '../src/vscsi/fabric.js';
import type { LoopbackResult } from '../src/vscsi/loopback.js';
import { GOOD, TASK_ABORTED, cdb10, gatedStore, rig, senseOf } from './vscsi-helpers.js';

const W = (lba: number, byte: number) => ({ cdb: cdb10(0x2a, lba, 1), dataOut: Buffer.alloc(512, byte) });
const TUR = { cdb: [0, 0, 0, 0, 0, 0] };
const tick = () => new Promise((r) => setImmediate(r));

/** Track completion order and whether a promise settled. */
function track(p: Promise<LoopbackResult>, order: string[], name: string) {
  const state = { done: false, result: undefined as LoopbackResult | undefined };
  void p.then((r) => {
    state.done = true;
    state.result = r;
    order.push(name);
  });
  return state;
}

describe('task set ordering', () => {
  it('ORDERED waits for older tasks; SIMPLE after ORDERED waits for it; HEAD OF QUEUE runs at once', async () => {
    const g = gatedStore();
    const { fab } = rig({ backstore: g.mem });
    const order: string[] = [];
    const a = track(fab.submit(W(0, 1)), order, 'simple-1');
    await tick();
    const o = track(fab.submit({ ...TUR, attribute: TaskAttribute.ORDERED }), order, 'ordered');
    const s2 = track(fab.submit(TUR), order, 'simple-2');
    const h = track(fab.submit({ ...TUR, attribute: TaskAttribute.HEAD_OF_QUEUE }), order, 'hoq');
    await tick();
    await tick();
    expect(h.done).toBe(true);
    expect(o.done).toBe(false);
    expect(s2.done).toBe(false);
    expect(a.done).toBe(false);
    g.releaseAll();
    for (let i = 0; i < 10 && order.length < 4; i++) await tick();
    expect(order).toEqual(['hoq', 'simple-1', 'ordered', 'simple-2']);
  });

  it('SIMPLE tasks run concurrently', async () => {
    const g = gatedStore();
    const { fab } = rig({ backstore: g.mem });
    const ps = [fab.submit(W(0, 1)), fab.submit(W(1, 2)), fab.submit(W(2, 3))];
    for (let i = 0; i < 5; i++) await tick();
    expect(g.inFlight()).toBe(3);
    g.releaseAll();
    expect((await Promise.all(ps)).map((r) => r.status)).toEqual([GOOD, GOOD, GOOD]);
  });

  it('a reused tag of an active task is OVERLAPPED COMMANDS ATTEMPTED', async () => {
    const g = gatedStore();
    const { fab } = rig({ backstore: g.mem });
    const first = fab.submit({ ...W(0, 1), tag: 77n });
    await tick();
    const s = senseOf(await fab.submit({ ...TUR, tag: 77n }));
    expect([s.key, s.asc]).toEqual([0xb, 0x4e]);
    g.releaseAll();
    expect((await first).status).toBe(GOOD);
  });
});

describe('task management', () => {
  it('ABORT TASK: the aborted command never completes; the medium is untouched for a waiting task', async () => {
    const g = gatedStore();
    const { fab } = rig({ backstore: g.mem });
    const order: string[] = [];
    const running = track(fab.submit({ ...W(0, 1), tag: 1n }), order, 'running');
    await tick();
    let abortedCalls = 0;
    const waiting = track(
      fab.submit({ ...W(1, 2), tag: 2n, attribute: TaskAttribute.ORDERED, onAborted: () => abortedCalls++ }),
      order,
      'waiting',
    );
    await tick();
    const r = await fab.taskManagement({ fn: TmfFunction.ABORT_TASK, lun: 0, referencedTag: 2n });
    expect(r.response).toBe(TmfResponse.FUNCTION_COMPLETE);
    expect(abortedCalls).toBe(1);
    expect(fab.nexus.activeCommands()).toBe(1);
    g.releaseAll();
    for (let i = 0; i < 10; i++) await tick();
    expect(running.done).toBe(true);
    expect(waiting.done).toBe(false);
    const back = await fab.submit({ cdb: cdb10(0x28, 1, 1), expectedLength: 512 });
    expect(back.data.equals(Buffer.alloc(512))).toBe(true);
  });

  it('ABORT TASK of a running command answers only after its I/O finished, and it never completes', async () => {
    const g = gatedStore();
    const { fab } = rig({ backstore: g.mem });
    const order: string[] = [];
    let abortedCalls = 0;
    const cmd = track(fab.submit({ ...W(0, 1), tag: 5n, onAborted: () => abortedCalls++ }), order, 'cmd');
    await tick();
    let tmfDone = false;
    const tmf = fab.taskManagement({ fn: TmfFunction.ABORT_TASK, lun: 0, referencedTag: 5n }).then((r) => {
      tmfDone = true;
      return r;
    });
    await tick();
    expect(tmfDone).toBe(false);
    g.releaseAll();
    expect((await tmf).response).toBe(TmfResponse.FUNCTION_COMPLETE);
    for (let i = 0; i < 5; i++) await tick();
    expect(cmd.done).toBe(false);
    expect(abortedCalls).toBe(1);
    expect(fab.nexus.activeCommands()).toBe(0);
  });

  it('ABORT TASK SET aborts only this nexus; CLEAR TASK SET with TAS=1 gives others TASK ABORTED', async () => {
    const g = gatedStore();
    const { fab, other } = rig({ backstore: g.mem });
    const b = other();
    const order: string[] = [];
    const mine = track(fab.submit(W(0, 1)), order, 'mine');
    const theirs = track(b.submit(W(1, 1)), order, 'theirs');
    await tick();
    expect((await Promise.all([fab.taskManagement({ fn: TmfFunction.ABORT_TASK_SET, lun: 0 }), tick().then(() => g.releaseAll())]))[0].response).toBe(
      TmfResponse.FUNCTION_COMPLETE,
    );
    for (let i = 0; i < 5; i++) await tick();
    expect(mine.done).toBe(false);
    expect(theirs.result?.status).toBe(GOOD);

    const g2 = gatedStore();
    const r2 = rig({ backstore: g2.mem });
    const c = r2.other();
    const o2: string[] = [];
    const m2 = track(r2.fab.submit(W(0, 1)), o2, 'mine');
    const t2 = track(c.submit(W(1, 1)), o2, 'theirs');
    await tick();
    const clear = r2.fab.taskManagement({ fn: TmfFunction.CLEAR_TASK_SET, lun: 0 });
    await tick();
    g2.releaseAll();
    expect((await clear).response).toBe(TmfResponse.FUNCTION_COMPLETE);
    for (let i = 0; i < 5; i++) await tick();
    expect(m2.done).toBe(false);
    expect(t2.result?.status).toBe(TASK_ABORTED);
  });

  it('CLEAR TASK SET with TAS=0 aborts others silently with COMMANDS CLEARED BY ANOTHER INITIATOR', async () => {
    const g = gatedStore();
    const { fab, other, lu } = rig({ backstore: g.mem });
    lu.mode.tas = false;
    const b = other();
    const o: string[] = [];
    const t = track(b.submit(W(1, 1)), o, 'theirs');
    await tick();
    const clear = fab.taskManagement({ fn: TmfFunction.CLEAR_TASK_SET, lun: 0 });
    await tick();
    g.releaseAll();
    await clear;
    for (let i = 0; i < 5; i++) await tick();
    expect(t.done).toBe(false);
    const s = senseOf(await b.submit(TUR));
    expect([s.key, s.asc, s.ascq]).toEqual([0x6, 0x2f, 0x00]);
    expect((await fab.submit(TUR)).status).toBe(GOOD);
  });

  it('LOGICAL UNIT RESET: UA 29/03 on every nexus, PREVENT released', async () => {
    const { fab, other, lu } = rig({ removable: true });
    const b = other();
    await fab.submit({ cdb: [0x1e, 0, 0, 0, 1, 0] });
    expect(lu.preventers.size).toBe(1);
    expect((await b.taskManagement({ fn: TmfFunction.LOGICAL_UNIT_RESET, lun: 0 })).response).toBe(TmfResponse.FUNCTION_COMPLETE);
    expect(lu.preventers.size).toBe(0);
    for (const f of [fab, b]) {
      const s = senseOf(await f.submit(TUR));
      expect([s.key, s.asc, s.ascq]).toEqual([0x6, 0x29, 0x03]);
    }
  });

  it('I_T NEXUS RESET: aborts this nexus only, UA 29/07; TARGET RESET resets every LU', async () => {
    const { fab, other } = rig();
    const b = other();
    expect((await fab.taskManagement({ fn: TmfFunction.I_T_NEXUS_RESET, lun: 0 })).response).toBe(TmfResponse.FUNCTION_COMPLETE);
    const s = senseOf(await fab.submit(TUR));
    expect([s.asc, s.ascq]).toEqual([0x29, 0x07]);
    expect((await b.submit(TUR)).status).toBe(GOOD);
    expect((await b.taskManagement({ fn: TmfFunction.TARGET_RESET, lun: 0 })).response).toBe(TmfResponse.FUNCTION_COMPLETE);
    const t = senseOf(await b.submit(TUR));
    expect([t.asc, t.ascq]).toEqual([0x29, 0x00]);
  });

  it('QUERY TASK / QUERY TASK SET / QUERY ASYNCHRONOUS EVENT', async () => {
    const g = gatedStore();
    const { fab, core, lu } = rig({ backstore: g.mem });
    const p = fab.submit({ ...W(0, 1), tag: 9n });
    await tick();
    expect((await fab.taskManagement({ fn: TmfFunction.QUERY_TASK, lun: 0, referencedTag: 9n })).response).toBe(TmfResponse.FUNCTION_SUCCEEDED);
    expect((await fab.taskManagement({ fn: TmfFunction.QUERY_TASK, lun: 0, referencedTag: 10n })).response).toBe(TmfResponse.FUNCTION_COMPLETE);
    expect((await fab.taskManagement({ fn: TmfFunction.QUERY_TASK_SET, lun: 0 })).response).toBe(TmfResponse.FUNCTION_SUCCEEDED);
    g.releaseAll();
    await p;
    expect((await fab.taskManagement({ fn: TmfFunction.QUERY_TASK_SET, lun: 0 })).response).toBe(TmfResponse.FUNCTION_COMPLETE);
    expect((await fab.taskManagement({ fn: TmfFunction.QUERY_ASYNCHRONOUS_EVENT, lun: 0 })).response).toBe(TmfResponse.FUNCTION_COMPLETE);
    core.unitAttention(lu, 'CAPACITY_DATA_HAS_CHANGED');
    const q = await fab.taskManagement({ fn: TmfFunction.QUERY_ASYNCHRONOUS_EVENT, lun: 0 });
    expect(q).toEqual({ response: TmfResponse.FUNCTION_SUCCEEDED, additionalResponseInfo: { senseKey: 6, asc: 0x2a, ascq: 0x09, uaPending: true } });
  });

  it('TMFs to unmapped LUNs are INCORRECT LOGICAL UNIT NUMBER; CLEAR ACA is rejected', async () => {
    const { fab } = rig();
    expect((await fab.taskManagement({ fn: TmfFunction.ABORT_TASK_SET, lun: 3 })).response).toBe(TmfResponse.INCORRECT_LOGICAL_UNIT_NUMBER);
    expect((await fab.taskManagement({ fn: TmfFunction.CLEAR_ACA, lun: 0 })).response).toBe(TmfResponse.FUNCTION_REJECTED);
  });

  it('closing a nexus drops its commands silently and removing an LU unmaps it', async () => {
    const g = gatedStore();
    const { fab, core, other } = rig({ backstore: g.mem });
    const b = other();
    const o: string[] = [];
    const c = track(fab.submit(W(0, 1)), o, 'c');
    await tick();
    const closing = fab.nexus.close();
    await tick();
    g.releaseAll();
    await closing;
    for (let i = 0; i < 5; i++) await tick();
    expect(c.done).toBe(false);
    await core.removeLogicalUnit('disk0');
    expect(core.getLogicalUnit('disk0')).toBeUndefined();
    expect(senseOf(await b.submit(TUR)).asc).toBe(0x25);
    expect(core.stats().nexuses).toBe(1);
  });
});

describe('aborts while waiting for data-out', () => {
  it('ABORT TASK completes even if the initiator never sends the data-out', async () => {
    const { fab } = rig();
    let abortedCalls = 0;
    let completed = false;
    fab.nexus.submit({
      lun: 0,
      cdb: Buffer.from(cdb10(0x2a, 0, 1)),
      attribute: TaskAttribute.SIMPLE,
      tag: 42n,
      direction: 'write',
      expectedLength: 512,
      port: {
        fetchDataOut: () => new Promise<Buffer>(() => {}), // never arrives
        complete: () => {
          completed = true;
        },
        aborted: () => {
          abortedCalls++;
        },
      },
    });
    await tick();
    expect(fab.nexus.activeCommands()).toBe(1);
    const r = await fab.taskManagement({ fn: TmfFunction.ABORT_TASK, lun: 0, referencedTag: 42n });
    expect(r.response).toBe(TmfResponse.FUNCTION_COMPLETE);
    await tick();
    expect(completed).toBe(false);
    expect(abortedCalls).toBe(1);
    expect(fab.nexus.activeCommands()).toBe(0);
    expect((await fab.submit({ cdb: cdb10(0x28, 0, 1), expectedLength: 512 })).data.equals(Buffer.alloc(512))).toBe(true);
  });
});
