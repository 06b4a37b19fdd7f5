/** APTPL: persistent reservation state saved atomically on every change and restored by open (SPC-4 5.12.4). */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ReservationManager } from '../src/vscsi/pr/index.js';
import { nodePersistFs, writeFileAtomic, type PersistFs } from '../src/vscsi/pr/persist.js';
import { data, expectGood, nexus, Pr, prinCdb } from './pr-helpers.js';

const a = nexus('iqn.2024-01.test:a', '000000000001');
const b = nexus('iqn.2024-01.test:b', '000000000002', 'tp-2', 2);
let dir: string;
let file: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'vtgt-pr-aptpl-'));
  file = path.join(dir, 'lun0.pr.json');
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});
const open = async (fs?: PersistFs): Promise<Pr> =>
  new Pr(await ReservationManager.open({ aptplPath: file, description: 'test LUN 0', ...(fs ? { fs } : {}) }));
const exists = async (p: string): Promise<boolean> => (await readdir(path.dirname(p))).includes(path.basename(p));

describe('APTPL round trip', () => {
  it('registrations, reservation holder, PRGENERATION and PTPL_A survive a restart', async () => {
    const pr = await open();
    expectGood(await pr.registerIgnore(a, 0xa1n, { aptpl: true }));
    expectGood(await pr.registerIgnore(b, 0xb2n, { aptpl: true, allTgPt: true }));
    expectGood(await pr.reserve(a, 0xa1n, 3));
    const before = {
      keys: data(pr.m.persistentReserveIn(a, prinCdb(0))),
      res: data(pr.m.persistentReserveIn(a, prinCdb(1))),
      full: data(pr.m.persistentReserveIn(a, prinCdb(3))),
    };
    const again = await open();
    // Fresh nexus objects with the same identity, as after a target restart.
    const a2 = nexus('iqn.2024-01.TEST:a', '000000000001');
    expect(data(again.m.persistentReserveIn(a2, prinCdb(0)))).toEqual(before.keys);
    expect(data(again.m.persistentReserveIn(a2, prinCdb(1)))).toEqual(before.res);
    expect(data(again.m.persistentReserveIn(a2, prinCdb(3)))).toEqual(before.full);
    expect(data(again.m.persistentReserveIn(a2, prinCdb(2)))[3]! & 1).toBe(1); // PTPL_A
    expect(again.canWrite(a2)).toBe(true);
    expect(again.canRead(nexus('iqn.2024-01.test:b', '000000000002', 'tp-9', 9))).toBe(false);
  });
  it('every change while APTPL is active is written, RESERVE and RELEASE included', async () => {
    const pr = await open();
    expectGood(await pr.registerIgnore(a, 1n, { aptpl: true }));
    const v1 = await readFile(file, 'utf8');
    expectGood(await pr.reserve(a, 1n, 1));
    const v2 = await readFile(file, 'utf8');
    expect(v2).not.toEqual(v1);
    expectGood(await pr.release(a, 1n, 1));
    expect(await readFile(file, 'utf8')).toEqual(v1);
  });
  it('no file without APTPL; clearing APTPL removes it', async () => {
    const pr = await open();
    expectGood(await pr.registerIgnore(a, 1n));
    expect(await exists(file)).toBe(false);
    expectGood(await pr.register(a, 1n, 2n, { aptpl: true }));
    expect(await exists(file)).toBe(true);
    expectGood(await pr.register(a, 2n, 3n));
    expect(await exists(file)).toBe(false);
    const again = await open();
    expect(again.readKeys(a).keys).toEqual([]);
  });
  it('CLEAR under APTPL leaves an empty but present state', async () => {
    const pr = await open();
    expectGood(await pr.registerIgnore(a, 1n, { aptpl: true }));
    expectGood(await pr.clear(a, 1n));
    const again = await open();
    expect(again.readKeys(a)).toEqual({ generation: 2, keys: [] });
  });
});

describe('crash safety', () => {
  function failing(step: 'rename' | 'sync' | 'write'): PersistFs {
    return {
      ...nodePersistFs,
      rename: async (from, to) => {
        if (step === 'rename') throw Object.assign(new Error('EIO: injected rename failure'), { code: 'EIO' });
        return nodePersistFs.rename(from, to);
      },
      open: async (p, flags, mode) => {
        const h = await nodePersistFs.open(p, flags, mode);
        if (p.endsWith('.tmp') && step === 'sync') {
          return new Proxy(h, {
            get: (t, k) => (k === 'sync' ? async () => { throw new Error('EIO: injected fsync failure'); } : Reflect.get(t, k).bind?.(t) ?? Reflect.get(t, k)),
          });
        }
        if (p.endsWith('.tmp') && step === 'write') {
          return new Proxy(h, {
            get: (t, k) => (k === 'writeFile' ? async () => { throw new Error('ENOSPC: injected'); } : Reflect.get(t, k).bind?.(t) ?? Reflect.get(t, k)),
          });
        }
        return h;
      },
    };
  }
  for (const step of ['rename', 'sync', 'write'] as const) {
    it(`a failing ${step}: old file intact, command fails, state unchanged, no temp file left`, async () => {
      const good = await open();
      expectGood(await good.registerIgnore(a, 1n, { aptpl: true }));
      const old = await readFile(file);
      const pr = await open(failing(step));
      const o = await pr.reserve(a, 1n, 1);
      expect(o).toEqual({ kind: 'check', failure: { reason: 'INTERNAL_TARGET_FAILURE' } });
      expect(pr.readReservation(a)).not.toHaveProperty('type');
      expect(await readFile(file)).toEqual(old);
      expect(await readdir(dir)).toEqual([path.basename(file)]);
      expect((await open()).readKeys(a).keys).toEqual([1n]);
    });
  }
  it('writeFileAtomic names the file in its error', async () => {
    await expect(writeFileAtomic(path.join(dir, 'missing-dir', 'x.json'), '{}')).rejects.toThrow(/missing-dir\/x\.json/);
  });
});

