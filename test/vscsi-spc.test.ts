import { describe, expect, it } from 'vitest';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { GOOD, clearUa, decodeSense, rig, senseOf } from './vscsi-helpers.js';

const TUR = [0, 0, 0, 0, 0, 0];
const inquiry = (evpd: number, page: number, alloc: number) => [0x12, evpd, page, alloc >> 8, alloc & 0xff, 0];

describe('TEST UNIT READY and command validation', () => {
  it('returns GOOD on a mapped LUN', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: TUR });
    expect(r.status).toBe(GOOD);
    expect(r.residual).toEqual({ kind: 'none' });
  });

  it('rejects unknown LUNs with LOGICAL UNIT NOT SUPPORTED', async () => {
    const { fab } = rig();
    const s = senseOf(await fab.submit({ lun: 7, cdb: TUR }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x5, 0x25, 0x00]);
  });

  it('rejects unknown opcodes with a field pointer to byte 0', async () => {
    const { fab } = rig();
    const s = senseOf(await fab.submit({ cdb: [0xc7, 0, 0, 0, 0, 0] }));
    expect([s.key, s.asc]).toEqual([0x5, 0x20]);
    expect(s.field).toEqual({ inCdb: true, byte: 0 });
  });

  it.each([
    [[0, 1, 0, 0, 0, 0], 1, 0],
    [[0, 0, 0, 0x80, 0, 0], 3, 7],
    [[0, 0, 0, 0, 0, 0x04], 5, 2], // NACA
    [[0, 0, 0, 0, 0, 0x01], 5, 0], // LINK
  ])('reserved bit in TUR CDB %j → INVALID FIELD IN CDB byte %i bit %i', async (cdb, byte, bit) => {
    const { fab } = rig();
    const s = senseOf(await fab.submit({ cdb }));
    expect([s.key, s.asc]).toEqual([0x5, 0x24]);
    expect(s.field).toEqual({ inCdb: true, byte, bit });
  });

  it('rejects an unknown service action with a pointer to byte 1 bit 4', async () => {
    const { fab } = rig();
    const s = senseOf(await fab.submit({ cdb: [0x9e, 0x1b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0], expectedLength: 32 }));
    expect([s.key, s.asc]).toEqual([0x5, 0x24]);
    expect(s.field).toEqual({ inCdb: true, byte: 1, bit: 4 });
  });
});

