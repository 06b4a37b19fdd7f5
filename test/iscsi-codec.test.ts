import { describe, expect, it } from 'vitest';
import { PduReceiver, frameOut, digestOf } from '../src/iscsi/receiver.js';
import { parseScsiCommand, buildScsiResponse, buildDataIn, buildR2t, parseDataOut } from '../src/iscsi/pdu-scsi.js';
import { buildLoginResponse, parseLoginRequest, parseTextRequest, buildTextResponse, parseLogoutRequest } from '../src/iscsi/pdu-login.js';
import { buildReject, buildNopIn, parseTmfRequest, buildAsyncMessage, buildTmfResponse } from '../src/iscsi/pdu-misc.js';
import { decodeTextKeys, encodeTextKeys } from '../src/iscsi/text-keys.js';
import { serialLt, serialAdd } from '../src/iscsi/pdu.js';
import type { Pdu } from '../src/iscsi/pdu.js';

/** Hex fixture with comments: "# ..." to end of line is ignored. */
const hex = (s: string): Buffer => Buffer.from(s.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
const asPdu = (b: Buffer, ahs = 0): Pdu => ({ bhs: b.subarray(0, 48), ahs: b.subarray(48, 48 + ahs), data: b.subarray(48 + ahs) });
const seq = { statSn: 7, expCmdSn: 6, maxCmdSn: 0x85 };

// RFC 7143 §11.3: READ(10) LBA 0x10, 8 blocks, simple task, LUN 1.
const READ10_CMD = hex(`
  01            # opcode 0x01 SCSI Command, I=0
  c1            # F=1 R=1 W=0 ATTR=1 (simple)
  0000          # reserved
  00            # TotalAHSLength
  000000        # DataSegmentLength
  0001000000000000  # LUN 1 (peripheral addressing)
  11223344      # Initiator Task Tag
  00001000      # Expected Data Transfer Length 4096
  00000005      # CmdSN
  00000009      # ExpStatSN
  28000000001000000800000000000000  # CDB: READ(10) LBA 0x10 len 8
`);

describe('iSCSI PDU codecs (annotated fixtures)', () => {
  it('parses a SCSI Command', () => {
    const r = parseScsiCommand(asPdu(READ10_CMD));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value).toMatchObject({ immediate: false, final: true, read: true, write: false, attr: 1, itt: 0x11223344, edtl: 4096, cmdSn: 5, expStatSn: 9 });
    expect(r.value.cdb.subarray(0, 10).toString('hex')).toBe('28000000001000000800');
    expect(r.value.lunField.toString('hex')).toBe('0001000000000000');
  });

  it('parses extended CDB and bidirectional AHS, and rejects a malformed AHS', () => {
    const bhs = Buffer.from(READ10_CMD);
    bhs[4] = 5; // 20 bytes of AHS
    const ahs = hex(`
      0011 01 00  # AHSLength 17 (32-byte CDB: 16 extra + reserved byte), type 1 extended CDB, reserved
      ${'aa'.repeat(16)}   # CDB bytes 16..31 (3 + 17 = 20 bytes: no padding)
    `);
    const r = parseScsiCommand({ bhs, ahs, data: Buffer.alloc(0) });
    expect(r.ok && r.value.cdb.length).toBe(32);
    expect(r.ok && r.value.cdb.subarray(16).equals(Buffer.alloc(16, 0xaa))).toBe(true);
    const bidi = hex(`0005 02 00  00002000   # AHSLength 5, type 2, read length 8192`);
    const r2 = parseScsiCommand({ bhs, ahs: Buffer.concat([bidi, Buffer.alloc(12)]), data: Buffer.alloc(0) });
    // 12 zero bytes after it are an AHS of length 0: malformed
    expect(r2.ok).toBe(false);
    const r3 = parseScsiCommand({ bhs, ahs: bidi, data: Buffer.alloc(0) });
    expect(r3.ok && r3.value.bidiReadLength).toBe(8192);
    const r4 = parseScsiCommand({ bhs, ahs: hex('00ff0100'), data: Buffer.alloc(0) });
    expect(r4.ok).toBe(false);
  });

  it('builds a SCSI Response with sense and underflow', () => {
    const sense = Buffer.alloc(18, 0x70);
    const pdu = buildScsiResponse(0x11223344, 0x02, seq, 0, { underflow: 512 }, sense);
    expect(pdu.bhs.toString('hex')).toBe(
      hex(`
      21 82 00 02      # SCSI Response, F + U (underflow), response 0 (completed at target), status CHECK CONDITION
      00 000014        # no AHS, DataSegmentLength 20 (2-byte SenseLength + 18)
      0000000000000000 # reserved
      11223344         # ITT
      00000000         # SNACK Tag
      00000007 00000006 00000085  # StatSN ExpCmdSN MaxCmdSN
      00000000         # ExpDataSN
      00000000         # Bidirectional Read Residual Count
      00000200         # Residual Count 512
    `).toString('hex'),
    );
    expect(pdu.data!.readUInt16BE(0)).toBe(18);
    expect(pdu.data!.subarray(2).equals(sense)).toBe(true);
  });

  it('builds Data-In with status (phase collapse) and without', () => {
    const d = buildDataIn({ itt: 1, final: true, dataSn: 3, bufferOffset: 0x2000, expCmdSn: 6, maxCmdSn: 0x85, status: { scsiStatus: 0, statSn: 7, residual: { overflow: 4 } } }, Buffer.alloc(8, 1));
    expect(d.bhs.toString('hex')).toBe(
      hex(`
      25 85 00 00      # Data-In, F + O (overflow) + S (status), status GOOD
      00 000008        # DataSegmentLength 8
      0000000000000000 # LUN (A bit clear)
      00000001 ffffffff # ITT, TTT reserved
      00000007 00000006 00000085  # StatSN ExpCmdSN MaxCmdSN
      00000003         # DataSN
      00002000         # Buffer Offset
      00000004         # Residual Count
    `).toString('hex'),
    );
    const plain = buildDataIn({ itt: 1, final: false, dataSn: 0, bufferOffset: 0, expCmdSn: 6, maxCmdSn: 0x85 }, Buffer.alloc(4));
    expect(plain.bhs[1]).toBe(0x00);
    expect(plain.bhs.readUInt32BE(24)).toBe(0); // no StatSN without S
  });

  it('builds R2T, Reject, NOP-In, TMF response, Async Message and Login/Text/Logout responses', () => {
    const r2t = buildR2t({ lunField: hex('0002000000000000'), itt: 9, ttt: 0x77, ...seq, r2tSn: 2, bufferOffset: 65536, desiredLength: 262144 });
    expect(r2t.bhs.toString('hex')).toBe(
      hex(`31 80 0000 00 000000 0002000000000000 00000009 00000077 00000007 00000006 00000085
           00000002   # R2TSN
           00010000   # Buffer Offset
           00040000   # Desired Data Transfer Length`).toString('hex'),
    );
    const rej = buildReject(0x09, READ10_CMD, seq);
    expect(rej.bhs.subarray(0, 8).toString('hex')).toBe('3f80090000000030'); // reason 9, DSL 48
    expect(rej.bhs.readUInt32BE(16)).toBe(0xffffffff);
    expect(rej.data!.equals(READ10_CMD.subarray(0, 48))).toBe(true);
    const nop = buildNopIn(0xffffffff, 0x1234, undefined, seq);
    expect(nop.bhs.subarray(16, 24).toString('hex')).toBe('ffffffff00001234');
    const tmf = buildTmfResponse(5, 1, seq);
    expect(tmf.bhs.subarray(0, 4).toString('hex')).toBe('22800100');
    const am = buildAsyncMessage({ event: 1, parameter3: 10 }, seq);
    expect(am.bhs[36]).toBe(1);
    expect(am.bhs.readUInt16BE(42)).toBe(10);
    const lr = buildLoginResponse(
      { transit: true, cont: false, csg: 1, nsg: 3, isid: hex('800000000001'), tsih: 0x10, itt: 2, seq, status: 0x0201 },
      encodeTextKeys([['A', 'b']]),
    );
    expect(lr.bhs.toString('hex')).toBe(
      hex(`23 87 00 00       # Login Response, T=1 CSG=1 NSG=3, VersionMax/Active 0
           00 000004         # DSL 4 ("A=b\\0")
           800000000001 0010 # ISID, TSIH
           00000002 00000000 # ITT, reserved
           00000007 00000006 00000085
           02 01             # Status-Class 2 (initiator error), detail 1 (authentication failure)
           0000 0000000000000000  # reserved`).toString('hex'),
    );
    const tr = buildTextResponse(3, 0x99, false, true, seq, Buffer.alloc(4));
    expect(tr.bhs.subarray(0, 2).toString('hex')).toBe('2440');
    expect(tr.bhs.readUInt32BE(20)).toBe(0x99);
  });

  it('parses Login, Text, Logout, TMF and Data-Out requests', () => {
    const login = parseLoginRequest(
      asPdu(
        hex(`43 81 00 00 00 000000   # Login, I=1, T=1 CSG=0 NSG=1
             023d00000001 0000       # ISID type 0 / OUI, TSIH 0
             00000001 0002 0000       # ITT, CID 2
             00000001 00000000 ${'00'.repeat(16)}`),
      ),
    );
    expect(login).toMatchObject({ immediate: true, transit: true, cont: false, csg: 0, nsg: 1, tsih: 0, itt: 1, cid: 2, cmdSn: 1 });
    const text = parseTextRequest(asPdu(hex(`44 c0 0000 00 000000 ${'00'.repeat(8)} 00000004 ffffffff 00000002 00000003 ${'00'.repeat(16)}`)));
    expect(text).toMatchObject({ immediate: true, final: true, cont: true, itt: 4, ttt: 0xffffffff, cmdSn: 2 });
    const lo = parseLogoutRequest(asPdu(hex(`46 81 0000 00 000000 ${'00'.repeat(8)} 00000005 0007 0000 00000003 00000004 ${'00'.repeat(16)}`)));
    expect(lo).toMatchObject({ immediate: true, reason: 1, itt: 5, cid: 7, cmdSn: 3 });
    const tmf = parseTmfRequest(asPdu(hex(`42 81 0000 00 000000 0001000000000000 00000006 00000002 00000004 00000005 00000003 00000000 ${'00'.repeat(8)}`)));
    expect(tmf).toMatchObject({ fn: 1, itt: 6, referencedTaskTag: 2, cmdSn: 4, refCmdSn: 3 });
    const dout = parseDataOut(asPdu(hex(`05 80 0000 00 000004 ${'00'.repeat(8)} 00000001 00000010 00000000 00000009 00000000 00000002 00000200 00000000 deadbeef`)));
    expect(dout).toMatchObject({ final: true, itt: 1, ttt: 0x10, dataSn: 2, bufferOffset: 512 });
    expect(dout.data.toString('hex')).toBe('deadbeef');
  });

  it('decodes and encodes text keys, and refuses malformed text without throwing', () => {
    const enc = encodeTextKeys([['HeaderDigest', 'CRC32C,None'], ['MaxRecvDataSegmentLength', '65536']]);
    expect(enc.toString('latin1')).toBe('HeaderDigest=CRC32C,None\0MaxRecvDataSegmentLength=65536\0');
    const dec = decodeTextKeys(enc);
    expect(dec.ok && dec.pairs).toEqual([['HeaderDigest', 'CRC32C,None'], ['MaxRecvDataSegmentLength', '65536']]);
    expect(decodeTextKeys(Buffer.from('novalue\0')).ok).toBe(false);
    expect(decodeTextKeys(Buffer.from('=x\0')).ok).toBe(false);
    expect(decodeTextKeys(Buffer.from('K'.repeat(64) + '=1\0')).ok).toBe(false);
    expect(decodeTextKeys(Buffer.from('A=\0\0\0')).ok && decodeTextKeys(Buffer.from('A=\0\0\0'))).toEqual({ ok: true, pairs: [['A', '']] });
  });

  it('does serial number arithmetic across the wrap (RFC 1982)', () => {
    expect(serialLt(0xffffffff, 0)).toBe(true);
    expect(serialLt(0, 0xffffffff)).toBe(false);
    expect(serialAdd(0xffffffff, 2)).toBe(1);
  });
});

