import { describe, expect, it } from 'vitest';
import { Buffer } from 'node:buffer';
import { TaskAttribute, type ScsiCompletion } from '../src/vscsi/fabric.js';
import { GOOD, cdb10, cdb16, clearUa, gatedStore, rig } from './vscsi-helpers.js';

/**
 * The nexus copies each CDB once, into memory the fabric cannot touch, before it checks it: a fabric
 * may reuse its buffer and a guest may rewrite shared memory after submitting (the hostile-guest rule).
 */
function submitRaw(nexus: ReturnType<typeof rig>['fab']['nexus'], cdb: Buffer, tag: bigint, dataOut?: Buffer): Promise<ScsiCompletion> {
  return new Promise((resolve) => {
    nexus.submit({
      lun: 0,
      cdb,
      attribute: TaskAttribute.SIMPLE,
      tag,
      direction: dataOut ? 'write' : 'none',
      expectedLength: dataOut?.length ?? 0,
      port: {
        fetchDataOut: (offset, length) => Promise.resolve(Buffer.from(dataOut!.subarray(offset, offset + length))),
        complete: resolve,
        aborted: () => resolve({ status: -1, residual: { kind: 'none' } } as unknown as ScsiCompletion),
      },
    });
  });
}

describe('CDB copy in the nexus', () => {
  it('a CDB rewritten after submit does not change the command', async () => {
    const g = gatedStore();
    const { fab } = rig({ backstore: g.mem });
    await clearUa(fab);
    const cdb = Buffer.from(cdb10(0x2a, 5, 1));
    const pending = submitRaw(fab.nexus, cdb, 900n, Buffer.alloc(512, 0x5c));
    cdb.writeUInt32BE(9, 2); // the guest now says LBA 9
    cdb[0] = 0x28;
    g.releaseAll();
    expect((await pending).status).toBe(GOOD);
    expect((await g.mem.read(5 * 512, 512)).every((v) => v === 0x5c)).toBe(true);
    expect((await g.mem.read(9 * 512, 512)).every((v) => v === 0)).toBe(true);
  });

  it('a short CDB after a long one sees none of the long one\'s bytes; an oversized CDB is checked as well', async () => {
    const { fab } = rig();
    await clearUa(fab);
    expect((await submitRaw(fab.nexus, Buffer.from(cdb16(0x88, 3n, 1)), 901n)).status).toBe(GOOD);
    // TEST UNIT READY: 6 bytes, all zero but the opcode; the scratch still holds READ(16)'s bytes.
    expect((await submitRaw(fab.nexus, Buffer.alloc(6), 902n)).status).toBe(GOOD);
    // A 300-byte buffer (larger than the nexus's scratch) whose first 6 bytes are a TEST UNIT READY.
    expect((await submitRaw(fab.nexus, Buffer.alloc(300), 903n)).status).toBe(GOOD);
    // A CDB shorter than its command's length is refused, not read past its end.
    const short = await submitRaw(fab.nexus, Buffer.from(cdb10(0x28, 0, 1)).subarray(0, 6), 904n);
    expect(short.status).toBe(0x02);
  });
});