describe('INQUIRY', () => {
  it('returns standard data with identity and version descriptors', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: inquiry(0, 0, 255), expectedLength: 255 });
    expect(r.status).toBe(GOOD);
    expect(r.data.length).toBe(96);
    expect(r.residual).toEqual({ kind: 'underflow', count: 255 - 96 });
    expect(r.data[0]).toBe(0x00);
    expect(r.data[2]).toBe(0x06);
    expect(r.data[3]! & 0x0f).toBe(2);
    expect(r.data[4]).toBe(91);
    expect((r.data[5]! >> 4) & 3).toBe(1); // TPGS implicit
    expect(r.data[7]! & 0x02).toBe(0x02); // CMDQUE
    expect(r.data.subarray(8, 16).toString('ascii')).toBe('VTGT    ');
    const versions = [0, 1, 2, 3].map((i) => r.data.readUInt16BE(58 + 2 * i));
    expect(versions).toEqual([0x00a0, 0x0460, 0x04c0, 0x0960]);
  });

  it('limits data to the allocation length and to the expected length (overflow)', async () => {
    const { fab } = rig();
    const a = await fab.submit({ cdb: inquiry(0, 0, 36), expectedLength: 36 });
    expect(a.data.length).toBe(36);
    expect(a.residual).toEqual({ kind: 'none' });
    const b = await fab.submit({ cdb: inquiry(0, 0, 255), expectedLength: 20 });
    expect(b.data.length).toBe(20);
    expect(b.residual).toEqual({ kind: 'overflow', count: 76 });
    const c = await fab.submit({ cdb: inquiry(0, 0, 0), expectedLength: 0 });
    expect(c.status).toBe(GOOD);
    expect(c.data.length).toBe(0);
  });

  it('answers on LUN 0 with PQ 011b when no LU 0 is mapped, and reports removable media', async () => {
    const { fab, target } = rig({ removable: true });
    let r = await fab.submit({ cdb: inquiry(0, 0, 96), expectedLength: 96 });
    expect(r.data[1]! & 0x80).toBe(0x80);
    const lu = target.luns.get(0)!;
    target.luns.delete(0);
    target.luns.set(1, lu);
    r = await fab.submit({ lun: 0, cdb: inquiry(0, 0, 96), expectedLength: 96 });
    expect(r.status).toBe(GOOD);
    expect(r.data[0]).toBe(0x7f);
  });

  it('rejects a page code without EVPD, unknown VPD pages and CMDDT', async () => {
    const { fab } = rig();
    expect(senseOf(await fab.submit({ cdb: inquiry(0, 0x80, 255), expectedLength: 255 })).field).toEqual({ inCdb: true, byte: 2, bit: 7 });
    expect(senseOf(await fab.submit({ cdb: inquiry(1, 0x42, 255), expectedLength: 255 })).asc).toBe(0x24);
    expect(senseOf(await fab.submit({ cdb: inquiry(2, 0, 255), expectedLength: 255 })).field).toEqual({ inCdb: true, byte: 1, bit: 1 });
  });

  it('lists supported VPD pages and serves each', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: inquiry(1, 0, 255), expectedLength: 255 });
    const pages = [...r.data.subarray(4, 4 + r.data.readUInt16BE(2))];
    expect(pages).toEqual([0x00, 0x80, 0x83, 0x86, 0xb0, 0xb1, 0xb2]);
    for (const p of pages) {
      const v = await fab.submit({ cdb: inquiry(1, p, 255), expectedLength: 255 });
      expect(v.status).toBe(GOOD);
      expect(v.data[1]).toBe(p);
      expect(v.data.readUInt16BE(2) + 4).toBe(v.data.length);
    }
    const serial = await fab.submit({ cdb: inquiry(1, 0x80, 255), expectedLength: 255 });
    expect(serial.data.subarray(4).toString('ascii')).toBe('SER0001');
  });

  it('device identification carries NAA, T10, relative port, port group and name designators', async () => {
    const { fab } = rig();
    const r = await fab.submit({ cdb: inquiry(1, 0x83, 1024), expectedLength: 1024 });
    const found: Array<{ assoc: number; type: number; value: Buffer; piv: boolean; proto: number }> = [];
    let o = 4;
    while (o < r.data.length) {
      const len = r.data[o + 3]!;
      found.push({
        proto: r.data[o]! >> 4,
        piv: (r.data[o + 1]! & 0x80) !== 0,
        assoc: (r.data[o + 1]! >> 4) & 3,
        type: r.data[o + 1]! & 0x0f,
        value: r.data.subarray(o + 4, o + 4 + len),
      });
      o += 4 + len;
    }
    expect(o).toBe(r.data.length);
    const naa = found.find((d) => d.type === 3)!;
    expect(naa.value.length).toBe(16);
    expect(naa.value[0]! >> 4).toBe(6);
    expect(found.find((d) => d.type === 1)!.value.toString('ascii')).toBe('VTGT    SER0001');
    const rtp = found.find((d) => d.type === 4)!;
    expect([rtp.assoc, rtp.piv, rtp.proto, rtp.value.readUInt16BE(2)]).toEqual([1, true, 5, 1]);
    expect(found.find((d) => d.type === 5)!.value.readUInt16BE(2)).toBe(1);
    expect(found.find((d) => d.type === 8)!.value.toString('utf8').replace(/\0+$/, '')).toBe('iqn.2026-01.test:target');
  });

  it('block limits and provisioning reflect the backstore', async () => {
    const { fab } = rig();
    const bl = await fab.submit({ cdb: inquiry(1, 0xb0, 64), expectedLength: 64 });
    expect(bl.data[4]! & 1).toBe(0); // WSNZ
    expect(bl.data.readUInt32BE(8)).toBe(65536); // max transfer in 512-byte blocks
    expect(bl.data.readUInt32BE(20)).toBeLessThanOrEqual(1024 * 1024);
    expect(bl.data.readUInt32BE(20)).toBeGreaterThan(0); // max unmap LBA count
    const lbp = await fab.submit({ cdb: inquiry(1, 0xb2, 64), expectedLength: 64 });
    expect(lbp.data[5]! & 0xe4).toBe(0xe4); // LBPU LBPWS LBPWS10 LBPRZ
    expect(lbp.data[6]! & 7).toBe(2); // thin
  });
});

