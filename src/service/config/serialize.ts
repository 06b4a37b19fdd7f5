/** Turns a config model back into YAML for `vtgt config save` (secrets stay in their source form). */
import { stringify } from 'yaml';
import { fabricSection } from '../fabrics/index.js';
import type { AccountConfig, BackstoreConfig, VtgtConfig } from './types.js';
import { formatHostPort, formatSize } from './values.js';

function account(a: AccountConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { name: a.name, user: a.user };
  if (a.secret.kind === 'inline') out.secret = a.secret.value;
  else if (a.secret.kind === 'file') out.secretFile = a.secret.path;
  else out.secretEnv = a.secret.name;
  return out;
}

function backstore(b: BackstoreConfig): Record<string, unknown> {
  const { size, maxAtomicWriteBytes, deviceWindowBytes, ...rest } = b;
  return {
    ...rest,
    ...(size === undefined ? {} : { size: formatSize(size) }),
    ...(maxAtomicWriteBytes === undefined ? {} : { maxAtomicWriteBytes: formatSize(maxAtomicWriteBytes) }),
    ...(deviceWindowBytes === undefined ? {} : { deviceWindowBytes: deviceWindowBytes === 0 ? 0 : formatSize(deviceWindowBytes) }),
  };
}

export function configToObject(c: VtgtConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    backstores: c.backstores.map(backstore),
    targets: c.targets.map((t) => ({ ...t })),
    accounts: c.accounts.map(account),
    iscsi: {
      ...c.iscsi,
      portals: c.iscsi.portals.map((p) =>
        p.tpgt === undefined ? formatHostPort(p.host, p.port) : { address: formatHostPort(p.host, p.port), tpgt: p.tpgt },
      ),
    },
  };
  if (c.metrics.listen) out.metrics = { listen: formatHostPort(c.metrics.listen.host, c.metrics.listen.port) };
  if (c.log.level !== 'info') out.log = { level: c.log.level };
  if (c.performance) out.performance = { ...c.performance };
  for (const [key, value] of Object.entries(c.fabrics)) {
    const mod = fabricSection(key);
    if (mod) out[key] = mod.toYaml(value);
  }
  return out;
}

export function configToYaml(c: VtgtConfig, header = '# vtgt configuration (docs/service.md describes every key).\n'): string {
  return header + stringify(configToObject(c), { lineWidth: 0 });
}

/** A deep copy that is independent of the original (configs are plain data). */
export function cloneConfig(c: VtgtConfig): VtgtConfig {
  return structuredClone(c);
}