describe('hand-edited state files', () => {
  it('iSCSI names and ISIDs are compared as on the wire', async () => {
    const doc = {
      format: 'vtgt-persistent-reservations',
      version: 1,
      generation: 7,
      aptpl: true,
      registrations: [
        { key: '00000000000000a1', protocolId: 5, name: 'IQN.2024-01.Test:A', portSuffix: ',i,0x1', transportId: '05', allTgPt: true, targetPortName: 'x', relativeTargetPortId: 1 },
      ],
      reservation: { type: 1, scope: 0, holder: 0 },
    };
    await writeFile(file, JSON.stringify(doc));
    const pr = await open();
    expect(pr.readReservation(a)).toMatchObject({ generation: 7, key: 0xa1n, type: 1 });
    expect(pr.canWrite(a)).toBe(true);
    expect(pr.canWrite(b)).toBe(false);
  });
});

describe('damaged state files', () => {
  const cases: [string, string][] = [
    ['not JSON', '{"format": '],
    ['wrong format', JSON.stringify({ format: 'other', version: 1 })],
    ['zero key', JSON.stringify({ format: 'vtgt-persistent-reservations', version: 1, generation: 1, aptpl: true, registrations: [{ key: '0000000000000000', protocolId: 5, name: 'x', portSuffix: null, transportId: '05', allTgPt: false, targetPortName: 't', relativeTargetPortId: 1 }], reservation: null })],
    ['holder out of range', JSON.stringify({ format: 'vtgt-persistent-reservations', version: 1, generation: 1, aptpl: true, registrations: [], reservation: { type: 1, scope: 0, holder: 3 } })],
  ];
  it.each(cases)('%s: open refuses with the file name and what to do', async (_n, text) => {
    await writeFile(file, text);
    await expect(ReservationManager.open({ aptplPath: file })).rejects.toThrow(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*Repair or move`));
  });
});

describe('operator actions', () => {
  it('adminClear drops everything, tells the registrants, and persists under APTPL', async () => {
    const pr = await open();
    expectGood(await pr.registerIgnore(a, 1n, { aptpl: true }));
    expectGood(await pr.registerIgnore(b, 2n, { aptpl: true })); // the last REGISTER's APTPL decides
    expectGood(await pr.reserve(a, 1n, 3));
    expect(pr.m.status()).toMatchObject({
      aptpl: true,
      spc2Reserved: false,
      registrations: [{ key: '0x0000000000000001', initiator: 'iqn.2024-01.test:a', port: ',i,0x000000000001' }, { key: '0x0000000000000002' }],
      reservation: { type: 3, typeName: 'Exclusive Access', holderKey: '0x0000000000000001' },
    });
    expect(() => JSON.stringify(pr.m.status())).not.toThrow();
    const effects = await pr.m.adminClear();
    expect(effects).toEqual([{ kind: 'unitAttention', nexusKeys: [a.key, b.key], reason: 'RESERVATIONS_PREEMPTED' }]);
    expect(pr.m.status()).toMatchObject({ registrations: [], reservation: null });
    expect(pr.canWrite(b)).toBe(true);
    expect((await open()).readKeys(a).keys).toEqual([]);
  });
  it('attachNexus lets a nexus that has sent nothing yet receive unit attentions', async () => {
    const pr = await open();
    const other = nexus('iqn.2024-01.test:a', '000000000001', 'tp-3', 3);
    expectGood(await pr.registerIgnore(a, 1n, { allTgPt: true }));
    pr.m.attachNexus(other);
    expectGood(await pr.registerIgnore(b, 2n));
    const o = await pr.clear(b, 2n);
    expect(o.kind === 'good' && o.effects).toEqual([{ kind: 'unitAttention', nexusKeys: [a.key, other.key], reason: 'RESERVATIONS_PREEMPTED' }]);
  });
});

describe('state file parser under random damage', () => {
  it('returns a state or a reason, never throws', async () => {
    const { deserialiseState, serialiseState, emptyState, addRegistration } = await import('../src/vscsi/pr/state.js');
    const s = emptyState();
    addRegistration(s, {
      key: 5n,
      identity: { protocolId: 5, name: 'iqn.x', portSuffix: ',i,0x000000000001' },
      transportId: Buffer.from('4500', 'hex'),
      allTgPt: false,
      targetPortName: 't',
      relativeTargetPortId: 1,
    });
    s.reservation = { type: 1, scope: 0, holderId: s.registrations[0]!.id };
    const text = serialiseState(s);
    expect(deserialiseState(text)).toMatchObject({ generation: 0, registrations: [{ key: 5n }] });
    let seed = 7;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const alphabet = '{}[]",:0123456789abcdefnulltrue-. ';
    let states = 0;
    for (let i = 0; i < 3000; i++) {
      const chars = [...text];
      for (let j = 0, n = 1 + rnd(4); j < n; j++) chars[rnd(chars.length)] = alphabet[rnd(alphabet.length)]!;
      const r = deserialiseState(chars.join(''));
      if (typeof r !== 'string') {
        states++;
        expect(r.generation).toBeGreaterThanOrEqual(0);
      }
    }
    expect(states).toBeGreaterThan(0); // some damage is harmless (whitespace, names)
  });
});