describe('REPORT LUNS', () => {
  const reportLuns = (select: number, alloc: number) => [0xa0, 0, select, 0, 0, 0, alloc >>> 24, (alloc >> 16) & 0xff, (alloc >> 8) & 0xff, alloc & 0xff, 0, 0];

  it('lists mapped LUNs including flat-addressed ones', async () => {
    const { fab, target, core } = rig();
    const lu2 = core.addLogicalUnit({ id: 'disk1', backstore: new MemoryBackstore({ name: 'd1', size: 1 << 20 }) });
    target.luns.set(300, lu2);
    await clearUa(fab);
    const r = await fab.submit({ cdb: reportLuns(0, 4096), expectedLength: 4096 });
    expect(r.status).toBe(GOOD);
    expect(r.data.readUInt32BE(0)).toBe(16);
    expect(r.data.subarray(8, 16).toString('hex')).toBe('0000000000000000');
    expect(r.data.subarray(16, 24).toString('hex')).toBe('412c000000000000');
    expect(r.residual).toEqual({ kind: 'underflow', count: 4096 - 24 });
  });

  it('answers on an unmapped LUN, reports nothing for well-known only, and checks its fields', async () => {
    const { fab } = rig();
    expect((await fab.submit({ lun: 9, cdb: reportLuns(0, 64), expectedLength: 64 })).status).toBe(GOOD);
    const wk = await fab.submit({ cdb: reportLuns(1, 64), expectedLength: 64 });
    expect(wk.data.readUInt32BE(0)).toBe(0);
    expect(senseOf(await fab.submit({ cdb: reportLuns(3, 64), expectedLength: 64 })).field).toEqual({ inCdb: true, byte: 2, bit: 7 });
    expect(senseOf(await fab.submit({ cdb: reportLuns(0, 15), expectedLength: 15 })).field?.byte).toBe(6);
  });

  it('LUN map changes raise REPORTED LUNS DATA HAS CHANGED, cleared by REPORT LUNS', async () => {
    const { fab, target, core } = rig();
    const lu2 = core.addLogicalUnit({ id: 'disk1', backstore: new MemoryBackstore({ name: 'd1', size: 1 << 20 }) });
    target.luns.set(1, lu2);
    // INQUIRY is not blocked by the UA.
    expect((await fab.submit({ cdb: inquiry(0, 0, 36), expectedLength: 36 })).status).toBe(GOOD);
    expect((await fab.submit({ cdb: reportLuns(0, 64), expectedLength: 64 })).status).toBe(GOOD);
    expect((await fab.submit({ cdb: TUR })).status).toBe(GOOD);
    expect((await fab.submit({ lun: 1, cdb: TUR })).status).toBe(GOOD);
  });

  it('without REPORT LUNS, the UA is reported once per LUN', async () => {
    const { fab, target, core } = rig();
    target.luns.set(1, core.addLogicalUnit({ id: 'disk1', backstore: new MemoryBackstore({ name: 'd1', size: 1 << 20 }) }));
    const s = senseOf(await fab.submit({ cdb: TUR }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x6, 0x3f, 0x0e]);
    expect((await fab.submit({ cdb: TUR })).status).toBe(GOOD);
  });
});

describe('REQUEST SENSE', () => {
  it('returns NO SENSE, the pending UA, or LU NOT SUPPORTED in fixed or descriptor format', async () => {
    const { fab, target, core } = rig();
    let r = await fab.submit({ cdb: [0x03, 0, 0, 0, 252, 0], expectedLength: 252 });
    expect(r.status).toBe(GOOD);
    expect(decodeSense(r.data)).toMatchObject({ key: 0, asc: 0, format: 'fixed' });
    target.luns.set(1, core.addLogicalUnit({ id: 'disk1', backstore: new MemoryBackstore({ name: 'd1', size: 1 << 20 }) }));
    r = await fab.submit({ cdb: [0x03, 1, 0, 0, 252, 0], expectedLength: 252 });
    expect(decodeSense(r.data)).toMatchObject({ key: 6, asc: 0x3f, ascq: 0x0e, format: 'descriptor' });
    expect((await fab.submit({ cdb: TUR })).status).toBe(GOOD);
    r = await fab.submit({ lun: 5, cdb: [0x03, 0, 0, 0, 18, 0], expectedLength: 18 });
    expect(r.status).toBe(GOOD);
    expect(decodeSense(r.data)).toMatchObject({ key: 5, asc: 0x25 });
  });
});

