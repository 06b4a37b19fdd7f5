import { describe, expect, it } from 'vitest';
import { ParamNegotiator, buildPolicy, DEFAULT_POLICY, RFC_DEFAULTS } from '../src/iscsi/params.js';
import { LoginMachine, type LoginHost, type LoginResult } from '../src/iscsi/login.js';
import { parseLoginRequest } from '../src/iscsi/pdu-login.js';
import { encodeTextKeys, decodeTextKeys, type KeyValues } from '../src/iscsi/text-keys.js';
import { chapResponse, decodeBinary, pickAlgorithm } from '../src/iscsi/chap.js';
import { LoginStatus } from '../src/iscsi/constants.js';

const ctx = { discovery: false, leading: true, inLogin: true };

describe('operational key negotiation (RFC 7143 §13)', () => {
  const table: Array<[string, string, string | undefined]> = [
    // key, initiator offer, target answer (undefined = declarative, no answer)
    ['InitialR2T', 'Yes', 'Yes'], // OR with ours (No) → Yes
    ['InitialR2T', 'No', 'No'],
    ['ImmediateData', 'No', 'No'], // AND
    ['ImmediateData', 'Yes', 'Yes'],
    ['MaxBurstLength', '16776192', String(DEFAULT_POLICY.MaxBurstLength)], // min
    ['MaxBurstLength', '4096', '4096'],
    ['MaxBurstLength', '100', 'Reject'], // below 512
    ['FirstBurstLength', '0x2000', '8192'], // hex numbers
    ['DefaultTime2Wait', '0', String(DEFAULT_POLICY.DefaultTime2Wait)], // max
    ['DefaultTime2Wait', '3601', 'Reject'],
    ['MaxOutstandingR2T', '1', '1'],
    ['ErrorRecoveryLevel', '2', '0'],
    ['MaxConnections', '0', 'Reject'],
    ['DataPDUInOrder', 'No', 'Yes'],
    ['DataSequenceInOrder', 'maybe', 'Reject'],
    ['HeaderDigest', 'CRC32C,None', 'CRC32C'],
    ['HeaderDigest', 'None,CRC32C', 'None'],
    ['DataDigest', 'MD5', 'Reject'],
    ['IFMarker', 'Yes', 'No'], // §13.25 obsolete: markers stay off
    ['OFMarkInt', '2048', 'Reject'],
    ['X-com.example.Foo', 'bar', 'NotUnderstood'],
    ['BogusKey', '1', 'NotUnderstood'],
    ['MaxRecvDataSegmentLength', '65536', undefined],
    ['InitiatorAlias', 'host', undefined],
    ['iSCSIProtocolLevel', '2', '1'],
    ['TaskReporting', 'FastAbort,RFC3720', 'RFC3720'],
  ];
  for (const [key, offer, answer] of table) {
    it(`${key}=${offer} → ${answer ?? '(no answer)'}`, () => {
      const n = new ParamNegotiator(buildPolicy());
      const r = n.handle([[key, offer]], ctx);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(new Map(r.responses).get(key)).toBe(answer);
    });
  }

  it('records results and the initiator declaration', () => {
    const n = new ParamNegotiator(buildPolicy({ MaxBurstLength: '65536' }));
    const r = n.handle([['MaxRecvDataSegmentLength', '4096'], ['MaxBurstLength', '262144'], ['FirstBurstLength', '262144'], ['HeaderDigest', 'CRC32C']], ctx);
    expect(r.ok).toBe(true);
    expect(n.values.MaxRecvDataSegmentLength).toBe(4096);
    expect(n.values.MaxBurstLength).toBe(65536);
    expect(n.values.FirstBurstLength).toBe(65536); // never above MaxBurstLength
    expect(n.values.HeaderDigest).toBe(true);
    expect(n.ourDeclarations()).toEqual([['MaxRecvDataSegmentLength', String(DEFAULT_POLICY.MaxRecvDataSegmentLength)]]);
    expect(n.ourDeclarations()).toEqual([]); // once per connection
  });

  it('answers Irrelevant for session keys in discovery and refuses a key offered twice', () => {
    const n = new ParamNegotiator(buildPolicy());
    const r = n.handle([['InitialR2T', 'No'], ['MaxBurstLength', '512'], ['ErrorRecoveryLevel', '0']], { ...ctx, discovery: true });
    expect(r.ok && r.responses).toEqual([['InitialR2T', 'Irrelevant'], ['MaxBurstLength', 'Irrelevant'], ['ErrorRecoveryLevel', '0']]);
    const n2 = new ParamNegotiator(buildPolicy());
    expect(n2.handle([['ImmediateData', 'Yes']], ctx).ok).toBe(true);
    expect(n2.handle([['ImmediateData', 'No']], ctx).ok).toBe(false);
  });

  it('refuses leading-only keys on a secondary connection', () => {
    const n = new ParamNegotiator(buildPolicy(), { ...RFC_DEFAULTS });
    expect(n.handle([['MaxBurstLength', '4096']], { ...ctx, leading: false }).ok).toBe(false);
    expect(n.handle([['HeaderDigest', 'None']], { ...ctx, leading: false }).ok).toBe(true);
  });

  it('validates administrator overrides with a message naming the key', () => {
    expect(() => buildPolicy({ MaxBurstLength: '12' })).toThrow(/MaxBurstLength=12/);
    expect(() => buildPolicy({ HeaderDigest: 'SHA1' })).toThrow(/HeaderDigest/);
    expect(() => buildPolicy({ ErrorRecoveryLevel: '1' })).toThrow(/only level 0/);
    expect(buildPolicy({ HeaderDigest: 'CRC32C' }).HeaderDigest).toEqual(['CRC32C']);
  });
});

