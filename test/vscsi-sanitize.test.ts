import { describe, expect, it } from 'vitest';
import { BackstoreError } from '../src/backstores/backstore.js';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { TmfFunction } from '../src/vscsi/fabric.js';
import { CHECK, CONFLICT, GOOD, cdb10, clearUa, decodeSense, rig, senseOf } from './vscsi-helpers.js';

const BS = 512;
const BLOCKS = 64;

function sanitizeCdb(sa: number, paramLength: number, flags = 0): number[] {
  return [0x48, flags | sa, 0, 0, 0, 0, 0, (paramLength >> 8) & 0xff, paramLength & 0xff, 0];
}
const OVERWRITE = 0x01;
const BLOCK_ERASE = 0x02;
const CRYPTO_ERASE = 0x03;
const EXIT_FAILURE_MODE = 0x1f;
const IMMED = 0x80;
const AUSE = 0x20;

function overwriteParams(pattern: Buffer, count = 1, invert = false): Buffer {
  const p = Buffer.alloc(4 + pattern.length);
  p[0] = (invert ? 0x80 : 0) | count;
  p.writeUInt16BE(pattern.length, 2);
  pattern.copy(p, 4);
  return p;
}

const TUR = { cdb: [0, 0, 0, 0, 0, 0] };
const READ1 = { cdb: cdb10(0x28, 0, 1), expectedLength: BS };
const tick = () => new Promise((r) => setImmediate(r));
const keyAsc = (s: { key: number; asc: number; ascq: number }) => [s.key, s.asc, s.ascq];

async function fresh(opts: { backstore?: MemoryBackstore } = {}) {
  const backstore = opts.backstore ?? new MemoryBackstore({ name: 'm', size: BLOCKS * BS, chunkSize: 4096 });
  const r = rig({ backstore });
  await clearUa(r.fab);
  await backstore.write(0, Buffer.alloc(BLOCKS * BS, 0x61), false);
  return { ...r, mem: backstore };
}

describe('SANITIZE OVERWRITE', () => {
  it('writes the pattern over every block, repeating a short pattern', async () => {
    const { fab, mem } = await fresh();
    const full = await fab.submit({ cdb: sanitizeCdb(OVERWRITE, BS + 4), dataOut: overwriteParams(Buffer.alloc(BS, 0xaa)) });
    expect(full.status).toBe(GOOD);
    expect((await mem.read(0, BLOCKS * BS)).equals(Buffer.alloc(BLOCKS * BS, 0xaa))).toBe(true);
    const short = await fab.submit({ cdb: sanitizeCdb(OVERWRITE, 8), dataOut: overwriteParams(Buffer.from([1, 2, 3, 4])) });
    expect(short.status).toBe(GOOD);
    const back = await mem.read((BLOCKS - 1) * BS, BS);
    expect([...back.subarray(0, 8)]).toEqual([1, 2, 3, 4, 1, 2, 3, 4]);
    expect([...back.subarray(BS - 4)]).toEqual([1, 2, 3, 4]);
  });

  it('INVERT alternates the pattern between passes (two passes end inverted)', async () => {
    const { fab, mem } = await fresh();
    const r = await fab.submit({ cdb: sanitizeCdb(OVERWRITE, 5), dataOut: overwriteParams(Buffer.from([0x0f]), 2, true) });
    expect(r.status).toBe(GOOD);
    expect((await mem.read(0, BLOCKS * BS)).equals(Buffer.alloc(BLOCKS * BS, 0xf0))).toBe(true);
  });

  it('refuses bad parameter list lengths, OVERWRITE COUNT 0 and bad pattern lengths, writing nothing', async () => {
    const { fab, mem } = await fresh();
    for (const len of [0, 1, 2, 3, 4, BS + 5]) {
      const s = senseOf(await fab.submit({ cdb: sanitizeCdb(OVERWRITE, len), dataOut: Buffer.alloc(len) }));
      expect([len, s.key, s.asc]).toEqual([len, 0x5, 0x24]);
    }
    const bad = [overwriteParams(Buffer.alloc(BS, 1), 0), overwriteParams(Buffer.alloc(0)), overwriteParams(Buffer.alloc(BS + 4, 1))];
    bad[1] = Buffer.concat([bad[1]!, Buffer.alloc(BS)]); // pattern length 0 in a long-enough list
    for (const p of bad.slice(0, 2)) {
      const s = senseOf(await fab.submit({ cdb: sanitizeCdb(OVERWRITE, p.length), dataOut: p }));
      expect([s.key, s.asc]).toEqual([0x5, 0x26]);
    }
    // Pattern longer than a block: the list is longer than BS + 4, refused on the CDB's length.
    const s = senseOf(await fab.submit({ cdb: sanitizeCdb(OVERWRITE, bad[2]!.length), dataOut: bad[2]! }));
    expect([s.key, s.asc]).toEqual([0x5, 0x24]);
    expect((await mem.read(0, BS)).equals(Buffer.alloc(BS, 0x61))).toBe(true);
  });
});

