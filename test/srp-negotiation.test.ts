import { describe, expect, it } from 'vitest';
import { CreditAccount } from '../src/srp/credits.js';
import { resolveDescriptors, sliceSegments, type DirectDescriptor } from '../src/srp/descriptors.js';
import { LoginRejectReason, type SrpLoginReq } from '../src/srp/iu-login.js';
import { negotiateLogin, type LoginPolicy } from '../src/srp/login.js';

const VIO_POLICY: LoginPolicy = {
  maxItIuLen: 256,
  maxTiIuLen: 256,
  requestLimit: 100,
  bufFmt: 0x06,
  multiChannel: false,
  requireZeroIdExtension: true,
};
const req = (over: Partial<SrpLoginReq> = {}): SrpLoginReq => ({
  tag: Buffer.from('0000000000000042', 'hex'),
  reqItIuLen: 256,
  reqBufFmt: 0x06,
  reqFlags: 0,
  immDataOffset: 0,
  initiatorPortId: Buffer.alloc(16),
  targetPortId: Buffer.alloc(16),
  ...over,
});
const fresh = { loggedIn: false, otherChannels: 0 };

describe('SRP login negotiation', () => {
  it('accepts the Linux VIO client login and grants the limit', () => {
    const d = negotiateLogin(req(), VIO_POLICY, fresh);
    expect(d.accept).toBe(true);
    if (!d.accept) return;
    expect(d.rsp).toMatchObject({ reqLimDelta: 100, maxItIuLen: 256, maxTiIuLen: 256, bufFmt: 6, rspFlags: 0 });
    expect(d.rsp.tag.toString('hex')).toBe('0000000000000042');
  });

  it.each([
    ['IU too large', req({ reqItIuLen: 4096 }), fresh, LoginRejectReason.REQ_IT_IU_LENGTH_TOO_LARGE],
    ['IU too small', req({ reqItIuLen: 32 }), fresh, LoginRejectReason.UNABLE_ESTABLISH_CHANNEL],
    ['id_extension set', req({ initiatorPortId: Buffer.from('01'.padEnd(32, '0'), 'hex') }), fresh, LoginRejectReason.UNABLE_ASSOCIATE_CHANNEL],
    ['multi-channel', req({ reqFlags: 1 }), fresh, LoginRejectReason.MULTI_CHANNEL_UNSUPPORTED],
    ['reserved MCA', req({ reqFlags: 3 }), fresh, LoginRejectReason.UNABLE_ESTABLISH_CHANNEL],
    ['no formats', req({ reqBufFmt: 0 }), fresh, LoginRejectReason.UNSUPPORTED_DESCRIPTOR_FMT],
    ['unknown format bit', req({ reqBufFmt: 0x0e }), fresh, LoginRejectReason.UNSUPPORTED_DESCRIPTOR_FMT],
    ['already logged in', req(), { loggedIn: true, otherChannels: 0 }, LoginRejectReason.CHANNEL_LIMIT_REACHED],
  ])('rejects: %s', (_name, r, ctx, reason) => {
    const d = negotiateLogin(r, VIO_POLICY, ctx);
    expect(d.accept).toBe(false);
    if (d.accept) return;
    expect(d.rej.reason).toBe(reason);
    expect(d.rej.bufFmt).toBe(6);
    expect(d.rej.tag).toEqual(r.tag);
  });

  it('reports terminated / maintained channels', () => {
    const multi = { ...VIO_POLICY, multiChannel: true };
    const a = negotiateLogin(req(), multi, { loggedIn: false, otherChannels: 1 });
    const b = negotiateLogin(req({ reqFlags: 1 }), multi, { loggedIn: false, otherChannels: 1 });
    expect(a.accept && a.rsp.rspFlags).toBe(1);
    expect(b.accept && b.rsp.rspFlags).toBe(2);
  });
});

