import { afterAll, beforeAll, expect, it } from 'vitest';
import { IscsiTestClient, cdb } from './helpers/iscsi-client.js';
import { PipelinedSession } from './helpers/iscsi-load-client.js';
import { IQN, pattern, startTarget } from './helpers/iscsi-harness.js';

const SESSIONS = 64;
const QUEUE_DEPTH = 32;
const ROUNDS = 3; // write + read-back per slot per round
const BLOCKS = 8; // 4 KiB per I/O

let t: Awaited<ReturnType<typeof startTarget>>;
beforeAll(async () => {
  t = await startTarget(['--lun', '0=memory:80M']);
});
afterAll(async () => {
  await t.close();
});

it(`serves ${SESSIONS} sessions x QD${QUEUE_DEPTH} of verified mixed I/O without errors or leaks`, async () => {
  const port = t.ports[0]!;
  const sessions: PipelinedSession[] = [];
  for (let s = 0; s < SESSIONS; s++) {
    const c = await IscsiTestClient.connect(port);
    const r = await c.login({ initiator: `iqn.2026-11.test:load${s}`, target: IQN, keys: [['ImmediateData', 'Yes'], ['InitialR2T', 'No']] });
    expect(r.status).toBe(0);
    sessions.push(new PipelinedSession(c));
  }
  expect(t.server.sessions().length).toBe(SESSIONS);
  let ios = 0;
  let mismatches = 0;
  let errors = 0;
  await Promise.all(
    sessions.map((sess, s) =>
      Promise.all(
        Array.from({ length: QUEUE_DEPTH }, async (_, slot) => {
          const lba = (s * QUEUE_DEPTH + slot) * BLOCKS;
          for (let round = 0; round < ROUNDS; round++) {
            const data = pattern(BLOCKS * 512, s * 1000 + slot * 10 + round);
            const w = await sess.command(cdb.write10(lba, BLOCKS), { write: data });
            const r = await sess.command(cdb.read10(lba, BLOCKS), { read: data.length });
            ios += 2;
            if (w.status !== 0 || r.status !== 0) errors++;
            else if (!r.data.equals(data)) mismatches++;
          }
        }),
      ),
    ),
  );
  expect(errors).toBe(0);
  expect(mismatches).toBe(0);
  expect(ios).toBe(SESSIONS * QUEUE_DEPTH * ROUNDS * 2);
  expect(t.server.sessions().reduce((a, s) => a + s.activeCommands, 0)).toBe(0);
  expect(t.core.stats().activeCommands).toBe(0);
  await Promise.all(sessions.map((s) => s.close()));
  for (let i = 0; i < 50 && t.server.sessions().length; i++) await new Promise((r) => setTimeout(r, 20));
  expect(t.server.sessions().length).toBe(0);
  expect(t.core.stats().nexuses).toBe(0);
});