describe('SANITIZE BLOCK ERASE, CRYPTOGRAPHIC ERASE, EXIT FAILURE MODE', () => {
  it('BLOCK ERASE deallocates every block: reads zero, GET LBA STATUS all deallocated', async () => {
    const { fab, mem } = await fresh();
    expect((await fab.submit({ cdb: sanitizeCdb(BLOCK_ERASE, 0) })).status).toBe(GOOD);
    expect((await fab.submit({ cdb: cdb10(0x28, 0, BLOCKS), expectedLength: BLOCKS * BS })).data.equals(Buffer.alloc(BLOCKS * BS))).toBe(true);
    expect(mem.allocatedBytes).toBe(0);
    const gls = await fab.submit({ cdb: [0x9e, 0x12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], expectedLength: 256 });
    expect(gls.status).toBe(GOOD);
    expect(gls.data.readBigUInt64BE(8)).toBe(0n);
    expect(gls.data.readUInt32BE(16)).toBe(BLOCKS);
    expect(gls.data[20]).toBe(1); // DEALLOCATED
    expect(senseOf(await fab.submit({ cdb: sanitizeCdb(BLOCK_ERASE, 8), dataOut: Buffer.alloc(8) })).asc).toBe(0x24);
  });

  it('CRYPTOGRAPHIC ERASE and undefined service actions are INVALID FIELD IN CDB; RSOC lists 1, 2, 1Fh only', async () => {
    const { fab } = await fresh();
    for (const sa of [0, CRYPTO_ERASE, 4, 0x10, 0x1e]) {
      const s = senseOf(await fab.submit({ cdb: sanitizeCdb(sa, 0) }));
      expect([sa, s.key, s.asc]).toEqual([sa, 0x5, 0x24]);
    }
    const support = async (sa: number) => {
      const r = await fab.submit({ cdb: [0xa3, 0x0c, 0x02, 0x48, 0, sa, 0, 0, 0x01, 0, 0, 0], expectedLength: 256 });
      expect(r.status).toBe(GOOD);
      return r.data[1]! & 0x07;
    };
    expect([await support(OVERWRITE), await support(BLOCK_ERASE), await support(EXIT_FAILURE_MODE), await support(CRYPTO_ERASE)]).toEqual([3, 3, 3, 1]);
    // Block Device Characteristics: WABEREQ 01b, WACEREQ 00b.
    const b1 = await fab.submit({ cdb: [0x12, 0x01, 0xb1, 0x00, 0x40, 0x00], expectedLength: 64 });
    expect(b1.data[7]! & 0xf0).toBe(0x40);
  });

  it('EXIT FAILURE MODE: parameter list length must be 0; GOOD outside failure mode', async () => {
    const { fab } = await fresh();
    expect(senseOf(await fab.submit({ cdb: sanitizeCdb(EXIT_FAILURE_MODE, 8), dataOut: Buffer.alloc(8) })).asc).toBe(0x24);
    expect((await fab.submit({ cdb: sanitizeCdb(EXIT_FAILURE_MODE, 0) })).status).toBe(GOOD);
  });

  it('a failed sanitize leaves the LU in failure mode until EXIT FAILURE MODE (needs AUSE) or a good sanitize', async () => {
    const mem = new MemoryBackstore({ name: 'm', size: BLOCKS * BS, chunkSize: 4096 });
    const { fab } = await fresh({ backstore: mem });
    const orig = mem.writeZeroes.bind(mem);
    mem.writeZeroes = () => Promise.reject(new BackstoreError('io', 'injected EIO'));
    const failed = await fab.submit({ cdb: sanitizeCdb(BLOCK_ERASE, 0) });
    expect(keyAsc(senseOf(failed))).toEqual([0x3, 0x31, 0x03]);
    expect(keyAsc(senseOf(await fab.submit(READ1)))).toEqual([0x3, 0x31, 0x03]);
    const rs = await fab.submit({ cdb: [0x03, 0, 0, 0, 18, 0], expectedLength: 18 });
    expect([rs.data[2]! & 0x0f, rs.data[12], rs.data[13]]).toEqual([0x3, 0x31, 0x03]);
    // Without AUSE on the failed command, EXIT FAILURE MODE is refused.
    expect(senseOf(await fab.submit({ cdb: sanitizeCdb(EXIT_FAILURE_MODE, 0) })).asc).toBe(0x24);
    mem.writeZeroes = orig;
    expect((await fab.submit({ cdb: sanitizeCdb(BLOCK_ERASE, 0) })).status).toBe(GOOD);
    expect((await fab.submit(READ1)).status).toBe(GOOD);

    mem.writeZeroes = () => Promise.reject(new BackstoreError('io', 'injected EIO'));
    expect((await fab.submit({ cdb: sanitizeCdb(BLOCK_ERASE, 0, AUSE) })).status).toBe(CHECK);
    mem.writeZeroes = orig;
    expect((await fab.submit({ cdb: sanitizeCdb(EXIT_FAILURE_MODE, 0) })).status).toBe(GOOD);
    expect((await fab.submit(READ1)).status).toBe(GOOD);
  });
});

