// WRITE ATOMIC(16) limits the service gives its LUs: memory and null stores keep nothing across a
// crash, so they advertise the same 1 MiB as journaled file stores, unless configured otherwise.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { cdb, IscsiTestClient } from './helpers/iscsi-client.js';
import { ProcessScope } from './service-helpers.js';

const T = 'iqn.2026-11.org.test:atomic';
const scope = new ProcessScope();
afterEach(() => scope.killAll());
afterAll(() => scope.cleanup());

/** Block Limits VPD (SBC-4 6.6.4): MAXIMUM ATOMIC TRANSFER LENGTH, in blocks, at bytes 44-47. */
async function maxAtomicBlocks(c: IscsiTestClient, lun: number): Promise<number> {
  const inquiry = Buffer.from([0x12, 0x01, 0xb0, 0x00, 0xff, 0x00]);
  const r = await c.scsi(inquiry, { read: 255, lun });
  expect(r.status).toBe(0);
  return r.data.readUInt32BE(44);
}

function writeAtomic16(lba: number, blocks: number): Buffer {
  const b = Buffer.alloc(16);
  b[0] = 0x9c;
  b.writeBigUInt64BE(BigInt(lba), 2);
  b.writeUInt16BE(blocks, 12);
  return b;
}

describe('WRITE ATOMIC(16) limits of the service LUs', () => {
  it('memory and null LUs allow 1 MiB; a configured limit wins', async () => {
    const svc = await scope.startWithConfig(
      [
        'backstores:',
        '  - { name: mem0, type: memory, size: 16MiB }',
        '  - { name: nul1, type: null, size: 16MiB }',
        '  - { name: mem2, type: memory, size: 16MiB, maxAtomicWriteBytes: 8KiB }',
        'targets:',
        `  - name: ${T}`,
        '    luns: [{ lun: 0, backstore: mem0 }, { lun: 1, backstore: nul1 }, { lun: 2, backstore: mem2 }]',
        '',
      ].join('\n'),
    );
    const c = await IscsiTestClient.connect(svc.port);
    expect((await c.login({ initiator: 'iqn.2026-11.org.test:init', target: T })).status).toBe(0);
    for (let i = 0; i < 3; i++) if ((await c.scsi(cdb.testUnitReady())).status === 0) break;

    expect(await maxAtomicBlocks(c, 0)).toBe(2048);
    expect(await maxAtomicBlocks(c, 1)).toBe(2048);
    expect(await maxAtomicBlocks(c, 2)).toBe(16);

    const payload = Buffer.alloc(64 * 1024);
    for (let i = 0; i < payload.length; i++) payload[i] = (i * 7) & 0xff;
    expect((await c.scsi(writeAtomic16(64, 128), { write: payload, lun: 0 })).status).toBe(0);
    const back = await c.scsi(cdb.read10(64, 128), { read: payload.length, lun: 0 });
    expect(back.data.equals(payload)).toBe(true);
    // Beyond the configured 8 KiB: CHECK CONDITION, INVALID FIELD IN CDB.
    const refused = await c.scsi(writeAtomic16(64, 128), { write: payload, lun: 2 });
    expect(refused.status).toBe(2);
    expect(refused.sense![12]).toBe(0x24);
  });
});
