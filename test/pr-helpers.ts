/** Shared builders for the persistent reservation tests (test/pr-*.test.ts). */
import { expect } from 'vitest';
import type { InitiatorPortId } from '../src/vscsi/fabric.js';
import { buildTransportId, prNexusKey, type PrInitiator, type PrOutcome, ReservationManager } from '../src/vscsi/pr/index.js';

export function iscsiPort(name: string, isid: string): InitiatorPortId {
  const portSuffix = `,i,0x${isid}`;
  return {
    name,
    portSuffix,
    protocolId: 5,
    transportId: buildTransportId({ protocolId: 5, name: name.toLowerCase(), portSuffix }),
  };
}

export function nexus(name: string, isid = '23d000000001', targetPortName = 'iqn.2025-01.org.vtgt:t1,t,0x0001', rtpi = 1): PrInitiator {
  const initiator = iscsiPort(name, isid);
  return { key: prNexusKey(initiator, targetPortName), initiator, relativeTargetPortId: rtpi, targetPortName };
}

/** PERSISTENT RESERVE OUT CDB (SPC-4 6.17.1). */
export function proutCdb(sa: number, type = 0, listLength = 24, scope = 0): Buffer {
  const c = Buffer.alloc(10);
  c[0] = 0x5f;
  c[1] = sa & 0x1f;
  c[2] = ((scope & 0xf) << 4) | (type & 0xf);
  c.writeUInt32BE(listLength, 5);
  return c;
}

/** PERSISTENT RESERVE IN CDB (SPC-4 6.16.1). */
export function prinCdb(sa: number, allocationLength = 8192): Buffer {
  const c = Buffer.alloc(10);
  c[0] = 0x5e;
  c[1] = sa & 0x1f;
  c.writeUInt16BE(allocationLength, 7);
  return c;
}

export interface BasicParams {
  key?: bigint;
  sark?: bigint;
  specIPt?: boolean;
  allTgPt?: boolean;
  aptpl?: boolean;
}

/** Basic PR OUT parameter list (SPC-4 6.17.3), 24 bytes. */
export function basicParams(p: BasicParams = {}): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64BE(p.key ?? 0n, 0);
  b.writeBigUInt64BE(p.sark ?? 0n, 8);
  b[20] = (p.specIPt ? 0x08 : 0) | (p.allTgPt ? 0x04 : 0) | (p.aptpl ? 0x01 : 0);
  return b;
}

export const SA = {
  REGISTER: 0,
  RESERVE: 1,
  RELEASE: 2,
  CLEAR: 3,
  PREEMPT: 4,
  PREEMPT_AND_ABORT: 5,
  REGISTER_AND_IGNORE: 6,
  REGISTER_AND_MOVE: 7,
} as const;

export const TYPES = [
  { name: 'WE', code: 1 },
  { name: 'EA', code: 3 },
  { name: 'WE-RO', code: 5 },
  { name: 'EA-RO', code: 6 },
  { name: 'WE-AR', code: 7 },
  { name: 'EA-AR', code: 8 },
] as const;
export const isAllReg = (t: number): boolean => t === 7 || t === 8;

/** Thin driver that reads like the libiscsi helpers. */
export class Pr {
  constructor(readonly m: ReservationManager) {}
  static async open(): Promise<Pr> {
    return new Pr(await ReservationManager.open({}));
  }
  out(n: PrInitiator, sa: number, params: Buffer, type = 0, scope = 0): Promise<PrOutcome> {
    return this.m.persistentReserveOut(n, proutCdb(sa, type, params.length, scope), params);
  }
  registerIgnore(n: PrInitiator, sark: bigint, extra: BasicParams = {}): Promise<PrOutcome> {
    return this.out(n, SA.REGISTER_AND_IGNORE, basicParams({ ...extra, sark }));
  }
  register(n: PrInitiator, key: bigint, sark: bigint, extra: BasicParams = {}): Promise<PrOutcome> {
    return this.out(n, SA.REGISTER, basicParams({ ...extra, key, sark }));
  }
  reserve(n: PrInitiator, key: bigint, type: number): Promise<PrOutcome> {
    return this.out(n, SA.RESERVE, basicParams({ key }), type);
  }
  release(n: PrInitiator, key: bigint, type: number): Promise<PrOutcome> {
    return this.out(n, SA.RELEASE, basicParams({ key }), type);
  }
  clear(n: PrInitiator, key: bigint): Promise<PrOutcome> {
    return this.out(n, SA.CLEAR, basicParams({ key }));
  }
  preempt(n: PrInitiator, key: bigint, sark: bigint, type: number, abort = false): Promise<PrOutcome> {
    return this.out(n, abort ? SA.PREEMPT_AND_ABORT : SA.PREEMPT, basicParams({ key, sark }), type);
  }
  readKeys(n: PrInitiator): { generation: number; keys: bigint[] } {
    const d = data(this.m.persistentReserveIn(n, prinCdb(0)));
    const len = d.readUInt32BE(4);
    const keys: bigint[] = [];
    for (let i = 0; i < len / 8; i++) keys.push(d.readBigUInt64BE(8 + 8 * i));
    return { generation: d.readUInt32BE(0), keys };
  }
  readReservation(n: PrInitiator): { generation: number; key: bigint; type: number; scope: number } | { generation: number } {
    const d = data(this.m.persistentReserveIn(n, prinCdb(1)));
    if (d.readUInt32BE(4) === 0) return { generation: d.readUInt32BE(0) };
    return { generation: d.readUInt32BE(0), key: d.readBigUInt64BE(8), type: d[21]! & 0xf, scope: d[21]! >> 4 };
  }
  /** READ10 / WRITE10 of LBA 1, as libiscsi's verify_read_works / verify_write_works send them. */
  canRead(n: PrInitiator): boolean {
    return !this.m.checkConflict(n, Buffer.from([0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0]));
  }
  canWrite(n: PrInitiator): boolean {
    return !this.m.checkConflict(n, Buffer.from([0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0]));
  }
}

export function data(o: PrOutcome): Buffer {
  if (o.kind !== 'good' || !o.data) throw new Error(`expected GOOD with data, got ${JSON.stringify(o)}`);
  return o.data;
}

export function expectGood(o: PrOutcome): void {
  expect(o.kind, JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v))).toBe('good');
}