describe('SANITIZE interplay', () => {
  it('DATA PROTECT under SWP / read-only, RESERVATION CONFLICT against another RESERVE(6) holder', async () => {
    const ro = rig({ readOnly: true });
    await clearUa(ro.fab);
    expect(decodeSense((await ro.fab.submit({ cdb: sanitizeCdb(BLOCK_ERASE, 0) })).sense).key).toBe(0x7);
    const { fab, other } = await fresh();
    const b = other();
    await clearUa(b);
    expect((await b.submit({ cdb: [0x16, 0, 0, 0, 0, 0] })).status).toBe(GOOD); // RESERVE(6)
    expect((await fab.submit({ cdb: sanitizeCdb(BLOCK_ERASE, 0) })).status).toBe(CONFLICT);
    const p = overwriteParams(Buffer.alloc(BS, 0xaa));
    expect((await fab.submit({ cdb: sanitizeCdb(OVERWRITE, p.length), dataOut: p })).status).toBe(CONFLICT);
  });

  it('while it runs: NOT READY / SANITIZE IN PROGRESS with progress, INQUIRY served; it survives ABORT TASK and LU RESET', async () => {
    const mem = new MemoryBackstore({ name: 'm', size: BLOCKS * BS, chunkSize: 4096 });
    const { fab, other } = await fresh({ backstore: mem });
    const b = other();
    await clearUa(b);
    const gates: Array<() => void> = [];
    const orig = mem.write.bind(mem);
    mem.write = async (o: number, d: Buffer, f: boolean) => {
      await new Promise<void>((r) => gates.push(r));
      return orig(o, d, f);
    };
    const p = overwriteParams(Buffer.alloc(BS, 0x33));
    let sanitizeDone = false;
    let aborted = false;
    void fab
      .submit({ cdb: sanitizeCdb(OVERWRITE, p.length), dataOut: p, tag: 77n, onAborted: () => (aborted = true) })
      .then(() => (sanitizeDone = true));
    for (let i = 0; i < 10 && gates.length === 0; i++) await tick();
    expect(gates.length).toBe(1);

    expect(keyAsc(senseOf(await b.submit(TUR)))).toEqual([0x2, 0x04, 0x1b]);
    expect(keyAsc(senseOf(await b.submit(READ1)))).toEqual([0x2, 0x04, 0x1b]);
    expect(keyAsc(senseOf(await b.submit({ cdb: [0x1b, 0, 0, 0, 1, 0] })))).toEqual([0x2, 0x04, 0x1b]);
    expect((await b.submit({ cdb: [0x12, 0, 0, 0, 96, 0], expectedLength: 96 })).status).toBe(GOOD);
    const rs = await b.submit({ cdb: [0x03, 0, 0, 0, 18, 0], expectedLength: 18 });
    expect(rs.status).toBe(GOOD);
    expect([rs.data[2]! & 0x0f, rs.data[12], rs.data[13]]).toEqual([0x2, 0x04, 0x1b]);
    expect(rs.data[15]! & 0x80).toBe(0x80); // SKSV: progress indication

    // The command can be aborted; the operation goes on.
    await fab.taskManagement({ fn: TmfFunction.ABORT_TASK, lun: 0, referencedTag: 77n });
    expect(aborted).toBe(true);
    expect(sanitizeDone).toBe(false);
    await b.taskManagement({ fn: TmfFunction.LOGICAL_UNIT_RESET, lun: 0 });
    await clearUa(b);
    expect(keyAsc(senseOf(await b.submit(TUR)))).toEqual([0x2, 0x04, 0x1b]);

    mem.write = orig;
    gates.splice(0).forEach((g) => g());
    for (let i = 0; i < 20; i++) {
      const r = await b.submit(TUR);
      if (r.status === GOOD) break;
      await tick();
    }
    expect((await b.submit(TUR)).status).toBe(GOOD);
    expect((await mem.read(0, BLOCKS * BS)).equals(Buffer.alloc(BLOCKS * BS, 0x33))).toBe(true);
  });

  it('IMMED returns GOOD at once and the operation completes in the background', async () => {
    const { fab, mem, lu } = await fresh();
    const r = await fab.submit({ cdb: sanitizeCdb(BLOCK_ERASE, 0, IMMED) });
    expect(r.status).toBe(GOOD);
    await lu.sanitize?.done;
    expect((await fab.submit(TUR)).status).toBe(GOOD);
    expect(mem.allocatedBytes).toBe(0);
  });
});

