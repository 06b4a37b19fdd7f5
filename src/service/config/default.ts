/** The embedded default: what `vtgt serve` runs on a fresh data directory. */
import type { VtgtConfig } from './types.js';

export const DEFAULT_TARGET_NAME = 'iqn.2026-11.org.vtgt:default';
export const DEFAULT_PORTAL = { host: '127.0.0.1', port: 3260 };
export const CONFIG_FILE_NAME = 'vtgt.yaml';
export const CONTROL_SOCKET_NAME = 'vtgt.sock';

export function defaultConfig(): VtgtConfig {
  return {
    backstores: [{ name: 'disk0', type: 'file', path: 'disk0.img', size: 1024 ** 3, cacheMode: 'writeback' }],
    targets: [{ name: DEFAULT_TARGET_NAME, luns: [{ lun: 0, backstore: 'disk0' }], acls: [] }],
    accounts: [],
    iscsi: { portals: [{ ...DEFAULT_PORTAL }] },
    metrics: {},
    log: { level: 'info' },
    fabrics: {},
  };
}
