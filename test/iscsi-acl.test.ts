import { describe, expect, it } from 'vitest';
import { TargetAccess, normalizeAddress } from '../src/iscsi/acl.js';
import type { IscsiTargetSpec } from '../src/iscsi/server.js';
import { LunMap, type ScsiTarget } from '../src/vscsi/core.js';

const target = { name: 'iqn.2026-11.org.vtgt:t' } as unknown as ScsiTarget;
const spec = (extra: Partial<IscsiTargetSpec>): IscsiTargetSpec => ({ target, ...extra });

describe('target ACLs', () => {
  it('admits anyone when there are no ACLs, with the target-wide CHAP', () => {
    const a = new TargetAccess(spec({ chap: { user: 'u', secret: 's' } }));
    expect(a.decide('iqn.2026-11.x:any', '127.0.0.1')).toEqual({ allowed: true, chap: { user: 'u', secret: 's' } });
  });

  it('prefers an exact (case-insensitive) name over the wildcard and applies per-ACL CHAP and LUN maps', () => {
    const map = new LunMap();
    const a = new TargetAccess(
      spec({
        chap: { user: 'target-wide', secret: 'tw' },
        acls: [
          { initiator: '*', addresses: ['10.0.0.0/8'] },
          { initiator: 'iqn.2026-11.x:Alpha', lunMap: map, chap: { user: 'alpha', secret: 'a' } },
        ],
      }),
    );
    const alpha = a.decide('IQN.2026-11.X:ALPHA', '192.168.1.1');
    expect(alpha.allowed).toBe(true);
    expect(alpha.lunMap).toBe(map);
    expect(alpha.chap).toEqual({ user: 'alpha', secret: 'a' });
    const other = a.decide('iqn.2026-11.x:beta', '10.2.3.4');
    expect(other).toEqual({ allowed: true, chap: { user: 'target-wide', secret: 'tw' } });
    expect(a.decide('iqn.2026-11.x:beta', '192.168.1.1').allowed).toBe(false);
  });

  it('matches IPv4-mapped IPv6 peers and IPv6 ranges, and refuses garbage addresses', () => {
    const a = new TargetAccess(spec({ acls: [{ initiator: '*', addresses: ['127.0.0.0/8', 'fd00::/8'] }] }));
    expect(a.decide('iqn.2026-11.x:y', '::ffff:127.0.0.5').allowed).toBe(true);
    expect(a.decide('iqn.2026-11.x:y', 'fd12:3456::1').allowed).toBe(true);
    expect(a.decide('iqn.2026-11.x:y', 'fe80::1%eth0').allowed).toBe(false);
    expect(a.decide('iqn.2026-11.x:y', 'not-an-address').allowed).toBe(false);
    expect(normalizeAddress('fe80::1%eth0')).toEqual({ address: 'fe80::1', family: 'ipv6' });
    expect(() => new TargetAccess(spec({ acls: [{ initiator: '*', addresses: ['10.0.0.0/33'] }] }))).toThrow(/prefix length/);
    expect(() => new TargetAccess(spec({ acls: [{ initiator: '', addresses: [] }] }))).toThrow(/empty initiator/);
  });
});
