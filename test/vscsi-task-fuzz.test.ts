/**
 * Randomised (seeded, bounded) mixes of commands and task management on two nexuses sharing an LU.
 * Invariants: every command ends exactly once — complete() or aborted(), never both; a command
 * aborted by a TMF from its own nexus never completes; nothing stays active at the end.
 */
import { describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { TaskAttribute, TmfFunction, type Nexus, type ScsiCompletion } from '../src/vscsi/fabric.js';
import { cdb10, rig } from './vscsi-helpers.js';

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 0x100000000;
  };
}

interface Tracked {
  nexus: Nexus;
  tag: bigint;
  completes: ScsiCompletion[];
  aborts: number;
  abortedByOwnTmf: boolean;
}

describe('task management fuzz', () => {
  it.each([1, 2, 3, 4, 5])('seed %i keeps every command accounted for', async (seed) => {
    const rand = prng(seed);
    const mem = new MemoryBackstore({ name: 'f', size: 1 << 20 });
    const pending: Array<() => void> = [];
    const origWrite = mem.write.bind(mem);
    const origRead = mem.read.bind(mem);
    mem.write = async (o: number, d: Buffer, f: boolean) => {
      await new Promise<void>((r) => pending.push(r));
      return origWrite(o, d, f);
    };
    mem.read = async (o: number, l: number, into?: Buffer) => {
      await new Promise<void>((r) => pending.push(r));
      return origRead(o, l, into);
    };
    const { fab, other, lu } = rig({ backstore: mem });
    lu.mode.tas = rand() < 0.5;
    const nexuses = [fab.nexus, other().nexus];
    const all: Tracked[] = [];
    let nextTag = 1n;
    const attrs = [TaskAttribute.SIMPLE, TaskAttribute.SIMPLE, TaskAttribute.ORDERED, TaskAttribute.HEAD_OF_QUEUE];

    for (let step = 0; step < 300; step++) {
      const r = rand();
      const nexus = nexuses[Math.floor(rand() * 2)]!;
      if (r < 0.55) {
        const t: Tracked = { nexus, tag: nextTag++, completes: [], aborts: 0, abortedByOwnTmf: false };
        all.push(t);
        const write = rand() < 0.5;
        const lba = Math.floor(rand() * 64);
        nexus.submit({
          lun: 0,
          cdb: Buffer.from(cdb10(write ? 0x2a : 0x28, lba, 1)),
          attribute: attrs[Math.floor(rand() * attrs.length)]!,
          tag: t.tag,
          direction: write ? 'write' : 'read',
          expectedLength: 512,
          port: {
            fetchDataOut: () => (rand() < 0.9 ? Promise.resolve(Buffer.alloc(512, 7)) : new Promise<Buffer>(() => {})),
            complete: (c) => t.completes.push(c),
            aborted: () => t.aborts++,
          },
        });
      } else if (r < 0.85) {
        // Let some I/O finish.
        const n = Math.floor(rand() * 4);
        for (let i = 0; i < n && pending.length; i++) pending.splice(Math.floor(rand() * pending.length), 1)[0]!();
        await new Promise((res) => setImmediate(res));
      } else {
        const fns = [TmfFunction.ABORT_TASK, TmfFunction.ABORT_TASK_SET, TmfFunction.CLEAR_TASK_SET, TmfFunction.LOGICAL_UNIT_RESET, TmfFunction.QUERY_TASK_SET];
        const fn = fns[Math.floor(rand() * fns.length)]!;
        const mine = all.filter((t) => t.nexus === nexus && t.completes.length === 0 && t.aborts === 0);
        const target = mine.length ? mine[Math.floor(rand() * mine.length)] : undefined;
        const ownActive = new Set(mine.map((t) => t.tag));
        const tmf = nexus.taskManagement({ fn, lun: 0, ...(target ? { referencedTag: target.tag } : {}) });
        // Keep I/O flowing while the TMF waits for in-flight commands.
        let settled = false;
        void tmf.then(() => (settled = true));
        for (let i = 0; i < 50 && !settled; i++) {
          for (const p of pending.splice(0)) p();
          await new Promise((res) => setImmediate(res));
        }
        expect(settled).toBe(true);
        if (fn === TmfFunction.ABORT_TASK && target) {
          if (target.completes.length === 0) target.abortedByOwnTmf = true;
        } else if (fn !== TmfFunction.QUERY_TASK_SET) {
          for (const t of all) if (t.nexus === nexus && ownActive.has(t.tag) && t.completes.length === 0) t.abortedByOwnTmf = true;
        }
      }
    }
    // Drain: release everything; commands stuck waiting for data-out are closed out by close().
    for (let i = 0; i < 50 && pending.length; i++) {
      for (const p of pending.splice(0)) p();
      await new Promise((res) => setImmediate(res));
    }
    await Promise.all(
      nexuses.map(async (n) => {
        const closing = n.close();
        for (let i = 0; i < 50; i++) {
          for (const p of pending.splice(0)) p();
          await new Promise((res) => setImmediate(res));
        }
        await closing;
      }),
    );
    for (const t of all) {
      expect(t.completes.length + t.aborts, `tag ${t.tag}`).toBe(1);
      if (t.abortedByOwnTmf) expect(t.completes.length, `tag ${t.tag} completed after its abort`).toBe(0);
    }
    for (const n of nexuses) expect(n.activeCommands()).toBe(0);
    expect(lu.taskSet.size).toBe(0);
    expect(lu.rangeLock.heldCount).toBe(0);
  });
});
