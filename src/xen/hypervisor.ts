/**
 * The small interface through which src/xen reaches Xen (ARCHITECTURE.md rule 7): grant map/unmap/
 * copy, event channels, xenstore. Implemented by the native addon over libxengnttab/libxenevtchn/
 * libxenstore on a dom0 (`native.ts`) and by the simulator (`sim/`) everywhere else.
 */

/** grant_table.h GNTST_* status codes. */
export const GNTST = {
  okay: 0,
  general_error: -1,
  bad_domain: -2,
  bad_gntref: -3,
  bad_handle: -4,
  bad_virt_addr: -5,
  bad_dev_addr: -6,
  no_device_space: -7,
  permission_denied: -8,
  bad_page: -9,
  bad_copy_arg: -10,
  address_too_big: -11,
  eagain: -12,
  no_space: -13,
} as const;

/** One grant-copy element: bytes [offset, offset+length) of the page behind `ref`. */
export interface GrantRange {
  ref: number;
  offset: number;
  length: number;
}

/** A foreign page mapped into our address space (the shared ring). */
export interface ForeignPage {
  read(offset: number, dst: Buffer, dstOffset?: number, length?: number): void;
  write(offset: number, src: Buffer): void;
  /** 32-bit little-endian load with acquire ordering (ring indices). */
  load32(offset: number): number;
  /** 32-bit little-endian store with release ordering. */
  store32(offset: number, value: number): void;
  /** Full barrier: orders a preceding store before a following load (ring.h notify/final-check). */
  fence(): void;
  unmap(): void;
}

export class GrantError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'GrantError';
  }
}

/** An interdomain event channel bound to a frontend's unbound port. */
export interface BoundEventChannel {
  readonly localPort: number;
  notify(): void;
  /** Late EOI: the port stays masked after an event until this is called. */
  unmask(): void;
  close(): void;
}

export interface XenStoreTransaction {
  read(path: string): Promise<string | undefined>;
  write(path: string, value: string): Promise<void>;
  rm(path: string): Promise<void>;
  directory(path: string): Promise<string[]>;
}

/** xenstore node permission: the first entry names the owner and what every other domain may do. */
export interface XenStorePermission {
  domid: number;
  read: boolean;
  write: boolean;
}

export interface XenStoreWatch {
  close(): Promise<void>;
}

export interface XenStore extends XenStoreTransaction {
  /**
   * Watch `path` and everything below it. As xenstored does, the callback fires once right after the
   * watch is set and may fire spuriously: treat it as "re-read what you care about".
   */
  watch(path: string, onChange: (changedPath: string) => void): Promise<XenStoreWatch>;
  /** Set a node's permissions (xs_set_permissions); the simulator enforces its own simplified rule. */
  setPermissions(path: string, perms: XenStorePermission[]): Promise<void>;
  /** Run `fn` in a transaction, retrying on EAGAIN (conflict) up to a bound. */
  transaction<T>(fn: (tx: XenStoreTransaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface XenHypervisor {
  /** Our own domain id (0 on a dom0 backend). */
  readonly domid: number;
  readonly xenstore: XenStore;
  /** Map one granted page read/write (the ring). Throws GrantError when the grant is refused. */
  mapGrant(domid: number, ref: number, writable: boolean): ForeignPage;
  /** Copy guest bytes into `dst` at `dstOffset`, range by range. Returns one GNTST status per range. */
  copyFromGuest(domid: number, ranges: readonly GrantRange[], dst: Buffer, dstOffset: number): number[];
  /** Copy `src` from `srcOffset` into the guest ranges. Returns one GNTST status per range. */
  copyToGuest(domid: number, ranges: readonly GrantRange[], src: Buffer, srcOffset: number): number[];
  /** Bind to the frontend's unbound port. `onEvent` runs with the port masked (call unmask when done). */
  bindInterdomain(domid: number, remotePort: number, onEvent: () => void): Promise<BoundEventChannel>;
  close(): Promise<void>;
}