describe('CHAP helpers', () => {
  it('computes RFC 1994 responses and picks the first supported algorithm offered', () => {
    // MD5(0x01 || "secret" || 0x00..0f)
    const c = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
    expect(chapResponse(5, 1, 'secret', c).length).toBe(16);
    expect(chapResponse(6, 1, 'secret', c).length).toBe(20);
    expect(chapResponse(7, 1, 'secret', c).length).toBe(32);
    expect(pickAlgorithm('7,5')).toBe(7);
    expect(pickAlgorithm('99,6')).toBe(6);
    expect(pickAlgorithm('1,2')).toBeUndefined();
    expect(decodeBinary('0xABcd')!.toString('hex')).toBe('abcd');
    expect(decodeBinary('0bAAEC')!.toString('hex')).toBe('000102');
    expect(decodeBinary('zz')).toBeUndefined();
  });
});

// ---- the login state machine against a fake server ----

interface FakeOpts {
  chap?: { user: string; secret: string };
  mutualChap?: { user: string; secret: string };
  allowed?: boolean;
}

function fakeHost(o: FakeOpts = {}): LoginHost & { admitted: LoginResult[] } {
  const admitted: LoginResult[] = [];
  return {
    admitted,
    tpgt: 1,
    peerAddress: '127.0.0.1',
    lookupTarget: (name) =>
      name === 'iqn.t:disk'
        ? {
            name,
            policy: buildPolicy(),
            allowed: o.allowed ?? true,
            servedOnPortal: true,
            ...(o.chap ? { chap: o.chap } : {}),
            ...(o.mutualChap ? { mutualChap: o.mutualChap } : {}),
          }
        : undefined,
    discoveryAuth: () => ({ policy: buildPolicy() }),
    existingSession: () => undefined,
    admit: async (r) => {
      admitted.push(r);
      return { ok: true, tsih: 42, expCmdSn: r.cmdSn, maxCmdSn: r.cmdSn + 63 };
    },
  };
}

function req(csg: number, nsg: number, transit: boolean, keys: KeyValues, o: { cont?: boolean; tsih?: number; versionMin?: number } = {}) {
  const b = Buffer.alloc(48);
  b[0] = 0x43;
  b[1] = (transit ? 0x80 : 0) | (o.cont ? 0x40 : 0) | (csg << 2) | (transit ? nsg : 0);
  b[3] = o.versionMin ?? 0;
  Buffer.from('400000000001', 'hex').copy(b, 8);
  b.writeUInt16BE(o.tsih ?? 0, 14);
  b.writeUInt32BE(1, 16);
  b.writeUInt32BE(10, 24);
  return parseLoginRequest({ bhs: b, ahs: Buffer.alloc(0), data: encodeTextKeys(keys) });
}

