import { afterAll, beforeAll, expect, it } from 'vitest';
import { IscsiTestClient, cdb } from './helpers/iscsi-client.js';
import { IQN, pattern, startTarget } from './helpers/iscsi-harness.js';
import { encodeTextKeys } from '../src/iscsi/text-keys.js';

let t: Awaited<ReturnType<typeof startTarget>>;
beforeAll(async () => {
  t = await startTarget(['--lun', '0=memory:8M']);
});
afterAll(async () => {
  await t.close();
});

/** Deterministic PRNG so a failure can be replayed from the printed seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x100000000;
  };
}

function pdu(op: number, flags: number, fill: (b: Buffer) => void, data?: Buffer): Buffer {
  const b = Buffer.alloc(48);
  b[0] = op;
  b[1] = flags;
  fill(b);
  const len = data?.length ?? 0;
  b[5] = (len >> 16) & 0xff;
  b[6] = (len >> 8) & 0xff;
  b[7] = len & 0xff;
  const pad = (4 - (len & 3)) & 3;
  return Buffer.concat([b, data ?? Buffer.alloc(0), Buffer.alloc(pad)]);
}

/** A valid login + full feature phase byte stream to mutate. */
function validStream(): Buffer[] {
  const login = pdu(0x43, 0x87, (b) => {
    Buffer.from('400000000009', 'hex').copy(b, 8);
    b.writeUInt32BE(1, 16);
    b.writeUInt32BE(1, 24);
  }, encodeTextKeys([['InitiatorName', 'iqn.2026-11.test:fuzz'], ['TargetName', IQN], ['SessionType', 'Normal'], ['ImmediateData', 'Yes'], ['InitialR2T', 'No']]));
  const write = pdu(0x01, 0xa1, (b) => {
    b.writeUInt32BE(2, 16);
    b.writeUInt32BE(4096, 20);
    b.writeUInt32BE(1, 24);
    cdb.write10(8, 8).copy(b, 32);
  }, pattern(2048, 3));
  const dataOut = pdu(0x05, 0x80, (b) => {
    b.writeUInt32BE(2, 16);
    b.writeUInt32BE(0xffffffff, 20);
    b.writeUInt32BE(2048, 40);
  }, pattern(2048, 4));
  const read = pdu(0x01, 0xc1, (b) => {
    b.writeUInt32BE(3, 16);
    b.writeUInt32BE(4096, 20);
    b.writeUInt32BE(2, 24);
    cdb.read10(8, 8).copy(b, 32);
  });
  const nop = pdu(0x00, 0x80, (b) => {
    b.writeUInt32BE(4, 16);
    b.writeUInt32BE(0xffffffff, 20);
    b.writeUInt32BE(3, 24);
  }, Buffer.from('nop'));
  const text = pdu(0x04, 0x80, (b) => {
    b.writeUInt32BE(5, 16);
    b.writeUInt32BE(0xffffffff, 20);
    b.writeUInt32BE(4, 24);
  }, encodeTextKeys([['SendTargets', 'All']]));
  const tmf = pdu(0x42, 0x81, (b) => {
    b.writeUInt32BE(6, 16);
    b.writeUInt32BE(3, 20);
    b.writeUInt32BE(5, 24);
  });
  const logout = pdu(0x46, 0x80, (b) => {
    b.writeUInt32BE(7, 16);
    b.writeUInt32BE(5, 24);
  });
  return [login, write, dataOut, read, nop, text, tmf, logout];
}

function mutate(r: () => number, stream: Buffer[]): Buffer {
  const pick = Math.floor(r() * 5);
  const parts = stream.map((b) => Buffer.from(b));
  if (pick === 0) {
    // random bytes after a valid login
    return Buffer.concat([parts[0]!, Buffer.from(Array.from({ length: Math.floor(r() * 600) }, () => Math.floor(r() * 256)))]);
  }
  if (pick === 1) {
    // byte flips anywhere (header fields, lengths, opcodes)
    const all = Buffer.concat(parts);
    const flips = 1 + Math.floor(r() * 8);
    for (let i = 0; i < flips; i++) all[Math.floor(r() * all.length)] ^= 1 << Math.floor(r() * 8);
    return all;
  }
  if (pick === 2) {
    // truncation
    const all = Buffer.concat(parts);
    return all.subarray(0, Math.floor(r() * all.length));
  }
  if (pick === 3) {
    // splice: valid PDUs in a random order, some duplicated
    const out: Buffer[] = [parts[0]!];
    for (let i = 0; i < 6; i++) out.push(parts[1 + Math.floor(r() * (parts.length - 1))]!);
    return Buffer.concat(out);
  }
  // header-only mutation of one PDU: random opcode and lengths
  const i = 1 + Math.floor(r() * (parts.length - 1));
  const p = parts[i]!;
  p[0] = Math.floor(r() * 64);
  p[4] = Math.floor(r() * 4);
  p[6] = Math.floor(r() * 256);
  return Buffer.concat(parts);
}

it('survives random and mutated PDUs, then serves a normal session correctly', async () => {
  const seed = Date.now() & 0xffffff;
  const r = rng(seed);
  const stream = validStream();
  const port = t.ports[0]!;
  const deadline = Date.now() + 4000;
  let cases = 0;
  while (Date.now() < deadline && cases < 1500) {
    const c = await IscsiTestClient.connect(port);
    c.sendRaw(mutate(r, stream));
    // Read whatever comes back for a moment, then hang up (mid-PDU or not).
    await c.next(Math.floor(r() * 20));
    c.close();
    cases++;
  }
  expect(cases).toBeGreaterThan(20);
  for (let i = 0; i < 100 && t.server.sessions().length; i++) await new Promise((res) => setTimeout(res, 20));
  expect(t.server.sessions()).toEqual([]);
  expect(t.core.stats().activeCommands).toBe(0);
  // The service still works normally.
  const c = await IscsiTestClient.connect(port);
  expect((await c.login({ initiator: 'iqn.2026-11.test:after-fuzz', target: IQN })).status).toBe(0);
  const data = pattern(65536, seed);
  expect((await c.scsi(cdb.write10(1000, 128), { write: data })).status).toBe(0);
  const back = await c.scsi(cdb.read10(1000, 128), { read: data.length });
  expect(back.data.equals(data), `seed ${seed}`).toBe(true);
  expect(await c.logout()).toBe(0);
  c.close();
});
