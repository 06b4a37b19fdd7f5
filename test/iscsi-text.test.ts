import { describe, expect, it } from 'vitest';
import { TextExchange } from '../src/iscsi/text.js';
import { parseTextRequest } from '../src/iscsi/pdu-login.js';
import { decodeTextKeys, encodeTextKeys, type KeyValues } from '../src/iscsi/text-keys.js';
import { sendTargets, formatTargetAddress } from '../src/iscsi/discovery.js';

const seq = () => ({ statSn: 1, expCmdSn: 1, maxCmdSn: 10 });

function req(itt: number, ttt: number, data: Buffer, cont = false) {
  const b = Buffer.alloc(48);
  b[0] = 0x04;
  b[1] = cont ? 0x40 : 0x80;
  b.writeUInt32BE(itt, 16);
  b.writeUInt32BE(ttt, 20);
  return parseTextRequest({ bhs: b, ahs: Buffer.alloc(0), data });
}

describe('Text exchanges (RFC 7143 §6.1.1)', () => {
  const many: KeyValues = Array.from({ length: 40 }, (_, i) => ['TargetName', `iqn.2026-11.org.vtgt:target-${i}`] as [string, string]);

  it('splits a long answer across responses with C=1 and a TTT, ending with F=1 and a reserved TTT', () => {
    const x = new TextExchange({ respond: () => many });
    let out = x.handle(req(7, 0xffffffff, encodeTextKeys([['SendTargets', 'All']])), seq, 256);
    const parts: Buffer[] = [];
    let rounds = 0;
    for (;;) {
      expect(out.ok).toBe(true);
      if (!out.ok) return;
      const bhs = out.pdu.bhs;
      parts.push(out.pdu.data ?? Buffer.alloc(0));
      expect(out.pdu.data!.length).toBeLessThanOrEqual(256);
      if (bhs[1]! & 0x80) {
        expect(bhs.readUInt32BE(20)).toBe(0xffffffff);
        break;
      }
      expect(bhs[1]! & 0x40).toBe(0x40);
      out = x.handle(req(7, bhs.readUInt32BE(20), Buffer.alloc(0)), seq, 256);
      rounds++;
    }
    expect(rounds).toBeGreaterThan(3);
    const dec = decodeTextKeys(Buffer.concat(parts));
    expect(dec.ok && dec.pairs).toEqual(many);
  });

  it('assembles an initiator continuation (C bit) before answering, and rejects a stale TTT', () => {
    let seen: KeyValues = [];
    const x = new TextExchange({
      respond: (p) => {
        seen = p;
        return [['X-ok', 'Yes']];
      },
    });
    const whole = encodeTextKeys([['SendTargets', 'All'], ['X-com.example.long', 'v'.repeat(300)]]);
    const first = x.handle(req(9, 0xffffffff, whole.subarray(0, 100), true), seq, 8192);
    expect(first.ok && first.pdu.data).toBeUndefined();
    const ttt = first.ok ? first.pdu.bhs.readUInt32BE(20) : 0;
    expect(ttt).not.toBe(0xffffffff);
    const done = x.handle(req(9, ttt, whole.subarray(100)), seq, 8192);
    expect(done.ok).toBe(true);
    expect(seen.map(([k]) => k)).toEqual(['SendTargets', 'X-com.example.long']);
    expect(x.handle(req(9, 0x1234, Buffer.alloc(0)), seq, 8192).ok).toBe(false);
  });
});

describe('SendTargets', () => {
  const targets = [
    { name: 'iqn.2026-11.org.vtgt:a', tpgt: 1, visible: true },
    { name: 'iqn.2026-11.org.vtgt:b', tpgt: 2, visible: true },
    { name: 'iqn.2026-11.org.vtgt:hidden', tpgt: 1, visible: false },
  ];
  const portals = [
    { host: '0.0.0.0', port: 3260, tpgt: 1 },
    { host: 'fd00::5', port: 3261, tpgt: 1 },
    { host: '10.1.1.1', port: 3262, tpgt: 2 },
  ];
  it('lists visible targets with the portals of their portal group', () => {
    expect(sendTargets('All', targets, portals, '::ffff:192.168.7.9', undefined)).toEqual([
      ['TargetName', 'iqn.2026-11.org.vtgt:a'],
      ['TargetAddress', '192.168.7.9:3260,1'],
      ['TargetAddress', '[fd00::5]:3261,1'],
      ['TargetName', 'iqn.2026-11.org.vtgt:b'],
      ['TargetAddress', '10.1.1.1:3262,2'],
    ]);
    expect(sendTargets('iqn.2026-11.org.vtgt:hidden', targets, portals, '127.0.0.1', undefined)).toEqual([]);
    expect(sendTargets('', targets, portals, '127.0.0.1', 'IQN.2026-11.org.vtgt:B').map(([, v]) => v)).toEqual(['iqn.2026-11.org.vtgt:b', '10.1.1.1:3262,2']);
    expect(formatTargetAddress('::1', 1, 3)).toBe('[::1]:1,3');
  });
});
