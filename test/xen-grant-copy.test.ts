import { afterEach, describe, expect, it } from 'vitest';
import { Buffer } from 'node:buffer';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GNTST } from '../src/xen/hypervisor.js';
import { GTF_permit_access, GTF_readonly, GuestMemoryFile } from '../src/xen/sim/guest-memory.js';
import { memoryFileName, SimGrantAccess } from '../src/xen/sim/grant-table.js';
import { XEN_PAGE_SIZE } from '../src/xen/ring.js';

const DOMID = 5;
const BACKEND = 0;
const cleanups: Array<() => void> = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

function guest(noShm: boolean): { memory: GuestMemoryFile; access: SimGrantAccess } {
  const dir = mkdtempSync(join(tmpdir(), 'vtgt-grant-'));
  const before = process.env.VTGT_XEN_SIM_NO_SHM;
  if (noShm) process.env.VTGT_XEN_SIM_NO_SHM = '1';
  try {
    const memory = GuestMemoryFile.create(join(dir, memoryFileName(DOMID)), 64);
    const access = new SimGrantAccess(dir, BACKEND);
    cleanups.push(() => {
      access.close();
      memory.close();
      rmSync(dir, { recursive: true, force: true });
    });
    return { memory, access };
  } finally {
    if (before === undefined) delete process.env.VTGT_XEN_SIM_NO_SHM;
    else process.env.VTGT_XEN_SIM_NO_SHM = before;
  }
}

describe.each([
  ['mapped through the addon', false],
  ['through pread/pwrite', true],
])('simulated grant copy, guest memory %s', (_name, noShm) => {
  it('writes and reads a batch of grant entries, frames before flags', () => {
    const { memory } = guest(noShm);
    memory.writeGrants([10, 3, 99], [7, 8, 9], GTF_permit_access | GTF_readonly, BACKEND);
    expect(memory.readGrant(3)).toEqual({ flags: GTF_permit_access | GTF_readonly, domid: BACKEND, frame: 8 });
    const raw = Buffer.alloc(24);
    memory.readGrants([99, 10, 3], raw);
    expect([raw.readUInt32LE(4), raw.readUInt32LE(12), raw.readUInt32LE(20)]).toEqual([9, 7, 8]);
    memory.writeGrants([10, 3, 99], undefined, 0, 0);
    expect(memory.readGrant(10)).toEqual({ flags: 0, domid: 0, frame: 0 });
    expect(() => memory.writeGrants([1, 4096], [1, 2], GTF_permit_access, BACKEND)).toThrow(/grant ref 4096 outside the table/);
  });

  it('copies a batch to and from the guest, refusing bad entries in place', () => {
    const { memory, access } = guest(noShm);
    memory.writeGrants([20, 21, 22, 23], [1, 2, 3, 4], GTF_permit_access, BACKEND);
    memory.writeGrants([24], [5], GTF_permit_access | GTF_readonly, BACKEND);
    memory.writeGrants([25], [6], GTF_permit_access, 7); // granted to another domain
    const src = Buffer.alloc(6 * 100);
    for (let i = 0; i < src.length; i++) src[i] = (i * 13) & 0xff;
    const ranges = [
      { ref: 20, offset: 0, length: 100 },
      { ref: 21, offset: XEN_PAGE_SIZE - 100, length: 100 },
      { ref: 24, offset: 0, length: 100 }, // read-only: no write
      { ref: 25, offset: 0, length: 100 }, // not ours
      { ref: 5000, offset: 0, length: 100 }, // outside the table
      { ref: 23, offset: 50, length: 100 },
    ];
    const st = access.copy('to-guest', DOMID, ranges, src, 0);
    expect(st).toEqual([GNTST.okay, GNTST.okay, GNTST.permission_denied, GNTST.permission_denied, GNTST.bad_gntref, GNTST.okay]);
    const page = (frame: number, offset: number) => {
      const b = Buffer.alloc(100);
      memory.readFrame(frame, offset, b, 0, 100);
      return b;
    };
    expect(page(1, 0)).toEqual(src.subarray(0, 100));
    expect(page(2, XEN_PAGE_SIZE - 100)).toEqual(src.subarray(100, 200));
    // The refused ranges still advanced the buffer: the last range took bytes 500..600.
    expect(page(4, 50)).toEqual(src.subarray(500, 600));

    const back = Buffer.alloc(6 * 100, 0xee);
    const st2 = access.copy('from-guest', DOMID, ranges, back, 0);
    expect(st2).toEqual([GNTST.okay, GNTST.okay, GNTST.okay, GNTST.permission_denied, GNTST.bad_gntref, GNTST.okay]);
    expect(back.subarray(0, 200)).toEqual(src.subarray(0, 200));
    expect(back.subarray(300, 500)).toEqual(Buffer.alloc(200, 0xee));
    expect(back.subarray(500)).toEqual(src.subarray(500));
    expect(access.stats.refused).toBe(5);

    // A range past the page or past the buffer, and an unknown domain, are refused too.
    expect(access.copy('from-guest', DOMID, [{ ref: 20, offset: 4000, length: 200 }], back, 0)).toEqual([GNTST.bad_copy_arg]);
    expect(access.copy('from-guest', DOMID, [{ ref: 20, offset: 0, length: 100 }], back, 550)).toEqual([GNTST.bad_copy_arg]);
    expect(access.copy('from-guest', 77, [{ ref: 20, offset: 0, length: 100 }], back, 0)).toEqual([GNTST.bad_domain]);
  });
});
