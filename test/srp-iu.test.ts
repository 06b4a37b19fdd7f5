import { describe, expect, it } from 'vitest';
import {
  decodeAerReq,
  decodeAerRsp,
  decodeCmd,
  decodeCredReq,
  decodeCredRsp,
  decodeILogout,
  decodeLoginRej,
  decodeLoginReq,
  decodeLoginRsp,
  decodeRsp,
  decodeTLogout,
  decodeTskMgmt,
  encodeAerReq,
  encodeAerRsp,
  encodeCmd,
  encodeCredReq,
  encodeCredRsp,
  encodeILogout,
  encodeLoginRej,
  encodeLoginReq,
  encodeLoginRsp,
  encodeRsp,
  encodeTLogout,
  encodeTskMgmt,
} from '../src/srp/iu.js';
import { seededRandom } from '../src/sim/prng.js';

/** Hex with spaces/newlines and `#` comments ignored. */
const hex = (s: string): Buffer => Buffer.from(s.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
const TAG = hex('01 02 03 04 05 06 07 08');

describe('SRP IU byte fixtures, both directions', () => {
  it('SRP_LOGIN_REQ (64 bytes)', () => {
    const bytes = hex(`
      00 00000000000000       # opcode LOGIN_REQ, 7 reserved
      0102030405060708        # tag
      00000100 00000000       # req_it_iu_len 256, reserved
      0006 00 00 0000 0000    # req_buf_fmt direct|indirect, req_flags 0, rsvd, imm_data_offset 0, rsvd
      ${'00'.repeat(15)}01    # initiator_port_id
      ${'00'.repeat(15)}02    # target_port_id
    `);
    expect(bytes.length).toBe(64);
    const d = decodeLoginReq(bytes);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.value.reqItIuLen).toBe(256);
    expect(d.value.reqBufFmt).toBe(6);
    expect(d.value.tag).toEqual(TAG);
    expect(d.value.initiatorPortId[15]).toBe(1);
    expect(encodeLoginReq(d.value)).toEqual(bytes);
  });

  it('SRP_LOGIN_RSP (52 bytes)', () => {
    const bytes = hex(`
      c0 000000               # opcode LOGIN_RSP
      00000400                # req_lim_delta 1024
      0102030405060708        # tag
      00000100 00000100       # max_it_iu_len 256, max_ti_iu_len 256
      0006 02                 # buf_fmt, rsp_flags = existing channels maintained
      ${'00'.repeat(25)}
    `);
    expect(bytes.length).toBe(52);
    const v = { tag: TAG, reqLimDelta: 1024, maxItIuLen: 256, maxTiIuLen: 256, bufFmt: 6, rspFlags: 2 };
    expect(encodeLoginRsp(v)).toEqual(bytes);
    expect(decodeLoginRsp(bytes)).toEqual({ ok: true, value: v });
  });

  it('SRP_LOGIN_REJ (32 bytes)', () => {
    const bytes = hex(`c2 000000 00010006 0102030405060708 ${'00'.repeat(8)} 0006 ${'00'.repeat(6)}`);
    const v = { tag: TAG, reason: 0x00010006, bufFmt: 6 };
    expect(encodeLoginRej(v)).toEqual(bytes);
    expect(decodeLoginRej(bytes)).toEqual({ ok: true, value: v });
  });

  it('SRP_I_LOGOUT and SRP_T_LOGOUT (16 bytes)', () => {
    const il = hex('03 00000000000000 0102030405060708');
    expect(encodeILogout({ tag: TAG })).toEqual(il);
    expect(decodeILogout(il)).toEqual({ ok: true, value: { tag: TAG } });
    const tl = hex('80 01 0000 00000007 0102030405060708');
    const v = { tag: TAG, solNot: 1, reason: 7 };
    expect(encodeTLogout(v)).toEqual(tl);
    expect(decodeTLogout(tl)).toEqual({ ok: true, value: v });
  });

  it('SRP_TSK_MGMT (48 bytes, LUN at offset 20)', () => {
    const bytes = hex(`
      01 04 000000000000      # opcode, sol_not UCSOLNT, reserved
      0102030405060708        # tag
      00000000                # reserved
      8001000000000000        # lun (VIO t0 b0 l1)
      0000 01 00              # reserved, ABORT TASK, reserved
      1112131415161718        # task_tag
      ${'00'.repeat(8)}
    `);
    expect(bytes.length).toBe(48);
    const d = decodeTskMgmt(bytes);
    expect(d.ok && d.value.func).toBe(1);
    if (!d.ok) return;
    expect(d.value.taskTag).toEqual(hex('1112131415161718'));
    expect(encodeTskMgmt(d.value)).toEqual(bytes);
  });

  it('SRP_CMD with a direct data-in descriptor', () => {
    const bytes = hex(`
      02 00 000000 01 00 00   # opcode, sol_not, rsvd, buf_fmt (out none, in direct), counts
      0102030405060708        # tag
      00000000                # reserved
      8000000000000000        # lun
      00 00 00 00             # rsvd, task_attr SIMPLE, rsvd, add_cdb_len 0
      28000000001000000800000000000000  # READ(10) lba 16 len 8
      0000000000010000 00000000 00001000 # direct: va 0x10000 key 0 len 4096
    `);
    const d = decodeCmd(bytes);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.value.dataIn).toEqual({ format: 'direct', desc: { va: 0x10000n, key: 0, len: 4096 } });
    expect(d.value.dataOut).toEqual({ format: 'none' });
    expect(d.value.cdb[0]).toBe(0x28);
    expect(encodeCmd(d.value)).toEqual(bytes);
  });

  it('SRP_CMD with additional CDB and an indirect data-out descriptor', () => {
    const bytes = hex(`
      02 02 000000 20 02 00   # sol_not SCSOLNT, out indirect, 2 descriptors in IU
      0102030405060708
      00000000 8000000000000000
      00 02 00 04             # task_attr ORDERED, add_cdb_len 4 bytes
      7f000000000000000000000000000018  # 16 CDB bytes
      01020304                # additional CDB
      0000000000002000 00000000 00000020  # table_desc: va 0x2000, len 32 (2 entries)
      00002000                # total length 8192
      0000000000100000 00000000 00001000
      0000000000200000 00000000 00001000
    `);
    const d = decodeCmd(bytes);
    expect(d.ok).toBe(true);
    if (!d.ok) return;
    expect(d.value.cdb.length).toBe(20);
    expect(d.value.taskAttr).toBe(2);
    expect(d.value.dataOut.format).toBe('indirect');
    if (d.value.dataOut.format !== 'indirect') return;
    expect(d.value.dataOut.totalLength).toBe(8192);
    expect(d.value.dataOut.inIu.map((x) => x.va)).toEqual([0x100000n, 0x200000n]);
    expect(encodeCmd(d.value)).toEqual(bytes);
  });

  it('SRP_CMD hostile fields give typed errors', () => {
    const base = encodeCmd({
      tag: TAG, solNot: 0, lun: Buffer.alloc(8), taskAttr: 0, cdb: Buffer.alloc(16),
      dataOut: { format: 'none' }, dataIn: { format: 'direct', desc: { va: 0n, key: 0, len: 512 } },
    });
    const reserved = Buffer.from(base);
    reserved[31] = 0x01;
    expect(decodeCmd(reserved)).toMatchObject({ ok: false, error: { code: 'RESERVED_BITS' } });
    const attr = Buffer.from(base);
    attr[29] = 3;
    expect(decodeCmd(attr)).toMatchObject({ ok: false, error: { code: 'BAD_TASK_ATTRIBUTE' } });
    expect(decodeCmd(base.subarray(0, 60))).toMatchObject({ ok: false, error: { code: 'BAD_DESCRIPTOR' } });
    const longCdb = Buffer.from(base);
    longCdb[31] = 0xfc;
    expect(decodeCmd(longCdb)).toMatchObject({ ok: false, error: { code: 'SHORT_IU' } });
    const manyDesc = Buffer.from(base);
    manyDesc[5] = 0x02;
    manyDesc[7] = 200;
    expect(decodeCmd(manyDesc)).toMatchObject({ ok: false, error: { code: 'BAD_DESCRIPTOR' } });
    expect(decodeCmd(Buffer.alloc(10, 2))).toMatchObject({ ok: false, error: { code: 'SHORT_IU' } });
  });

  it('SRP_RSP: response data precedes sense; flags follow content', () => {
    const bytes = hex(`
      c1 01 0000 00000001     # opcode, SOLNT, rsvd, req_lim_delta 1
      0102030405060708
      0000 13 02              # rsvd, flags RSPVALID|SNSVALID|DIOVER, status CHECK CONDITION
      00000000 00000200       # data_out_res_cnt, data_in_res_cnt 512
      00000004 00000004       # sense_data_len 4, resp_data_len 4
      00000000                # response data (RSP_CODE 0)
      70000500                # sense (truncated for the fixture)
    `);
    const v = {
      tag: TAG, solNot: 1, reqLimDelta: 1, residualFlags: 0x10, status: 2, dataOutResidual: 0,
      dataInResidual: 512, responseData: hex('00000000'), sense: hex('70000500'),
    };
    expect(encodeRsp(v)).toEqual(bytes);
    expect(decodeRsp(bytes)).toEqual({ ok: true, value: v });
    const lying = Buffer.from(bytes);
    lying.writeUInt32BE(1000, 28);
    expect(decodeRsp(lying)).toMatchObject({ ok: false, error: { code: 'SHORT_IU' } });
  });

  it('SRP_CRED_REQ/RSP and SRP_AER_REQ/RSP', () => {
    const cq = hex('81 01 0000 00000005 0102030405060708');
    expect(encodeCredReq({ tag: TAG, solNot: 1, reqLimDelta: 5 })).toEqual(cq);
    expect(decodeCredReq(cq)).toEqual({ ok: true, value: { tag: TAG, solNot: 1, reqLimDelta: 5 } });
    const cr = hex('41 00000000000000 0102030405060708');
    expect(encodeCredRsp({ tag: TAG })).toEqual(cr);
    expect(decodeCredRsp(cr)).toEqual({ ok: true, value: { tag: TAG } });
    const aq = hex(`82 00 0000 00000001 0102030405060708 00000000 8000000000000000 00000002 00000000 7000`);
    const av = { tag: TAG, solNot: 0, reqLimDelta: 1, lun: hex('8000000000000000'), sense: hex('7000') };
    expect(encodeAerReq(av)).toEqual(aq);
    expect(decodeAerReq(aq)).toEqual({ ok: true, value: av });
    const ar = hex('42 00000000000000 0102030405060708');
    expect(encodeAerRsp({ tag: TAG })).toEqual(ar);
    expect(decodeAerRsp(ar)).toEqual({ ok: true, value: { tag: TAG } });
  });

  it('decoders never throw on random bytes', () => {
    const rnd = seededRandom(12345);
    const decoders = [decodeCmd, decodeTskMgmt, decodeLoginReq, decodeRsp, decodeAerReq, decodeILogout];
    let okCount = 0;
    for (let i = 0; i < 3000; i++) {
      const len = Math.floor(rnd() * 300);
      const b = Buffer.alloc(len);
      for (let j = 0; j < len; j++) b[j] = Math.floor(rnd() * 256);
      if (len > 0) b[0] = [0x00, 0x01, 0x02, 0x03, 0xc1, 0x82][i % 6]!;
      const r = decoders[i % decoders.length]!(b);
      if (r.ok) okCount++;
    }
    expect(okCount).toBeGreaterThan(0);
  });
});
