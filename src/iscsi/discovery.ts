/**
 * SendTargets (RFC 7143 §13.3, Appendix C): which targets an initiator may see, and at which
 * addresses, as TargetName / TargetAddress pairs.
 */
import type { KeyValues } from './text-keys.js';

export interface DiscoverableTarget {
  name: string;
  tpgt: number;
  /** May this initiator, from this address, log in to it? */
  visible: boolean;
}

export interface PortalAddress {
  host: string;
  port: number;
  tpgt: number;
}

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** RFC 7143 §13.8: "domainname[:port][,portal-group-tag]", IPv6 literals in brackets. */
export function formatTargetAddress(host: string, port: number, tpgt: number): string {
  const h = host.includes(':') ? `[${host.replace(/^::ffff:(\d+\.)/i, '$1')}]` : host;
  const fixed = /^\[(\d+\.\d+\.\d+\.\d+)\]$/.exec(h);
  return `${fixed ? fixed[1] : h}:${port},${tpgt}`;
}

/**
 * Answer SendTargets=<value>. `value` "All" lists every visible target; a target name lists that one;
 * "" lists the session's own target (normal sessions). `localAddress` replaces wildcard portal hosts.
 */
export function sendTargets(
  value: string,
  targets: DiscoverableTarget[],
  portals: PortalAddress[],
  localAddress: string,
  sessionTarget: string | undefined,
): KeyValues {
  const out: KeyValues = [];
  let wanted: DiscoverableTarget[];
  if (value === 'All') wanted = targets.filter((t) => t.visible);
  else if (value === '') wanted = targets.filter((t) => t.visible && sessionTarget !== undefined && t.name.toLowerCase() === sessionTarget.toLowerCase());
  else wanted = targets.filter((t) => t.visible && t.name.toLowerCase() === value.toLowerCase());
  for (const t of wanted) {
    out.push(['TargetName', t.name]);
    for (const p of portals) {
      if (p.tpgt !== t.tpgt) continue;
      const host = WILDCARDS.has(p.host) ? localAddress.replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/i, '$1') : p.host;
      out.push(['TargetAddress', formatTargetAddress(host, p.port, p.tpgt)]);
    }
  }
  return out;
}
