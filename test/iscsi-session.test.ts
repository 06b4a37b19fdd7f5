import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IscsiTestClient, cdb } from './helpers/iscsi-client.js';
import { IQN, pattern, startTarget } from './helpers/iscsi-harness.js';
import { frameOut } from '../src/iscsi/receiver.js';

let t: Awaited<ReturnType<typeof startTarget>>;
let port: number;
const clients: IscsiTestClient[] = [];

async function session(keys: Array<[string, string]> = [], name = 'iqn.2026-11.test:host', isid?: Buffer): Promise<IscsiTestClient> {
  const c = await IscsiTestClient.connect(port);
  clients.push(c);
  const r = await c.login({ initiator: name, target: IQN, keys, ...(isid ? { isid } : {}) });
  expect(r.status).toBe(0);
  return c;
}

const opcode = (p: { bhs: Buffer } | undefined) => (p ? p.bhs[0]! & 0x3f : -1);

beforeAll(async () => {
  t = await startTarget(['--lun', '0=memory:32M', '--lun', '3=memory:8M']);
  port = t.ports[0]!;
});
afterAll(async () => {
  for (const c of clients) c.close();
  await t.close();
});

describe('iSCSI full feature phase against the real core', () => {
  it('reads INQUIRY and writes/reads patterns through immediate, unsolicited and solicited data', async () => {
    const configs: Array<Array<[string, string]>> = [
      [['ImmediateData', 'Yes'], ['InitialR2T', 'No'], ['FirstBurstLength', '65536'], ['MaxBurstLength', '131072']],
      [['ImmediateData', 'No'], ['InitialR2T', 'Yes'], ['MaxBurstLength', '65536'], ['MaxRecvDataSegmentLength', '4096']],
      [['ImmediateData', 'Yes'], ['InitialR2T', 'Yes']],
    ];
    for (const [i, keys] of configs.entries()) {
      const c = await session(keys, `iqn.2026-11.test:cfg${i}`);
      const inq = await c.scsi(cdb.inquiry(), { read: 96 });
      expect(inq.status).toBe(0);
      expect(inq.data.subarray(8, 12).toString()).toBe('VTGT');
      const data = pattern(600 * 512, i + 1);
      const w = await c.scsi(cdb.write10(1000 * (i + 1), 600), { write: data });
      expect(w.status).toBe(0);
      const r = await c.scsi(cdb.read10(1000 * (i + 1), 600), { read: data.length });
      expect(r.status).toBe(0);
      expect(r.data.equals(data)).toBe(true);
      if (keys.some(([k, v]) => k === 'InitialR2T' && v === 'Yes')) expect(w.r2ts).toBeGreaterThan(0);
      if (keys.some(([k]) => k === 'MaxRecvDataSegmentLength')) expect(r.dataInPdus).toBe(data.length / 4096);
      expect(await c.logout()).toBe(0);
    }
  });

  it('reports residual underflow for a short transfer and sense for a bad LBA', async () => {
    const c = await session();
    const r = await c.scsi(cdb.inquiry(36), { read: 200 });
    expect(r.status).toBe(0);
    expect(r.residualFlags & 0x02).toBe(0x02);
    expect(r.residual).toBe(200 - r.data.length);
    const bad = await c.scsi(cdb.read10(0x7fffffff, 1), { read: 512 });
    expect(bad.status).toBe(2);
    expect(bad.sense![2]! & 0x0f).toBe(5); // ILLEGAL REQUEST
  });

  it('answers NOP-Out pings with the same data and Text SendTargets', async () => {
    const c = await session();
    const nop = await c.ping(Buffer.from('ping-data'));
    expect(nop!.data.toString()).toBe('ping-data');
    const st = await c.text([['SendTargets', '']]);
    expect(st[0]).toEqual(['TargetName', IQN]);
    expect(st[1]![1]).toBe(`127.0.0.1:${port},1`);
  });

  it('lists targets in a discovery session', async () => {
    const c = await IscsiTestClient.connect(port);
    clients.push(c);
    expect((await c.login({ initiator: 'iqn.2026-11.test:disc', discovery: true })).status).toBe(0);
    const st = await c.text([['SendTargets', 'All']]);
    expect(st).toContainEqual(['TargetName', IQN]);
    // SCSI commands are refused in discovery sessions.
    c.sendPdu(c.commandBhs(cdb.testUnitReady(), {}));
    const rej = await c.next();
    expect(opcode(rej)).toBe(0x3f);
    expect(await c.logout()).toBe(0);
  });

  it('negotiates header and data digests and still moves data', async () => {
    const c = await session([['HeaderDigest', 'CRC32C'], ['DataDigest', 'CRC32C']]);
    expect(c.headerDigest && c.dataDigest).toBe(true);
    const data = pattern(64 * 1024, 99);
    expect((await c.scsi(cdb.write10(5000, 128), { write: data })).status).toBe(0);
    expect((await c.scsi(cdb.read10(5000, 128), { read: data.length })).data.equals(data)).toBe(true);
  });

  it('maps TMFs: ABORT TASK of an unknown task, LU reset, reassign not supported', async () => {
    const c = await session();
    const tmf = (fn: number, referencedTag = 0xffffffff, lun = 0) => c.tmf(fn, { referencedTag, lun, refCmdSn: (c.cmdSn - 5) >>> 0 });
    expect(await tmf(1, 0x12345)).toBe(1); // task does not exist
    expect(await tmf(5)).toBe(0); // LU reset: function complete
    expect(await tmf(8, 1)).toBe(4); // task reassign: not supported at ERL 0
    expect(await tmf(5, 0, 200)).toBe(2); // LUN does not exist
    // After the LU reset the next command sees the unit attention, then works.
    const ua = await c.scsi(cdb.testUnitReady());
    expect([0, 2]).toContain(ua.status);
    expect((await c.scsi(cdb.testUnitReady())).status).toBe(0);
  });

  it('aborts a write that waits for its data (ABORT TASK) and frees it', async () => {
    const c = await session([['ImmediateData', 'No'], ['InitialR2T', 'Yes']], 'iqn.2026-11.test:abort');
    const itt = c.itt++;
    const cmdSn = c.cmdSn;
    c.sendPdu(c.commandBhs(cdb.write10(300, 8), { write: 4096, itt }));
    const r2t = await c.next();
    expect(opcode(r2t)).toBe(0x31);
    const b = Buffer.alloc(48);
    b[0] = 0x42;
    b[1] = 0x81;
    b.writeUInt32BE(c.itt++, 16);
    b.writeUInt32BE(itt, 20);
    b.writeUInt32BE(c.cmdSn, 24);
    b.writeUInt32BE(c.expStatSn, 28);
    b.writeUInt32BE(cmdSn, 32);
    c.sendPdu(b);
    const resp = await c.next();
    expect(opcode(resp)).toBe(0x22);
    expect(resp!.bhs[2]).toBe(0); // function complete
    // Late data for the aborted task is dropped quietly; no SCSI Response ever comes for it.
    c.sendData(itt, r2t!.bhs.readUInt32BE(20), Buffer.alloc(4096), 0, 4096, 4096);
    expect((await c.scsi(cdb.testUnitReady())).status).toBe(0);
    const info = t.server.sessions().find((s) => s.initiator === 'iqn.2026-11.test:abort')!;
    expect(info.activeCommands).toBe(0);
  });

  it('joins a second connection to the session (MC/S) and reinstates a session with the same ISID', async () => {
    const isid = Buffer.from('400000000077', 'hex');
    const a = await session([['MaxConnections', '2']], 'iqn.2026-11.test:mcs', isid);
    const b = await IscsiTestClient.connect(port);
    clients.push(b);
    b.cmdSn = a.cmdSn;
    const r = await b.login({ initiator: 'iqn.2026-11.test:mcs', target: IQN, isid, tsih: a.tsih, cid: 1 });
    expect(r.status).toBe(0);
    expect(b.tsih).toBe(a.tsih);
    expect(t.server.sessions().find((s) => s.tsih === a.tsih)!.connections.length).toBe(2);
    // CmdSN is session-wide: b continues a's numbering.
    b.cmdSn = a.cmdSn;
    expect((await b.scsi(cdb.testUnitReady())).status).toBe(0);
    a.cmdSn = b.cmdSn;
    expect((await a.scsi(cdb.testUnitReady())).status).toBe(0);
    // Logging in again with CID 1 reinstates that connection: the old one is dropped, the new one serves.
    const b2 = await IscsiTestClient.connect(port);
    clients.push(b2);
    b2.cmdSn = a.cmdSn;
    expect((await b2.login({ initiator: 'iqn.2026-11.test:mcs', target: IQN, isid, tsih: a.tsih, cid: 1 })).status).toBe(0);
    expect(await b.waitClosed()).toBe(true);
    expect((await b2.scsi(cdb.testUnitReady())).status).toBe(0);
    expect(t.server.sessions().find((s) => s.tsih === a.tsih)!.connections.length).toBe(2);
    // A new login with the same ISID and TSIH 0 replaces the session: both old connections are dropped.
    const c = await session([], 'iqn.2026-11.test:mcs', isid);
    expect(await a.waitClosed()).toBe(true);
    expect(await b2.waitClosed()).toBe(true);
    expect([0, 2]).toContain((await c.scsi(cdb.testUnitReady())).status); // may report the nexus loss first
    expect((await c.scsi(cdb.testUnitReady())).status).toBe(0);
  });
});

