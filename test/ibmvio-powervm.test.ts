import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { H, TcePerm } from '../src/ibmvio/constants.js';
import { encodeCrq, ioba8 } from '../src/ibmvio/crq-entry.js';
import { SimPowerVM } from '../src/ibmvio/sim/hypervisor.js';
import { Partition } from '../src/ibmvio/sim/partition.js';

const SERVER = 0x30000000;
const CLIENT = 0x71000000;
const entry = (n: number) => encodeCrq({ valid: 0x80, format: 1, status: 0, timeout: 0, iuLength: 256, word1: ioba8(BigInt(n)) });

let dir: string;
let hv: SimPowerVM;
let parts: Partition[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'vtgt-powervm-'));
  hv = new SimPowerVM({ socketPath: join(dir, 'hv.sock'), maxCopyLength: 8192 });
  hv.addAdapterPair({ serverUnit: SERVER, clientUnit: CLIENT, clientPartition: 7 });
  await hv.listen();
});
afterEach(async () => {
  for (const p of parts) p.close();
  parts = [];
  await hv.close();
  await rm(dir, { recursive: true, force: true });
});
const boot = async (unit = CLIENT) => {
  const p = await Partition.boot({ socketPath: join(dir, 'hv.sock'), unit, memBytes: 64 * 1024 });
  parts.push(p);
  return p;
};
/** Poll `cond` (which may consume queue entries) until it holds once. */
const until = async (cond: () => boolean) => {
  let ok = false;
  for (let i = 0; i < 200 && !(ok = cond()); i++) await new Promise((r) => setTimeout(r, 5));
  expect(ok).toBe(true);
};