describe('SANITIZE and commands already running', () => {
  it('a WRITE still receiving data-out when SANITIZE starts lands before the sanitize, not after it', async () => {
    const { fab, other, mem, lu } = await fresh();
    const b = other();
    await clearUa(b);
    let sendData!: () => void;
    const dataReady = new Promise<void>((r) => (sendData = r));
    let writeDone = false;
    b.nexus.submit({
      lun: 0,
      cdb: Buffer.from(cdb10(0x2a, 2, 1)),
      attribute: 0,
      tag: 500n,
      direction: 'write',
      expectedLength: BS,
      port: {
        fetchDataOut: async () => {
          await dataReady;
          return Buffer.alloc(BS, 0x99);
        },
        complete: () => (writeDone = true),
      },
    });
    for (let i = 0; i < 5; i++) await tick();
    const sanitized = fab.submit({ cdb: sanitizeCdb(BLOCK_ERASE, 0, IMMED) });
    expect((await sanitized).status).toBe(GOOD);
    sendData();
    await lu.sanitize?.done;
    expect(writeDone).toBe(true);
    // The erase ran after the WRITE: the block reads as zero like every other.
    expect((await mem.read(2 * BS, BS)).equals(Buffer.alloc(BS))).toBe(true);
  });
});

describe('SANITIZE and LU removal', () => {
  it('removing the LU waits for a background sanitize before the backstore is handed back', async () => {
    const { fab, core, mem, lu } = await fresh();
    const gates: Array<() => void> = [];
    const orig = mem.writeZeroes.bind(mem);
    mem.writeZeroes = async (o: number, l: number, u: boolean) => {
      await new Promise<void>((r) => gates.push(r));
      return orig(o, l, u);
    };
    expect((await fab.submit({ cdb: sanitizeCdb(BLOCK_ERASE, 0, IMMED) })).status).toBe(GOOD);
    for (let i = 0; i < 10 && gates.length === 0; i++) await tick();
    const removal = core.removeLogicalUnit('disk0');
    let removed = false;
    void removal.then(() => (removed = true));
    await tick();
    expect(removed).toBe(false); // still waiting for the erase
    gates.splice(0).forEach((g) => g());
    await removal;
    expect(lu.sanitize).toBeUndefined();
  });
});
