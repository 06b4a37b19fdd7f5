/**
 * The real hypervisor interface on a Xen dom0 (or driver domain), through the addon's bindings of
 * libxenstore, libxengnttab and libxenevtchn (native/src/napi_xen.cc). Refuses to start, saying why,
 * when the machine is not a Xen domain with the grant and event-channel devices.
 */
import { loadNative } from '../native/index.js';
import { BoundEventChannel, ForeignPage, GrantError, GrantRange, XenHypervisor, XenStore, XenStoreTransaction, XenStoreWatch } from './hypervisor.js';

interface NativeXenPage {
  read(offset: number, dst: Uint8Array, dstOffset: number, length: number): void;
  write(offset: number, src: Uint8Array): void;
  load32(offset: number): number;
  store32(offset: number, v: number): void;
  fence(): void;
  unmap(): void;
}

interface NativeXenDom0 {
  xsRead(tx: number, path: string): string | undefined;
  xsWrite(tx: number, path: string, value: string): void;
  xsRm(tx: number, path: string): void;
  xsDirectory(tx: number, path: string): string[];
  xsTransactionStart(): number;
  xsTransactionEnd(tx: number, abort: boolean): boolean;
  xsWatch(path: string, token: string): void;
  xsSetPermissions(tx: number, path: string, pairs: Uint32Array): void;
  xsUnwatch(path: string, token: string): void;
  mapGrant(domid: number, ref: number, writable: boolean): NativeXenPage;
  grantCopy(toGuest: boolean, domid: number, refs: Uint32Array, offsets: Uint16Array, lengths: Uint16Array, buf: Uint8Array, bufOffset: number): Int16Array;
  bindInterdomain(domid: number, remotePort: number): number;
  notify(port: number): void;
  unmask(port: number): void;
  unbind(port: number): void;
  close(): void;
}

interface XenBindings {
  xenUnavailableReason?: () => string;
  xenBuiltWithLibxen?: boolean;
  XenDom0?: new (onWatch: (path: string, token: string) => void, onEvent: (port: number) => void) => NativeXenDom0;
}

const TX_MAX_ATTEMPTS = 64;

/** Why the real Xen backend cannot run here ('' when it can). */
export function xenUnavailableReason(): string {
  let n: XenBindings;
  try {
    n = loadNative() as unknown as XenBindings;
  } catch (e) {
    return (e as Error).message;
  }
  if (!n.xenUnavailableReason) return 'the native addon has no Xen support; rebuild it with npm run build:native';
  const r = n.xenUnavailableReason();
  if (r) return r;
  if (!n.XenDom0) return 'vtgt was built without the Xen libraries (install libxen-dev and run npm run build:native)';
  return '';
}

/** Open the real hypervisor interface, or throw an Error that says what is missing. */
export function openXenHypervisor(): XenHypervisor {
  const why = xenUnavailableReason();
  if (why) {
    throw new Error(`xen: cannot serve Xen guests here: ${why}. Run vtgt on a Xen dom0 or driver domain, or try "vtgt sim xen".`);
  }
  const n = loadNative() as unknown as XenBindings;
  const watches = new Map<string, (path: string) => void>();
  const ports = new Map<number, () => void>();
  const dom0 = new n.XenDom0!(
    (path, token) => watches.get(token)?.(path),
    (port) => ports.get(port)?.(),
  );
  let nextToken = 1;
  const txOps = (tx: number): XenStoreTransaction => ({
    read: async (p) => dom0.xsRead(tx, p),
    write: async (p, v) => dom0.xsWrite(tx, p, v),
    rm: async (p) => dom0.xsRm(tx, p),
    directory: async (p) => dom0.xsDirectory(tx, p),
  });
  const xenstore: XenStore = {
    ...txOps(0),
    async setPermissions(path, perms) {
      // XS_PERM_READ = 1, XS_PERM_WRITE = 2 (xenstore_lib.h)
      const pairs = Uint32Array.from(perms.flatMap((p) => [p.domid, (p.read ? 1 : 0) | (p.write ? 2 : 0)]));
      dom0.xsSetPermissions(0, path, pairs);
    },
    async watch(path: string, onChange: (p: string) => void): Promise<XenStoreWatch> {
      const token = `vtgt-${nextToken++}`;
      watches.set(token, onChange);
      dom0.xsWatch(path, token); // xenstored fires it once right away
      return {
        close: async () => {
          watches.delete(token);
          dom0.xsUnwatch(path, token);
        },
      };
    },
    async transaction<T>(fn: (tx: XenStoreTransaction) => Promise<T>): Promise<T> {
      for (let attempt = 0; ; attempt++) {
        const tx = dom0.xsTransactionStart();
        let result: T;
        try {
          result = await fn(txOps(tx));
        } catch (e) {
          dom0.xsTransactionEnd(tx, true);
          throw e;
        }
        if (dom0.xsTransactionEnd(tx, false)) return result;
        if (attempt >= TX_MAX_ATTEMPTS) throw new Error(`xen: xenstore transaction kept conflicting (${TX_MAX_ATTEMPTS} attempts)`);
      }
    },
    close: async () => undefined,
  };
  const selfDomid = Number(dom0.xsRead(0, 'domid') ?? '0');
  const copy = (toGuest: boolean, domid: number, ranges: readonly GrantRange[], buf: Buffer, at: number): number[] => {
    const refs = Uint32Array.from(ranges, (r) => r.ref);
    const offs = Uint16Array.from(ranges, (r) => r.offset);
    const lens = Uint16Array.from(ranges, (r) => r.length);
    return Array.from(dom0.grantCopy(toGuest, domid, refs, offs, lens, buf, at));
  };
  return {
    domid: Number.isInteger(selfDomid) ? selfDomid : 0,
    xenstore,
    mapGrant(domid: number, ref: number, writable: boolean): ForeignPage {
      let p: NativeXenPage;
      try {
        p = dom0.mapGrant(domid, ref, writable);
      } catch (e) {
        throw new GrantError(-1, `grant ${ref} of dom ${domid} could not be mapped: ${(e as Error).message}`);
      }
      return {
        read: (o, dst, dOff = 0, len = dst.length - dOff) => p.read(o, dst, dOff, len),
        write: (o, src) => p.write(o, src),
        load32: (o) => p.load32(o),
        store32: (o, v) => p.store32(o, v >>> 0),
        fence: () => p.fence(),
        unmap: () => p.unmap(),
      };
    },
    copyFromGuest: (domid, ranges, dst, at) => copy(false, domid, ranges, dst, at),
    copyToGuest: (domid, ranges, src, at) => copy(true, domid, ranges, src, at),
    async bindInterdomain(domid: number, remotePort: number, onEvent: () => void): Promise<BoundEventChannel> {
      const port = dom0.bindInterdomain(domid, remotePort);
      ports.set(port, onEvent);
      return {
        localPort: port,
        notify: () => dom0.notify(port),
        unmask: () => dom0.unmask(port),
        close: () => {
          ports.delete(port);
          dom0.unbind(port);
        },
      };
    },
    close: async () => dom0.close(),
  };
}
