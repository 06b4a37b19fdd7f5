import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { AtomicWriteJournal, JOURNAL_HEADER_BYTES } from '../src/vscsi/atomic-journal.js';
import { ScsiCore } from '../src/vscsi/core.js';
import { LoopbackFabric, loopbackInitiator } from '../src/vscsi/loopback.js';
import { GOOD, clearUa } from './vscsi-helpers.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'vtgt-aj-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const mem = () => new MemoryBackstore({ name: 'm', size: 4096 * 512, chunkSize: 4096 });

function wa16(lba: bigint, blocks: number): number[] {
  const b = Buffer.alloc(16);
  b[0] = 0x9c;
  b.writeBigUInt64BE(lba, 2);
  b.writeUInt16BE(blocks, 12);
  return [...b];
}

describe('atomic write journal', () => {
  it('commit writes in place and leaves no live record', async () => {
    const store = mem();
    const file = path.join(dir, 'd.journal');
    const j = await AtomicWriteJournal.open({ path: file, backstore: store, lu: 'd' });
    const data = Buffer.alloc(64 * 512, 0x5a);
    await j.commit(512, data, () => store.write(512, data, true));
    expect((await store.read(512, data.length)).equals(data)).toBe(true);
    expect((await readFile(file)).subarray(0, JOURNAL_HEADER_BYTES).equals(Buffer.alloc(JOURNAL_HEADER_BYTES))).toBe(true);
    expect(j.committed).toBe(1);
    await j.close();
  });

  it('a crash after the record is durable replays the whole write at the next open', async () => {
    const store = mem();
    const file = path.join(dir, 'd.journal');
    const j = await AtomicWriteJournal.open({ path: file, backstore: store, lu: 'd' });
    const data = Buffer.alloc(32 * 512, 0x77);
    // The "crash": the in-place write only got its first block down, then the process died. The
    // journal file is copied as the crash would leave it: apply() runs only once the record is durable
    // (a copy taken earlier, while the record is being written, may hold half of it).
    let snapshot: Buffer | undefined;
    const crash = j.commit(1024, data, async () => {
      snapshot = await readFile(file);
      await store.write(1024, data.subarray(0, 512), false);
      throw new Error('power lost');
    });
    await expect(crash).rejects.toThrow(/power lost/);
    expect(snapshot?.[0]).toBe(0x56); // 'V' of the record's magic
    await j.close();
    await writeFile(file, snapshot!);
    expect((await store.read(1024 + 512, 512)).equals(Buffer.alloc(512))).toBe(true); // torn before replay
    const again = await AtomicWriteJournal.open({ path: file, backstore: store, lu: 'd' });
    expect((await store.read(1024, data.length)).equals(data)).toBe(true);
    await again.close();
    // Replayed once: the record is retired.
    expect((await readFile(file)).subarray(0, 8).equals(Buffer.alloc(8))).toBe(true);
  });

  it('a torn record (bad checksum, impossible length) is discarded, not replayed', async () => {
    const store = mem();
    const file = path.join(dir, 'd.journal');
    const header = Buffer.alloc(JOURNAL_HEADER_BYTES);
    header.write('VTGTAJ01', 0, 'ascii');
    header.writeBigUInt64BE(0n, 16);
    header.writeUInt32BE(512, 24);
    await writeFile(file, Buffer.concat([header, Buffer.alloc(512, 0xee)])); // hash all zero: invalid
    const j = await AtomicWriteJournal.open({ path: file, backstore: store, lu: 'd' });
    expect((await store.read(0, 512)).equals(Buffer.alloc(512))).toBe(true);
    await j.close();
    header.writeUInt32BE(0xffffffff, 24);
    await writeFile(file, header);
    const k = await AtomicWriteJournal.open({ path: file, backstore: store, lu: 'd' });
    await k.close();
    expect(store.allocatedBytes).toBe(0);
  });

  it('an LU with atomicJournalPath advertises 1 MiB and journals WRITE ATOMIC(16) larger than a physical block', async () => {
    const core = new ScsiCore({ reservations: false });
    const store = mem();
    const lu = core.addLogicalUnit({ id: 'd', backstore: store, atomicJournalPath: path.join(dir, 'j', 'd.journal') });
    const target = core.createTarget({ name: 'iqn.2026-01.test:t' });
    const port = target.addPort({ name: 'iqn.2026-01.test:t,t,0x1' });
    target.luns.set(0, lu);
    const fab = new LoopbackFabric(core.openNexus({ target, targetPort: port, initiator: loopbackInitiator() }));
    await clearUa(fab);
    const b0 = await fab.submit({ cdb: [0x12, 0x01, 0xb0, 0x00, 0x40, 0x00], expectedLength: 64 });
    expect(b0.data.readUInt32BE(44)).toBe(2048);
    const r = await fab.submit({ cdb: wa16(10n, 256), dataOut: Buffer.alloc(256 * 512, 0x3c) });
    expect(r.status).toBe(GOOD);
    expect((await store.read(10 * 512, 256 * 512)).equals(Buffer.alloc(256 * 512, 0x3c))).toBe(true);
    expect(lu.atomicJournal?.committed).toBe(1);
    expect((await fab.submit({ cdb: wa16(0n, 1), dataOut: Buffer.alloc(512, 1) })).status).toBe(GOOD);
    expect(lu.atomicJournal?.committed).toBe(1); // one block: written in place, no journal
    await core.removeLogicalUnit('d');
    expect(lu.atomicJournal).toBeUndefined();
  });

  it('a journal that cannot be opened leaves the LU NOT READY instead of serving torn data', async () => {
    const core = new ScsiCore({ reservations: false });
    await writeFile(path.join(dir, 'file'), 'x');
    const lu = core.addLogicalUnit({ id: 'd', backstore: mem(), atomicJournalPath: path.join(dir, 'file', 'd.journal') });
    await lu.ready;
    expect(lu.fault).toBe('LU_NOT_READY_MANUAL_INTERVENTION_REQUIRED');
  });
});