describe('iSCSI framing', () => {
  const nopOut = hex(`40 80 0000 00 000005 ${'00'.repeat(8)} 00000007 ffffffff 00000001 00000002 ${'00'.repeat(16)} 6869212121 000000`);
  const withImmediate = Buffer.concat([Buffer.from(READ10_CMD), Buffer.alloc(0)]);
  const stream = Buffer.concat([withImmediate, nopOut, withImmediate]);

  const drain = (rx: PduReceiver): Pdu[] => {
    const out: Pdu[] = [];
    for (;;) {
      const r = rx.next();
      if (r.kind === 'need') return out;
      if (r.kind === 'error') throw new Error(r.message);
      out.push({ bhs: Buffer.from(r.pdu.bhs), ahs: Buffer.from(r.pdu.ahs), data: Buffer.from(r.pdu.data) });
    }
  };
  const limits = { headerDigest: false, dataDigest: false, maxRecvDataSegmentLength: 8192 };

  it('frames the same PDUs whatever the split point', () => {
    const whole = drain(feed(new PduReceiver(limits), [stream]));
    expect(whole.map((p) => p.data.toString())).toEqual(['', 'hi!!!', '']);
    for (let cut = 0; cut <= stream.length; cut++) {
      const rx = new PduReceiver(limits);
      const got = [...drain(feed(rx, [stream.subarray(0, cut)])), ...drain(feed(rx, [stream.subarray(cut)]))];
      expect(got.length).toBe(3);
      expect(got[1]!.data.toString()).toBe('hi!!!');
      expect(got[2]!.bhs.equals(READ10_CMD)).toBe(true);
    }
    const rx = new PduReceiver(limits);
    const bytewise: Pdu[] = [];
    for (let i = 0; i < stream.length; i++) bytewise.push(...drain(feed(rx, [stream.subarray(i, i + 1)])));
    expect(bytewise.length).toBe(3);
    expect(rx.midPdu).toBe(false);
  });

  it('says how many bytes the PDU being received still needs', () => {
    const ends = [48, 104, 152]; // command, NOP-Out with 5 data bytes padded to 8, command
    for (let cut = 0; cut <= stream.length; cut++) {
      const rx = new PduReceiver(limits);
      drain(feed(rx, [stream.subarray(0, cut)]));
      const end = ends.find((e) => e >= cut)!;
      const start = ends[ends.indexOf(end) - 1] ?? 0;
      const got = cut - start;
      // Until its header is complete only the header's length is known.
      const want = cut === end || got === 0 ? 0 : got < 48 ? 48 - got : end - cut;
      expect(rx.missing, `after ${cut} bytes`).toBe(want);
    }
  });

  it('checks header and data digests (CRC32C, least significant byte first)', () => {
    // RFC 3720 B.4: 32 bytes of zeroes have CRC32C 0x8a9136aa, sent as aa 36 91 8a.
    expect(digestOf(Buffer.alloc(32))).toBe(0x8a9136aa);
    const framed = Buffer.concat(frameOut(Buffer.from(nopOut.subarray(0, 48)), Buffer.from('hi!!!'), true, true));
    expect(framed.length).toBe(48 + 4 + 8 + 4);
    const dl = { headerDigest: true, dataDigest: true, maxRecvDataSegmentLength: 8192 };
    for (let cut = 0; cut <= framed.length; cut++) {
      const rx = new PduReceiver(dl);
      const got = [...drain(feed(rx, [framed.subarray(0, cut)])), ...drain(feed(rx, [framed.subarray(cut)]))];
      expect(got.map((p) => p.data.toString())).toEqual(['hi!!!']);
    }
    const badHeader = Buffer.from(framed);
    badHeader[49] ^= 1;
    const r1 = feed(new PduReceiver(dl), [badHeader]).next();
    expect(r1.kind === 'error' && r1.code).toBe('header-digest');
    const badData = Buffer.from(framed);
    badData[53] ^= 0x80;
    const r2 = feed(new PduReceiver(dl), [badData]).next();
    expect(r2.kind === 'error' && r2.code).toBe('data-digest');
  });

  it('refuses oversized data segments and AHS before waiting for them', () => {
    const big = Buffer.from(nopOut.subarray(0, 48));
    big[5] = 0x01; // 65536 + 5 bytes
    const r = feed(new PduReceiver(limits), [big]).next();
    expect(r.kind === 'error' && r.code).toBe('data-segment-too-long');
    const ahs = Buffer.from(nopOut.subarray(0, 48));
    ahs[4] = 0xff;
    const r2 = feed(new PduReceiver(limits), [ahs]).next();
    expect(r2.kind === 'error' && r2.code).toBe('ahs-too-long');
  });
});

function feed(rx: PduReceiver, chunks: Buffer[]): PduReceiver {
  for (const c of chunks) rx.push(c);
  return rx;
}
