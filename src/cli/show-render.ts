/** `vtgt show`: the service's objects as a tree. */
import type { ShowData } from '../service/control/show.js';
import { renderTree, safe, type TreeNode } from './render.js';

export function showTree(d: ShowData): string {
  const stores: TreeNode = {
    label: `backstores [${d.backstores.length}]`,
    children: d.backstores.map((b) => ({
      children: prNodes(b.reservations),
      label: `${b.name}  ${b.location}  ${b.size}  ${b.blockSize}B blocks  ${b.cacheMode}${b.readOnly ? '  read-only' : ''}${b.failures.length ? `  FAILED: ${b.failures.join(',')}` : ''}`,
    })),
  };
  const targets: TreeNode = {
    label: `iscsi targets [${d.targets.length}]  discovery: ${d.discovery}`,
    children: d.targets.map((t) => ({
      label: `${t.name}${t.tpgt ? `  tpgt ${t.tpgt}` : ''}  auth: ${t.auth}`,
      children: [
        { label: `luns [${t.luns.length}]`, children: t.luns.map((l) => ({ label: `lun${l.lun} -> ${l.backstore}` })) },
        {
          label: `acls [${t.acls.length}]`,
          children: t.acls.map((a) => ({
            label: `${safe(a.initiator)}${a.chap ? `  chap ${a.chap}` : ''}${a.mutualChap ? ` mutual ${a.mutualChap}` : ''}${a.addresses ? `  from ${a.addresses.join(',')}` : ''}`,
            children: a.luns?.map((l) => ({ label: `mapped lun${l.lun} -> ${l.backstore}` })) ?? [],
          })),
        },
        {
          label: `sessions [${t.sessions.length}]`,
          children: t.sessions.map((s) => ({ label: safe(sessionLabel(s)) })),
        },
      ],
    })),
  };
  const portals: TreeNode = {
    label: `portals [${d.portals.length}]`,
    children: d.portals.map((p) => ({ label: `${p.listening}${p.tpgt ? `  tpgt ${p.tpgt}` : ''}${p.address !== p.listening ? `  (configured ${p.address})` : ''}` })),
  };
  const accounts: TreeNode = { label: `chap accounts [${d.accounts.length}]`, children: d.accounts.map((a) => ({ label: `${a.name}  user ${safe(a.user)}` })) };
  const fabrics: TreeNode[] = Object.entries(d.fabrics).map(([k, nodes]) => ({ label: k, children: nodes as TreeNode[] }));
  return renderTree({ label: 'vtgt', children: [stores, targets, portals, accounts, ...fabrics] });
}

function sessionLabel(s: Record<string, unknown>): string {
  const parts = [String(s.initiator ?? '?')];
  if (s.isid !== undefined) parts.push(`isid ${String(s.isid)}`);
  if (s.tsih !== undefined) parts.push(`tsih ${String(s.tsih)}`);
  const conns = Array.isArray(s.connections) ? (s.connections as Array<Record<string, unknown>>) : [];
  if (conns.length) parts.push(`from ${conns.map((c) => `${String(c.peerAddress)}:${String(c.peerPort)}`).join(',')}`);
  if (s.commands !== undefined) parts.push(`${String(s.commands)} cmds`);
  // Bytes the initiator has not read yet: a stuck or slow initiator shows up here.
  const queued = conns.reduce((n, c) => n + (typeof c.sendQueueBytes === 'number' ? c.sendQueueBytes : 0), 0);
  if (queued > 0) parts.push(`${queued} bytes unread by the initiator`);
  return parts.join('  ');
}

function prNodes(pr: ShowData['backstores'][number]['reservations']): TreeNode[] {
  if (!pr || (pr.registrations.length === 0 && !pr.reservation)) return [];
  const out: TreeNode[] = [];
  if (pr.reservation) out.push({ label: `reserved: ${pr.reservation.typeName}${pr.reservation.holderKey ? ` by key ${pr.reservation.holderKey}` : ''}` });
  out.push({ label: `registrations [${pr.registrations.length}]`, children: pr.registrations.map((r) => ({ label: `${r.key}  ${safe(r.initiator)}` })) });
  return out;
}
