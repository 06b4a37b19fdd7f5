/**
 * Who may log in to a target: per-ACL initiator names (or '*') with optional source address ranges,
 * and which LUN map and CHAP credentials apply to them.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { ChapCredentials, IscsiAcl, IscsiTargetSpec } from './server.js';
import type { LunMap } from './core-types.js';

export interface AccessDecision {
  allowed: boolean;
  /** Set when allowed and the matching ACL gives its own map. */
  lunMap?: LunMap;
  chap?: ChapCredentials;
  mutualChap?: ChapCredentials;
}

/** Strip an IPv4-mapped IPv6 prefix and a zone id so "::ffff:127.0.0.1" matches 127.0.0.0/8. */
export function normalizeAddress(addr: string): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  let a = addr.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped) a = mapped[1]!;
  if (isIPv4(a)) return { address: a, family: 'ipv4' };
  if (isIPv6(a)) return { address: a, family: 'ipv6' };
  return undefined;
}

/** Parse "10.0.0.0/8", "fd00::/8" or a bare address into a BlockList. Throws on a bad config entry. */
export function compileAddressList(cidrs: string[], where: string): BlockList {
  const list = new BlockList();
  for (const c of cidrs) {
    const [addr, prefixText] = c.split('/');
    const norm = normalizeAddress(addr ?? '');
    if (!norm) throw new Error(`ACL address "${c}" for ${where} is not an IPv4/IPv6 address or CIDR`);
    const maxPrefix = norm.family === 'ipv4' ? 32 : 128;
    const prefix = prefixText === undefined ? maxPrefix : Number(prefixText);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > maxPrefix) {
      throw new Error(`ACL address "${c}" for ${where}: prefix length must be 0..${maxPrefix}`);
    }
    list.addSubnet(norm.address, prefix, norm.family);
  }
  return list;
}

interface CompiledAcl {
  acl: IscsiAcl;
  addresses?: BlockList;
}

/** ACLs of one target, compiled once per addTarget/updateTarget. */
export class TargetAccess {
  private readonly acls: CompiledAcl[];

  constructor(private readonly spec: IscsiTargetSpec) {
    const where = `target ${spec.target.name}`;
    this.acls = (spec.acls ?? []).map((acl) => {
      if (!acl.initiator) throw new Error(`an ACL of ${where} has an empty initiator name (use "*" for any)`);
      const c: CompiledAcl = { acl };
      if (acl.addresses && acl.addresses.length) c.addresses = compileAddressList(acl.addresses, where);
      return c;
    });
  }

  /** iSCSI names compare case-insensitively (RFC 3722 stringprep folds case). */
  decide(initiatorName: string, peerAddress: string): AccessDecision {
    const targetWide = (d: AccessDecision): AccessDecision => {
      if (!d.chap && this.spec.chap) d.chap = this.spec.chap;
      if (!d.mutualChap && this.spec.mutualChap) d.mutualChap = this.spec.mutualChap;
      return d;
    };
    if (this.acls.length === 0) return targetWide({ allowed: true });
    const name = initiatorName.toLowerCase();
    const peer = normalizeAddress(peerAddress);
    // An exact name match wins over '*', so a wildcard ACL can coexist with specific ones.
    const ordered = [...this.acls.filter((c) => c.acl.initiator.toLowerCase() === name), ...this.acls.filter((c) => c.acl.initiator === '*')];
    for (const c of ordered) {
      if (c.addresses && (!peer || !c.addresses.check(peer.address, peer.family))) continue;
      const d: AccessDecision = { allowed: true };
      if (c.acl.lunMap !== undefined) d.lunMap = c.acl.lunMap;
      if (c.acl.chap) d.chap = c.acl.chap;
      if (c.acl.mutualChap) d.mutualChap = c.acl.mutualChap;
      return targetWide(d);
    }
    return { allowed: false };
  }
}