describe('SRP credit accounting', () => {
  it('refuses requests beyond the limit and returns one credit per response', () => {
    const c = new CreditAccount(2, 'initiator-recredits');
    const a = c.consume()!;
    const b = c.consume()!;
    expect(c.consume()).toBeUndefined();
    expect(c.respond(a)).toBe(1);
    expect(c.consume()).toBeDefined();
    expect(c.respond(b)).toBe(1);
  });

  it('never credits a retired request twice', () => {
    const c = new CreditAccount(4, 'target-returns');
    const a = c.consume()!;
    const b = c.consume()!;
    c.suppress(a);
    c.suppress(a);
    expect(c.respond(a)).toBe(0);
    expect(c.respond(b)).toBe(2); // its own credit plus the one owed for the suppressed response
    expect(c.outstanding).toBe(0);
  });

  it('owes nothing for suppressed responses when the initiator re-credits itself', () => {
    const c = new CreditAccount(4, 'initiator-recredits');
    const a = c.consume()!;
    const b = c.consume()!;
    c.suppress(a);
    expect(c.respond(b)).toBe(1);
    expect(c.outstanding).toBe(0);
  });
});

describe('SRP descriptor resolution', () => {
  const d = (va: number, len: number): DirectDescriptor => ({ va: BigInt(va), key: 0, len });
  const noFetch = async (): Promise<Buffer> => {
    throw new Error('must not fetch');
  };

  it('uses the in-IU list when it is complete', async () => {
    const r = await resolveDescriptors(
      { format: 'indirect', table: d(0x1000, 32), totalLength: 1024, inIu: [d(0x10000, 512), d(0x20000, 512)] },
      noFetch,
    );
    expect(r).toEqual({ ok: true, value: { segments: [d(0x10000, 512), d(0x20000, 512)], expectedLength: 1024 } });
  });

  it('fetches the whole external table, counting from its length', async () => {
    const n = 12;
    const table = Buffer.alloc(16 * n);
    for (let i = 0; i < n; i++) {
      table.writeBigUInt64BE(BigInt(0x100000 + i * 0x1000), i * 16);
      table.writeUInt32BE(4096, i * 16 + 12);
    }
    let fetched: DirectDescriptor | undefined;
    const r = await resolveDescriptors(
      { format: 'indirect', table: d(0x8000, 16 * n), totalLength: 4096 * n, inIu: [d(0x100000, 4096)] },
      async (t) => {
        fetched = t;
        return table;
      },
    );
    expect(fetched).toEqual(d(0x8000, 16 * n));
    expect(r.ok && r.value.segments.length).toBe(n);
    expect(r.ok && r.value.segments[11]!.va).toBe(BigInt(0x100000 + 11 * 0x1000));
  });

  it('rejects hostile tables', async () => {
    const bad = async (table: DirectDescriptor, total: number, inIu: DirectDescriptor[] = []) =>
      resolveDescriptors({ format: 'indirect', table, totalLength: total, inIu }, async (t) => Buffer.alloc(t.len));
    expect((await bad(d(0, 20), 0)).ok).toBe(false); // not a multiple of 16
    expect((await bad(d(0, 0), 0)).ok).toBe(false); // empty
    expect((await bad(d(0, 16 * 100000), 0)).ok).toBe(false); // absurdly large
    expect((await bad(d(0, 16), 512, [d(0, 512), d(0, 512)])).ok).toBe(false); // more in IU than in table
    expect((await bad(d(0, 32), 4096, [d(0, 512), d(0, 512)])).ok).toBe(false); // covers less than total
    const failing = await resolveDescriptors(
      { format: 'indirect', table: d(0, 64), totalLength: 0, inIu: [] },
      async () => {
        throw new Error('H_PERMISSION');
      },
    );
    expect(failing.ok).toBe(false);
  });

  it('slices a byte range across segments', () => {
    const segs = [d(0x1000, 100), d(0x5000, 100), d(0x9000, 100)];
    expect(sliceSegments(segs, 150, 100)).toEqual([d(0x5000 + 50, 50), d(0x9000, 50)]);
    expect(sliceSegments(segs, 0, 300)).toEqual(segs);
    expect(sliceSegments(segs, 250, 51)).toBeUndefined();
  });
});