const keysOf = (step: { responses: Array<{ data?: Buffer }> }): Map<string, string> => {
  const d = decodeTextKeys(step.responses[0]!.data ?? Buffer.alloc(0));
  return new Map(d.ok ? d.pairs : []);
};
const statusOf = (step: { responses: Array<{ bhs: Buffer }> }): number => (step.responses[0]!.bhs[36]! << 8) | step.responses[0]!.bhs[37]!;
const hello: KeyValues = [['InitiatorName', 'iqn.2026-11.i:host'], ['SessionType', 'Normal'], ['TargetName', 'iqn.t:disk']];

describe('login state machine', () => {
  it('logs in without authentication: security → operational → full feature phase', async () => {
    const host = fakeHost();
    const m = new LoginMachine(host, 100);
    const s1 = await m.handle(req(0, 1, true, [...hello, ['AuthMethod', 'None']]));
    expect(s1.outcome).toBe('continue');
    expect(keysOf(s1).get('AuthMethod')).toBe('None');
    expect(keysOf(s1).get('TargetPortalGroupTag')).toBe('1');
    expect(s1.responses[0]!.bhs[1]).toBe(0x81); // T=1, CSG=0, NSG=1
    expect(s1.responses[0]!.bhs.readUInt32BE(24)).toBe(100); // StatSN
    const s2 = await m.handle(req(1, 3, true, [['ImmediateData', 'Yes'], ['MaxRecvDataSegmentLength', '16384']]));
    expect(s2.outcome).toBe('ffp');
    expect(s2.responses[0]!.bhs[1]).toBe(0x87);
    expect(s2.responses[0]!.bhs.readUInt16BE(14)).toBe(42); // TSIH from admission
    expect(keysOf(s2).get('MaxRecvDataSegmentLength')).toBe(String(DEFAULT_POLICY.MaxRecvDataSegmentLength));
    expect(host.admitted[0]!.params.MaxRecvDataSegmentLength).toBe(16384);
    expect(m.nextStatSn).toBe(102);
  });

  it('starts directly in the operational stage when no authentication is configured', async () => {
    const s = await new LoginMachine(fakeHost(), 1).handle(req(1, 3, true, hello));
    expect(s.outcome).toBe('ffp');
  });

  it('fails with the RFC status for missing names, unknown targets, ACL denial and bad versions', async () => {
    const cases: Array<[KeyValues, number, FakeOpts?, { versionMin?: number }?]> = [
      [[['SessionType', 'Normal']], LoginStatus.MISSING_PARAMETER],
      [[['InitiatorName', 'iqn.2026-11.i:host']], LoginStatus.MISSING_PARAMETER],
      [[['InitiatorName', 'iqn.2026-11.i:host'], ['TargetName', 'iqn.t:nope']], LoginStatus.NOT_FOUND],
      [hello, LoginStatus.AUTHORIZATION_FAILURE, { allowed: false }],
      [[['InitiatorName', 'iqn.2026-11.i:host'], ['SessionType', 'Weird']], LoginStatus.SESSION_TYPE_NOT_SUPPORTED],
      [hello, LoginStatus.UNSUPPORTED_VERSION, {}, { versionMin: 2 }],
      [[['InitiatorName', 'host\u0001name'], ['TargetName', 'iqn.t:disk']], LoginStatus.INITIATOR_ERROR],
      [[['InitiatorName', 'iqn.2026-11.' + 'x'.repeat(220)], ['TargetName', 'iqn.t:disk']], LoginStatus.INITIATOR_ERROR],
      [hello, LoginStatus.AUTHENTICATION_FAILURE, { chap: { user: 'u', secret: 's'.repeat(12) } }],
    ];
    for (const [keys, status, opts, ro] of cases) {
      const s = await new LoginMachine(fakeHost(opts), 1).handle(req(1, 3, true, keys, ro));
      expect(s.outcome).toBe('fail');
      expect(statusOf(s)).toBe(status);
    }
  });

  it('answers a C-bit continuation with an empty response and then negotiates the whole text', async () => {
    const m = new LoginMachine(fakeHost(), 1);
    const s1 = await m.handle(req(1, 3, false, [['InitiatorName', 'iqn.2026-11.i:host']], { cont: true }));
    expect(s1.outcome).toBe('continue');
    expect(s1.responses[0]!.data).toBeUndefined();
    const s2 = await m.handle(req(1, 3, true, [['TargetName', 'iqn.t:disk']]));
    expect(s2.outcome).toBe('ffp');
  });

  for (const alg of [5, 6, 7, 8]) {
    for (const mutual of [false, true]) {
      it(`authenticates with CHAP_A=${alg}${mutual ? ' and mutual CHAP' : ''}`, async () => {
        const chap = { user: 'alice', secret: 'alice-secret-1' };
        const mutualChap = { user: 'target', secret: 'target-secret-2' };
        const m = new LoginMachine(fakeHost({ chap, ...(mutual ? { mutualChap } : {}) }), 1);
        const s1 = await m.handle(req(0, 1, true, [...hello, ['AuthMethod', 'CHAP,None']]));
        expect(keysOf(s1).get('AuthMethod')).toBe('CHAP');
        expect(s1.responses[0]!.bhs[1]! & 0x80).toBe(0); // no transit before authentication
        const s2 = await m.handle(req(0, 1, false, [['CHAP_A', `${alg},5`]]));
        const k = keysOf(s2);
        expect(k.get('CHAP_A')).toBe(String(alg));
        const ch = decodeBinary(k.get('CHAP_C')!)!;
        const resp: KeyValues = [['CHAP_N', 'alice'], ['CHAP_R', '0x' + chapResponse(alg, Number(k.get('CHAP_I')), chap.secret, ch).toString('hex')]];
        const myCh = Buffer.alloc(16, 0x5a);
        if (mutual) resp.push(['CHAP_I', '9'], ['CHAP_C', '0x' + myCh.toString('hex')]);
        const s3 = await m.handle(req(0, 1, true, resp));
        expect(statusOf(s3)).toBe(0);
        expect(s3.responses[0]!.bhs[1]! & 0x80).toBe(0x80);
        if (mutual) {
          expect(keysOf(s3).get('CHAP_N')).toBe('target');
          expect(keysOf(s3).get('CHAP_R')).toBe('0x' + chapResponse(alg, 9, mutualChap.secret, myCh).toString('hex'));
        }
        const s4 = await m.handle(req(1, 3, true, []));
        expect(s4.outcome).toBe('ffp');
        expect(s4.result!.authenticatedAs).toBe('alice');
      });
    }
  }

  it('rejects a wrong CHAP response, a reflected challenge and a missing mutual challenge', async () => {
    const chap = { user: 'alice', secret: 'alice-secret-1' };
    const run = async (mutualChap: { user: string; secret: string } | undefined, make: (c: Buffer, id: number) => KeyValues) => {
      const m = new LoginMachine(fakeHost({ chap, ...(mutualChap ? { mutualChap } : {}) }), 1);
      await m.handle(req(0, 1, false, [...hello, ['AuthMethod', 'CHAP']]));
      const k = keysOf(await m.handle(req(0, 1, false, [['CHAP_A', '5']])));
      return m.handle(req(0, 1, true, make(decodeBinary(k.get('CHAP_C')!)!, Number(k.get('CHAP_I')))));
    };
    const wrong = await run(undefined, (c, id) => [['CHAP_N', 'alice'], ['CHAP_R', '0x' + chapResponse(5, id, 'bad-secret-000', c).toString('hex')]]);
    expect(statusOf(wrong)).toBe(LoginStatus.AUTHENTICATION_FAILURE);
    const mutualChap = { user: 't', secret: 'target-secret-2' };
    const reflected = await run(mutualChap, (c, id) => [
      ['CHAP_N', 'alice'],
      ['CHAP_R', '0x' + chapResponse(5, id, chap.secret, c).toString('hex')],
      ['CHAP_I', String(id)],
      ['CHAP_C', '0x' + c.toString('hex')],
    ]);
    expect(statusOf(reflected)).toBe(LoginStatus.AUTHENTICATION_FAILURE);
    const noMutual = await run(mutualChap, (c, id) => [['CHAP_N', 'alice'], ['CHAP_R', '0x' + chapResponse(5, id, chap.secret, c).toString('hex')]]);
    expect(statusOf(noMutual)).toBe(LoginStatus.AUTHENTICATION_FAILURE);
  });

  it('refuses illegal stage transitions and security keys in the operational stage', async () => {
    const m = new LoginMachine(fakeHost(), 1);
    const s = await m.handle(req(1, 0, true, hello)); // NSG < CSG
    expect(statusOf(s)).toBe(LoginStatus.INITIATOR_ERROR);
    const m2 = new LoginMachine(fakeHost(), 1);
    const s2 = await m2.handle(req(1, 3, false, [...hello, ['CHAP_A', '5']]));
    expect(statusOf(s2)).toBe(LoginStatus.INITIATOR_ERROR);
  });
});
