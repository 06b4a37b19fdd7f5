/**
 * XenbusState values and the xenstore layout of a vscsi device (xen/include/public/io/xenbus.h,
 * vscsiif.h "Xenstore format in practice"; xen-vscsiif.md §5). Parsers here treat node contents as
 * untrusted: strict unsigned decimals, bounded ranges, undefined on anything else.
 */

/** xenbus.h enum xenbus_state. */
export const XenbusState = {
  Unknown: 0,
  Initialising: 1,
  InitWait: 2,
  Initialised: 3,
  Connected: 4,
  Closing: 5,
  Closed: 6,
  Reconfiguring: 7,
  Reconfigured: 8,
} as const;
export type XenbusState = (typeof XenbusState)[keyof typeof XenbusState];

export const stateName = (s: number | undefined): string =>
  s === undefined ? 'absent' : (Object.entries(XenbusState).find(([, v]) => v === s)?.[0] ?? `invalid(${s})`);

/** Strict unsigned decimal ("0".."max"), no sign, no spaces, no leading zeros beyond "0". */
export function parseUnsigned(s: string | undefined, max: number): number | undefined {
  if (s === undefined || !/^(0|[1-9][0-9]{0,9})$/.test(s)) return undefined;
  const n = Number(s);
  return n <= max ? n : undefined;
}

export function parseState(s: string | undefined): XenbusState | undefined {
  const n = parseUnsigned(s, 8);
  return n as XenbusState | undefined;
}

/** Virtual SCSI address "h:c:t:l" (v-dev); the host part is ignored by the backend. */
export interface VirtualAddress {
  host: number;
  channel: number;
  id: number;
  lun: number;
}

export function parseVirtualAddress(s: string | undefined): VirtualAddress | undefined {
  if (s === undefined) return undefined;
  const parts = s.split(':');
  if (parts.length !== 4) return undefined;
  const n = parts.map((p) => parseUnsigned(p, 0xffff));
  if (n.some((x) => x === undefined)) return undefined;
  return { host: n[0]!, channel: n[1]!, id: n[2]!, lun: n[3]! };
}

export const formatVirtualAddress = (a: VirtualAddress): string => `${a.host}:${a.channel}:${a.id}:${a.lun}`;
export const addressKey = (channel: number, id: number, lun: number): string => `${channel}:${id}:${lun}`;

/** Backend directory of a vscsi device. */
export const backendPath = (backendDomid: number, frontendDomid: number, vhost: number): string =>
  `/local/domain/${backendDomid}/backend/vscsi/${frontendDomid}/${vhost}`;
export const backendRoot = (backendDomid: number): string => `/local/domain/${backendDomid}/backend/vscsi`;
/** Frontend directory of a vscsi device. */
export const frontendPath = (frontendDomid: number, vhost: number): string => `/local/domain/${frontendDomid}/device/vscsi/${vhost}`;

/** Device entry names are "dev-<n>". */
export function parseDevName(name: string): number | undefined {
  const m = /^dev-(0|[1-9][0-9]{0,5})$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Domain ids a guest can have (DOMID_FIRST_RESERVED = 0x7ff0). */
export const MAX_DOMID = 0x7fef;