describe('simulated PowerVM', () => {
  it('refuses unknown units and double attachment', async () => {
    await expect(Partition.boot({ socketPath: join(dir, 'hv.sock'), unit: 0x1234, memBytes: 65536, token: 'x' })).rejects.toThrow(/no client adapter/);
    await expect(boot(0x1234)).rejects.toThrow(/cannot read the simulated-hypervisor credential of client adapter 0x1234/);
    await boot();
    await expect(boot()).rejects.toThrow(/already attached/);
  });

  it('a partition attaches only to the adapter whose credential it was given', async () => {
    const other = 0x71000001;
    hv.addAdapterPair({ serverUnit: SERVER + 1, clientUnit: other, clientPartition: 8 });
    const mine = hv.clientCredentialFile(CLIENT);
    expect(statSync(mine).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'hv.sock.cred')).mode & 0o777).toBe(0o700);
    const myToken = readFileSync(mine, 'utf8').trim();
    const sock = join(dir, 'hv.sock');
    // Our token on someone else's adapter, a forged one, none at all: H_PERMISSION.
    for (const token of [myToken, 'f'.repeat(64), '']) {
      await expect(Partition.boot({ socketPath: sock, unit: other, memBytes: 65536, token })).rejects.toThrow(/refused: no valid credential for client adapter 0x71000001/);
    }
    expect(hv.refusedAttaches).toBe(3);
    // The owner still attaches (its token file was issued when the pair was added after listen).
    const p = await Partition.boot({ socketPath: sock, unit: other, memBytes: 65536, tokenFile: hv.clientCredentialFile(other) });
    parts.push(p);
    expect(p.partitionNumber).toBe(8);
    // One partition per connection: a second attach on an attached connection drops it.
    const mineP = await boot();
    const closed = new Promise<void>((r) => {
      const t = setInterval(() => {
        if (mineP.isClosed) {
          clearInterval(t);
          r();
        }
      }, 5);
    });
    mineP.rawWrite(JSON.stringify({ op: 'attach', unit: other, windowBytes: 65536, token: myToken }) + '\n');
    await closed;
    expect(await mineP.hcall({ call: 'H_FREE_CRQ' })).toBe(H.CLOSED);
  });

  it('H_REG_CRQ / H_SEND_CRQ semantics: H_CLOSED without a partner queue, H_DROPPED when full, events on free', async () => {
    const irqs: number[] = [];
    expect(hv.registerCrq(SERVER, () => irqs.push(1))).toBe(H.CLOSED);
    expect(hv.registerCrq(SERVER, () => irqs.push(1))).toBe(H.RESOURCE);
    expect(hv.sendCrq(SERVER, entry(1))).toBe(H.CLOSED);
    const p = await boot();
    expect(await p.hcall({ call: 'H_REG_CRQ', ioba: 0, len: 4096 })).toBe(H.PARAMETER); // no TCE yet
    expect(await p.hcall({ call: 'H_PUT_TCE', ioba: 0, pages: 16, realOffset: 0, perm: TcePerm.RW })).toBe(H.SUCCESS);
    expect(await p.hcall({ call: 'H_PUT_TCE', ioba: 0, pages: 17, realOffset: 0, perm: TcePerm.RW })).toBe(H.PARAMETER);
    expect(await p.hcall({ call: 'H_REG_CRQ', ioba: 100, len: 4096 })).toBe(H.PARAMETER);
    expect(await p.hcall({ call: 'H_REG_CRQ', ioba: 0, len: 4096 })).toBe(H.SUCCESS);
    expect(await p.hcall({ call: 'H_REG_CRQ', ioba: 0, len: 4096 })).toBe(H.RESOURCE);
    // 256 slots, then full until the client consumes one.
    for (let i = 0; i < 256; i++) expect(hv.sendCrq(SERVER, entry(i + 1))).toBe(H.SUCCESS);
    expect(hv.sendCrq(SERVER, entry(999))).toBe(H.DROPPED);
    const slot = Buffer.alloc(16);
    p.mem.read(0, slot);
    expect(slot).toEqual(entry(1));
    p.mem.write(0, Buffer.alloc(1));
    expect(hv.sendCrq(SERVER, entry(257))).toBe(H.SUCCESS);
    // Client to server, and the server's queue.
    expect(await p.sendCrq(entry(5))).toBe(H.SUCCESS);
    await until(() => irqs.length > 0);
    expect(hv.receiveCrq(SERVER)).toEqual(entry(5));
    expect(hv.receiveCrq(SERVER)).toBeUndefined();
    expect(await p.hcall({ call: 'H_SEND_CRQ', entry: 'zz' })).toBe(H.PARAMETER);
    // The client frees its queue: the server gets a 0xFF/0x02 transport event.
    expect(await p.hcall({ call: 'H_FREE_CRQ' })).toBe(H.SUCCESS);
    await until(() => hv.receiveCrq(SERVER)?.[1] === 0x02);
    expect(hv.getPartnerInfo(SERVER)).toEqual({ rc: H.SUCCESS, partitionNumber: 7 });
  });

  it('H_COPY_RDMA goes through the TCE table: window bounds, permissions, length limit', async () => {
    hv.registerCrq(SERVER, () => undefined);
    const p = await boot();
    await p.hcall({ call: 'H_PUT_TCE', ioba: 0, pages: 4, realOffset: 0, perm: TcePerm.RW });
    await p.hcall({ call: 'H_PUT_TCE', ioba: 4 * 4096, pages: 1, realOffset: 8 * 4096, perm: TcePerm.READ });
    p.mem.write(8 * 4096, Buffer.from('remapped page'));
    const b = Buffer.alloc(13);
    expect(hv.copyFromPartner(SERVER, 4n * 4096n, b)).toBe(H.SUCCESS);
    expect(b.toString()).toBe('remapped page');
    expect(hv.copyToPartner(SERVER, 4n * 4096n, b)).toBe(H.PERMISSION); // read-only TCE
    expect(hv.copyFromPartner(SERVER, 5n * 4096n, b)).toBe(H.PERMISSION); // no TCE
    expect(hv.copyFromPartner(SERVER, 4096n * 4n - 4n, Buffer.alloc(8))).toBe(H.SUCCESS); // crosses into the remapped page
    expect(hv.copyToPartner(SERVER, 64n * 1024n - 4n, Buffer.alloc(8))).toBe(H.DEST_PARM); // past the window
    expect(hv.copyFromPartner(SERVER, 1n << 60n, Buffer.alloc(8))).toBe(H.SOURCE_PARM);
    expect(hv.copyFromPartner(SERVER, 0n, Buffer.alloc(8193))).toBe(H.PARAMETER);
    const refusedBefore = hv.stats.refusedCopies;
    expect(refusedBefore).toBeGreaterThanOrEqual(4);
    // A partition that dies: the server hears "partner failed".
    await p.hcall({ call: 'H_REG_CRQ', ioba: 0, len: 4096 });
    p.close();
    parts = [];
    await until(() => {
      const e = hv.receiveCrq(SERVER);
      return e?.[0] === 0xff && e[1] === 0x01;
    });
    expect(hv.copyFromPartner(SERVER, 0n, Buffer.alloc(8))).toBe(H.PERMISSION);
  });

  it('fault injection: forced H_DROPPED and a bad TCE', async () => {
    hv.registerCrq(SERVER, () => undefined);
    const p = await boot();
    await p.hcall({ call: 'H_PUT_TCE', ioba: 0, pages: 16, realOffset: 0, perm: TcePerm.RW });
    await p.hcall({ call: 'H_REG_CRQ', ioba: 0, len: 4096 });
    hv.injectQueueFull(CLIENT, 2);
    expect(hv.sendCrq(SERVER, entry(1))).toBe(H.DROPPED);
    expect(hv.sendCrq(SERVER, entry(1))).toBe(H.DROPPED);
    expect(hv.sendCrq(SERVER, entry(1))).toBe(H.SUCCESS);
    hv.injectBadTce(CLIENT, 3 * 4096);
    expect(hv.copyFromPartner(SERVER, 3n * 4096n, Buffer.alloc(4))).toBe(H.PERMISSION);
    expect(hv.copyFromPartner(SERVER, 2n * 4096n, Buffer.alloc(4))).toBe(H.SUCCESS);
  });
});