describe('ErrorRecoveryLevel 0 connection failure', () => {
  it('ends the whole session when one of its connections fails, but not on a connection logout', async () => {
    const isid = Buffer.from('400000000088', 'hex');
    const join = async (a: IscsiTestClient, cid: number) => {
      const b = await IscsiTestClient.connect(port);
      clients.push(b);
      b.cmdSn = a.cmdSn;
      expect((await b.login({ initiator: 'iqn.2026-11.test:erl0', target: IQN, isid, tsih: a.tsih, cid })).status).toBe(0);
      return b;
    };
    const a = await session([['MaxConnections', '4']], 'iqn.2026-11.test:erl0', isid);
    const b = await join(a, 1);
    // Logout of connection 1 (reason 1) leaves connection 0 and the session alive.
    b.cmdSn = a.cmdSn;
    expect(await b.logout(1)).toBe(0);
    a.cmdSn = b.cmdSn;
    expect((await a.scsi(cdb.testUnitReady())).status).toBe(0);
    // An abrupt failure of another connection fails the session: connection 0 is dropped too.
    const c = await join(a, 2);
    c.close();
    expect(await a.waitClosed()).toBe(true);
    expect(t.server.sessions().some((x) => x.initiator === 'iqn.2026-11.test:erl0')).toBe(false);
  });
});

