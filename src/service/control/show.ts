/** The data behind `vtgt show`: the running objects and their sessions, as plain JSON. */
import { formatHostPort, formatSize } from '../config/values.js';
import { fabricSection } from '../fabrics/index.js';
import type { Runtime } from '../runtime.js';

export interface ShowData {
  backstores: Array<{
    name: string;
    type: string;
    location: string;
    size: string;
    blockSize: number;
    readOnly: boolean;
    cacheMode: string;
    failures: string[];
    /** Persistent reservation state (registrations, reservation) when the LU has a reservation manager. */
    reservations?: { registrations: Array<{ key: string; initiator: string }>; reservation: { typeName: string; holderKey: string | null } | null };
  }>;
  targets: Array<{
    name: string;
    tpgt?: number;
    luns: Array<{ lun: number; backstore: string }>;
    acls: Array<{ initiator: string; chap?: string; mutualChap?: string; addresses?: string[]; luns?: Array<{ lun: number; backstore: string }> }>;
    auth: string;
    sessions: Array<Record<string, unknown>>;
  }>;
  portals: Array<{ address: string; listening: string; tpgt?: number }>;
  accounts: Array<{ name: string; user: string }>;
  discovery: string;
  fabrics: Record<string, Array<{ label: string; children?: unknown[] }>>;
}

export function buildShow(rt: Runtime): ShowData {
  const c = rt.config();
  const sessions = safeSessions(rt);
  return {
    backstores: [...rt.backstores.values()].map((b) => ({
      name: b.config.name,
      type: b.config.type,
      location: b.store.describe,
      size: formatSize(b.store.sizeBytes),
      blockSize: b.store.blockSize,
      readOnly: b.store.readOnly,
      cacheMode: b.store.cacheMode,
      failures: [...b.store.failures],
      ...reservationsOf(b.lu),
    })),
    targets: c.targets.map((t) => ({
      name: t.name,
      ...(t.tpgt === undefined ? {} : { tpgt: t.tpgt }),
      luns: t.luns,
      acls: t.acls,
      auth: t.chap ? `CHAP ${t.chap}${t.mutualChap ? ` + mutual ${t.mutualChap}` : ''}` : t.acls.length ? 'ACL' : 'open (no ACLs: any initiator)',
      sessions: sessions.filter((s) => s.target === t.name || s.targetName === t.name),
    })),
    portals: [...rt.portals.values()].map((p) => ({
      address: formatHostPort(p.config.host, p.config.port),
      listening: formatHostPort(p.bound.host, p.bound.port),
      ...(p.config.tpgt === undefined ? {} : { tpgt: p.config.tpgt }),
    })),
    accounts: c.accounts.map((a) => ({ name: a.name, user: a.user })),
    discovery: c.iscsi.discoveryChap ? `CHAP ${c.iscsi.discoveryChap}` : 'open',
    fabrics: Object.fromEntries(
      Object.entries(c.fabrics).map(([k, v]) => [k, (fabricSection(k)?.show?.(v) ?? []) as ShowData['fabrics'][string]]),
    ),
  };
}

export function safeSessions(rt: Runtime): Array<Record<string, unknown>> {
  try {
    return rt.iscsi.sessions().map((s) => JSON.parse(JSON.stringify(s, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))) as Record<string, unknown>);
  } catch {
    return [];
  }
}

type PrView = NonNullable<ShowData['backstores'][number]['reservations']>;

/** The LU's reservation manager state, when it has one (the real core's LUs do). */
function reservationsOf(lu: unknown): { reservations?: PrView } {
  const port = (lu as { reservations?: { status?: () => PrView } }).reservations;
  if (typeof port?.status !== 'function') return {};
  try {
    return { reservations: port.status() };
  } catch {
    return {};
  }
}