describe('START STOP UNIT and PREVENT ALLOW MEDIUM REMOVAL', () => {
  const ssu = (b4: number, b1 = 0) => [0x1b, b1, 0, 0, b4, 0];
  const pamr = (p: number) => [0x1e, 0, 0, 0, p, 0];

  it('ejects and loads removable media; TUR reports MEDIUM NOT PRESENT meanwhile', async () => {
    const { fab } = rig({ removable: true });
    expect((await fab.submit({ cdb: ssu(0x02, 1) })).status).toBe(GOOD);
    let s = senseOf(await fab.submit({ cdb: TUR }));
    expect([s.key, s.asc]).toEqual([0x2, 0x3a]);
    s = senseOf(await fab.submit({ cdb: [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], expectedLength: 512 }));
    expect([s.key, s.asc]).toEqual([0x2, 0x3a]);
    expect((await fab.submit({ cdb: inquiry(0, 0, 36), expectedLength: 36 })).status).toBe(GOOD);
    expect((await fab.submit({ cdb: ssu(0x03) })).status).toBe(GOOD);
    expect((await fab.submit({ cdb: TUR })).status).toBe(GOOD);
  });

  it('PREVENT blocks ejection until ALLOW or I_T nexus loss', async () => {
    const { fab, other } = rig({ removable: true });
    expect((await fab.submit({ cdb: pamr(1) })).status).toBe(GOOD);
    const s = senseOf(await fab.submit({ cdb: ssu(0x02) }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x5, 0x53, 0x02]);
    const b = other();
    expect(senseOf(await b.submit({ cdb: ssu(0x02) })).asc).toBe(0x53);
    expect(senseOf(await fab.submit({ cdb: ssu(0x03) })).asc).toBe(0x53); // loading is prevented too
    await fab.nexus.close();
    expect((await b.submit({ cdb: ssu(0x02) })).status).toBe(GOOD);
  });

  it('power conditions ignore LOEJ; non-removable LUs refuse ejection; PREVENT 2/3 are invalid', async () => {
    const r = rig({ removable: true });
    expect((await r.fab.submit({ cdb: ssu(0x12) })).status).toBe(GOOD);
    expect((await r.fab.submit({ cdb: TUR })).status).toBe(GOOD);
    const fixed = rig();
    expect(senseOf(await fixed.fab.submit({ cdb: ssu(0x02) })).field).toEqual({ inCdb: true, byte: 4, bit: 1 });
    expect((await fixed.fab.submit({ cdb: ssu(0x00) })).status).toBe(GOOD);
    expect(senseOf(await fixed.fab.submit({ cdb: pamr(2) })).asc).toBe(0x24);
  });
});

describe('unit attentions', () => {
  it('the UA is reported before other errors, once, and does not block INQUIRY', async () => {
    const { fab, core, lu } = rig();
    core.unitAttention(lu, 'CAPACITY_DATA_HAS_CHANGED');
    expect((await fab.submit({ cdb: inquiry(0, 0, 36), expectedLength: 36 })).status).toBe(GOOD);
    const s = senseOf(await fab.submit({ cdb: [0xc7, 0, 0, 0, 0, 0] }));
    expect([s.key, s.asc, s.ascq]).toEqual([0x6, 0x2a, 0x09]);
    expect(senseOf(await fab.submit({ cdb: [0xc7, 0, 0, 0, 0, 0] })).asc).toBe(0x20);
  });

  it('commands keep flowing on other nexuses', async () => {
    const { fab, core, lu, other } = rig();
    const b = other();
    core.unitAttention(lu, 'MODE_PARAMETERS_CHANGED', undefined);
    expect(senseOf(await fab.submit({ cdb: TUR })).asc).toBe(0x2a);
    expect(senseOf(await b.submit({ cdb: TUR })).asc).toBe(0x2a);
    expect((await b.submit({ cdb: TUR })).status).toBe(GOOD);
    expect((await fab.submit({ cdb: TUR })).status).toBe(GOOD);
  });
});
