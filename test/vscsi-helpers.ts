/** Shared set-up for the SCSI core tests: a core, a target with one port, LUs on memory backstores. */
import { MemoryBackstore } from '../src/backstores/memory.js';
import type { Backstore, BackstoreCompletion } from '../src/backstores/backstore.js';
import { ScsiCore, type LogicalUnit, type ScsiTarget, type TargetPort } from '../src/vscsi/core.js';
import { LoopbackFabric, loopbackInitiator, type LoopbackResult } from '../src/vscsi/loopback.js';

export interface Rig {
  core: ScsiCore;
  target: ScsiTarget;
  port: TargetPort;
  lu: LogicalUnit;
  backstore: Backstore;
  fab: LoopbackFabric;
  /** Another initiator port (new I_T nexus) on the same target port. */
  other(name?: string): LoopbackFabric;
}

export function rig(
  opts: { blocks?: number; blockSize?: 512 | 4096; removable?: boolean; readOnly?: boolean; backstore?: Backstore; reservations?: false } = {},
): Rig {
  const core = new ScsiCore(opts.reservations === false ? { reservations: false } : {});
  const bs = opts.blockSize ?? 512;
  const backstore =
    opts.backstore ??
    new MemoryBackstore({
      name: 'disk0',
      size: (opts.blocks ?? 1024) * bs,
      blockSize: bs,
      removable: opts.removable ?? false,
      readOnly: opts.readOnly ?? false,
      // Small allocation units, so the UNMAP and GET LBA STATUS tests see ranges of a few blocks freed.
      chunkSize: 65536,
    });
  const lu = core.addLogicalUnit({ id: 'disk0', backstore, serial: 'SER0001' });
  const target = core.createTarget({ name: 'iqn.2026-01.test:target' });
  const port = target.addPort({ name: 'iqn.2026-01.test:target,t,0x0001' });
  target.luns.set(0, lu);
  const open = (name: string, isid: string) =>
    new LoopbackFabric(core.openNexus({ target, targetPort: port, initiator: loopbackInitiator(name, isid) }));
  const fab = open('iqn.2026-01.test:init-a', '0x000000000001');
  let n = 2;
  return {
    core,
    target,
    port,
    lu,
    backstore,
    fab,
    other: (name = `iqn.2026-01.test:init-${n}`) => open(name, `0x00000000000${n++}`),
  };
}

export interface DecodedSense {
  key: number;
  asc: number;
  ascq: number;
  format: 'fixed' | 'descriptor';
  /** Sense key specific field pointer when SKSV is set. */
  field?: { inCdb: boolean; byte: number; bit?: number };
  information?: bigint;
}

export function decodeSense(s: Buffer | undefined): DecodedSense {
  if (!s) throw new Error('no sense data');
  const code = s[0]! & 0x7f;
  if (code === 0x72 || code === 0x73) {
    const out: DecodedSense = { key: s[1]! & 0x0f, asc: s[2]!, ascq: s[3]!, format: 'descriptor' };
    let o = 8;
    while (o + 2 <= s.length) {
      const type = s[o]!;
      const len = s[o + 1]!;
      if (type === 0x00) out.information = s.readBigUInt64BE(o + 4);
      if (type === 0x02 && s[o + 4]! & 0x80) out.field = sks(s, o + 4);
      o += 2 + len;
    }
    return out;
  }
  const out: DecodedSense = { key: s[2]! & 0x0f, asc: s[12]!, ascq: s[13]!, format: 'fixed' };
  if (s[0]! & 0x80) out.information = BigInt(s.readUInt32BE(3));
  if (s[15]! & 0x80) out.field = sks(s, 15);
  return out;
}

function sks(s: Buffer, o: number): { inCdb: boolean; byte: number; bit?: number } {
  const b = s[o]!;
  const f: { inCdb: boolean; byte: number; bit?: number } = { inCdb: (b & 0x40) !== 0, byte: s.readUInt16BE(o + 1) };
  if (b & 0x08) f.bit = b & 0x07;
  return f;
}

export const GOOD = 0x00;
export const CHECK = 0x02;
export const CONFLICT = 0x18;
export const TASK_ABORTED = 0x40;

/** Expect CHECK CONDITION with key/asc/ascq; returns the decoded sense. */
export function senseOf(r: LoopbackResult): DecodedSense {
  if (r.status !== CHECK) throw new Error(`expected CHECK CONDITION, got status 0x${r.status.toString(16)}`);
  return decodeSense(r.sense);
}

export const cdb10 = (op: number, lba: number, len: number, b1 = 0): number[] => [
  op, b1, (lba >>> 24) & 0xff, (lba >>> 16) & 0xff, (lba >>> 8) & 0xff, lba & 0xff, 0, (len >> 8) & 0xff, len & 0xff, 0,
];

export function cdb16(op: number, lba: bigint, len: number, b1 = 0): number[] {
  const b = Buffer.alloc(16);
  b[0] = op;
  b[1] = b1;
  b.writeBigUInt64BE(BigInt.asUintN(64, lba), 2);
  b.writeUInt32BE(len >>> 0, 10);
  return [...b];
}

/** Clear the pending unit attentions of a fabric's LUN 0 with TEST UNIT READY. */
export async function clearUa(fab: LoopbackFabric, lun = 0): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const r = await fab.submit({ lun, cdb: [0, 0, 0, 0, 0, 0] });
    if (r.status !== CHECK || decodeSense(r.sense).key !== 0x6) return;
  }
}

/** A memory backstore whose writes wait until released, to hold commands in flight. */
export function gatedStore() {
  const mem = new MemoryBackstore({ name: 'gated', size: 1 << 20 });
  const waiting: Array<() => void> = [];
  let gated = true;
  const orig = mem.write.bind(mem);
  mem.write = async (o: number, d: Buffer, f: boolean) => {
    if (gated) await new Promise<void>((r) => waiting.push(r));
    return orig(o, d, f);
  };
  // The core's path: the write lands, and the command is told, when the gate opens.
  const origStart = mem.startWrite.bind(mem);
  mem.startWrite = (o: number, d: Buffer, f: boolean, done: BackstoreCompletion) => {
    if (!gated) return origStart(o, d, f, done);
    waiting.push(() => {
      let error: unknown;
      try {
        origStart(o, d, f, done);
      } catch (e) {
        error = e;
      }
      done.backstoreDone(error);
    });
    return false;
  };
  return {
    mem,
    inFlight: () => waiting.length,
    releaseAll() {
      gated = false;
      for (const w of waiting.splice(0)) w();
    },
  };
}

/**
 * The store without startRead/startWrite/lendRead/lendWrite, so the core reads and writes through its promise methods —
 * for tests that replace those methods, and to keep the core's promise path tested.
 */
export function promiseOnly<T extends Backstore>(store: T): T {
  return Object.assign(store, { startRead: undefined, startWrite: undefined, lendRead: undefined, lendWrite: undefined });
}