describe('hostile PDUs get the RFC answer and leave other sessions alone', () => {
  let bystander: IscsiTestClient;
  beforeAll(async () => {
    bystander = await session([], 'iqn.2026-11.test:bystander');
  });
  const bystanderStillWorks = async () => {
    const data = pattern(8192, Date.now() & 0xffff);
    expect((await bystander.scsi(cdb.write10(20000, 16), { write: data })).status).toBe(0);
    expect((await bystander.scsi(cdb.read10(20000, 16), { read: 8192 })).data.equals(data)).toBe(true);
  };

  it('unknown opcode → Reject (command not supported), session continues', async () => {
    const c = await session();
    const b = Buffer.alloc(48);
    b[0] = 0x1c;
    c.sendPdu(b);
    const p = await c.next();
    expect(opcode(p)).toBe(0x3f);
    expect(p!.bhs[2]).toBe(0x05);
    expect(p!.data.equals(b)).toBe(true);
    expect((await c.scsi(cdb.testUnitReady())).status).toBe(0);
    await bystanderStillWorks();
  });

  it('bad AHS → Reject (invalid PDU field)', async () => {
    const c = await session();
    const b = c.commandBhs(cdb.testUnitReady(), {});
    b[4] = 1;
    c.socket.write(Buffer.concat([frameOut(b, undefined, false, false)[0]!.subarray(0, 48), Buffer.from([0, 9, 9, 0])]));
    const p = await c.next();
    expect(opcode(p)).toBe(0x3f);
    expect(p!.bhs[2]).toBe(0x09);
    await bystanderStillWorks();
  });

  it('data segment over MaxRecvDataSegmentLength → Reject (protocol error) and the connection is dropped', async () => {
    const c = await session();
    const b = Buffer.alloc(48);
    b[0] = 0x40;
    b[1] = 0x80;
    b.writeUInt32BE(0xffffffff, 16);
    b.writeUInt32BE(0xffffffff, 20);
    b[5] = 0x10; // 1 MiB
    c.sendRaw(b);
    const p = await c.next();
    expect(opcode(p)).toBe(0x3f);
    expect(p!.bhs[2]).toBe(0x04);
    expect(await c.waitClosed()).toBe(true);
    await bystanderStillWorks();
  });

  it('header digest mismatch drops the connection; data digest mismatch is rejected and the session goes on', async () => {
    const c = await session([['HeaderDigest', 'CRC32C'], ['DataDigest', 'CRC32C']]);
    const nop = Buffer.alloc(48);
    nop[0] = 0x40;
    nop[1] = 0x80;
    nop.writeUInt32BE(c.itt++, 16);
    nop.writeUInt32BE(0xffffffff, 20);
    nop.writeUInt32BE(c.cmdSn, 24);
    nop[7] = 4;
    const frame = Buffer.concat(frameOut(nop, Buffer.from('abcd'), true, true));
    frame[frame.length - 1] ^= 0xff; // data digest
    c.sendRaw(frame);
    const p = await c.next();
    expect(opcode(p)).toBe(0x3f);
    expect(p!.bhs[2]).toBe(0x02);
    expect((await c.ping(Buffer.from('ok')))!.data.toString()).toBe('ok');
    const frame2 = Buffer.concat(frameOut(Buffer.from(nop), Buffer.from('abcd'), true, true));
    frame2[48] ^= 0xff; // header digest
    c.sendRaw(frame2);
    expect(await c.waitClosed()).toBe(true);
    await bystanderStillWorks();
  });

  it('CmdSN outside the window is ignored; the next in-window command is served', async () => {
    const c = await session();
    c.sendPdu(c.commandBhs(cdb.testUnitReady(), { cmdSn: (c.cmdSn + 100000) >>> 0 }));
    c.sendPdu(c.commandBhs(cdb.testUnitReady(), { cmdSn: (c.cmdSn - 5) >>> 0 }));
    expect(await c.next(300)).toBeUndefined();
    expect((await c.scsi(cdb.testUnitReady())).status).toBe(0);
  });

  it('Data-Out with an unknown Target Transfer Tag → Reject (invalid PDU field)', async () => {
    const c = await session([['ImmediateData', 'No'], ['InitialR2T', 'Yes']]);
    c.sendData(0x7777, 0x5555, Buffer.alloc(512), 0, 512, 8192);
    const p = await c.next();
    expect(opcode(p)).toBe(0x3f);
    expect(p!.bhs[2]).toBe(0x09);
    expect((await c.scsi(cdb.testUnitReady())).status).toBe(0);
  });

  it('bounds immediate commands (they bypass the CmdSN window) with Reject "too many immediate commands"', async () => {
    const c = await session([['ImmediateData', 'No'], ['InitialR2T', 'Yes']], 'iqn.2026-11.test:immediate');
    // Writes that wait for solicited data stay active; send one more than the window.
    for (let i = 0; i <= 128; i++) c.sendPdu(c.commandBhs(cdb.write10(i * 8, 8), { write: 4096, immediate: true }));
    let reject;
    for (let i = 0; i < 140 && !reject; i++) {
      const p = await c.next(2000);
      if (!p) break;
      if (opcode(p) === 0x3f) reject = p;
    }
    expect(reject?.bhs[2]).toBe(0x06);
    c.close();
    await bystanderStillWorks();
  });

  it('holds commands while an initiator does not read its data (bounded send queue)', async () => {
    const c = await session([], 'iqn.2026-11.test:slow-reader');
    c.socket.pause(); // never read
    for (let i = 0; i < 100; i++) c.sendPdu(c.commandBhs(cdb.read10(0, 8192), { read: 8192 * 512 })); // 100 x 4 MiB
    await new Promise((r) => setTimeout(r, 800));
    const info = t.server.sessions().find((s) => s.initiator === 'iqn.2026-11.test:slow-reader')!;
    // Without backpressure all 400 MiB would be queued in the target; now about 16 MiB + one 64 MiB read budget.
    expect(info.connections[0]!.sendQueueBytes).toBeLessThan(96 * 1024 * 1024);
    expect(info.activeCommands).toBeGreaterThan(50); // most reads are held, not served
    c.close();
    for (let i = 0; i < 50 && t.server.sessions().some((s) => s.initiator === 'iqn.2026-11.test:slow-reader'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(t.server.sessions().some((s) => s.initiator === 'iqn.2026-11.test:slow-reader')).toBe(false);
    await bystanderStillWorks();
  });

  it('Login Request in full feature phase → Reject (protocol error)', async () => {
    const c = await session();
    c.loginPdu({ initiator: 'x' }, 1, 3, true, [['InitiatorName', 'x']]);
    const p = await c.next();
    expect(opcode(p)).toBe(0x3f);
    expect(p!.bhs[2]).toBe(0x04);
    expect((await c.scsi(cdb.testUnitReady())).status).toBe(0);
  });

  it('a connection closing mid-PDU or mid-burst leaks no commands', async () => {
    const c1 = await session([['ImmediateData', 'No'], ['InitialR2T', 'Yes']]);
    const itt = c1.itt++;
    c1.sendPdu(c1.commandBhs(cdb.write10(100, 64), { write: 64 * 512, itt }));
    const r2t = await c1.next();
    expect(opcode(r2t)).toBe(0x31);
    c1.sendData(itt, r2t!.bhs.readUInt32BE(20), Buffer.alloc(64 * 512), 0, 4096, 4096); // part of the burst
    await new Promise((r) => setTimeout(r, 50));
    c1.close();
    const c2 = await session();
    c2.sendRaw(c2.commandBhs(cdb.testUnitReady(), {}).subarray(0, 20)); // half a header
    await new Promise((r) => setTimeout(r, 50));
    c2.close();
    await new Promise((r) => setTimeout(r, 200));
    const active = t.server.sessions().filter((s) => s.activeCommands > 0);
    expect(active.map((s) => `${s.initiator}: ${s.activeCommands}`)).toEqual([]);
    await bystanderStillWorks();
  });
});
