/**
 * The toolstack side of pvSCSI that `xl` lacks (`vtgt xen attach` / `vtgt xen detach`): writes and
 * removes the xenstore entries a frontend needs, following the protocol comment of vscsiif.h
 * (xen-vscsiif.md §5.1, §5.4, §5.5). Works against any `XenStore` (the simulated one in tests, the
 * real one through the addon on a dom0).
 */
import type { XenStore } from './hypervisor.js';
import {
  XenbusState,
  backendPath,
  frontendPath,
  parseDevName,
  parseState,
  parseVirtualAddress,
  stateName,
} from './xenbus-nodes.js';

export interface XenLunSpec {
  /** Logical unit id in vtgt (written as p-dev). */
  pdev: string;
  /** Guest address "h:c:t:l". */
  vdev: string;
}

export interface XenAttachOptions {
  xs: XenStore;
  backendDomid: number;
  domid: number;
  vhost: number;
  luns: XenLunSpec[];
  /** Wait for hot-plugged LUNs to reach Connected (only when the device is already connected). */
  wait?: boolean;
  timeoutMs?: number;
}

export interface XenDetachOptions {
  xs: XenStore;
  backendDomid: number;
  domid: number;
  vhost: number;
  /** Remove only this LUN ("h:c:t:l"); without it the whole virtual host is detached. */
  vdev?: string;
  timeoutMs?: number;
  /**
   * Whole virtual host only: if the frontend does not close within the timeout (its domain died or
   * hangs), remove the device anyway instead of failing — what libxl does when destroying a domain.
   * The backend sees its directory vanish and drops the ring.
   */
  force?: boolean;
}

const DEFAULT_TIMEOUT_MS = 10_000;

function checkIds(domid: number, vhost: number, backendDomid: number): void {
  for (const [n, v, max] of [
    ['domain', domid, 0x7fef],
    ['vhost', vhost, 0xffff],
    ['backend domain', backendDomid, 0x7fef],
  ] as const) {
    if (!Number.isInteger(v) || v < 0 || v > max) throw new Error(`xen: ${n} ${v} is invalid (0..${max})`);
  }
  if (domid === backendDomid) throw new Error(`xen: domain ${domid} is the backend domain itself; attach to a guest domain`);
}

function checkLun(l: XenLunSpec): void {
  if (!parseVirtualAddress(l.vdev)) throw new Error(`xen: v-dev ${JSON.stringify(l.vdev)} must be "host:channel:target:lun" in decimal`);
  if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(l.pdev)) throw new Error(`xen: p-dev ${JSON.stringify(l.pdev)} must name a vtgt logical unit`);
}

/** Poll-free wait: re-check `done` on every change under `path` until it returns true or time runs out. */
export async function waitFor(xs: XenStore, path: string, done: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  let resolveFn!: () => void;
  let rejectFn!: (e: Error) => void;
  const p = new Promise<void>((res, rej) => {
    resolveFn = res;
    rejectFn = rej;
  });
  let checking = false;
  let again = false;
  const check = async (): Promise<void> => {
    if (checking) {
      again = true;
      return;
    }
    checking = true;
    try {
      do {
        again = false;
        if (await done()) return resolveFn();
      } while (again);
    } catch (e) {
      rejectFn(e as Error);
    } finally {
      checking = false;
    }
  };
  const w = await xs.watch(path, () => void check());
  timer = setTimeout(() => rejectFn(new Error(`xen: timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
  try {
    await check();
    await p;
  } finally {
    clearTimeout(timer);
    await w.close();
  }
}

async function devEntries(xs: XenStore, be: string): Promise<Array<{ n: number; vdev: string | undefined; state: number | undefined }>> {
  const out = [];
  for (const name of await xs.directory(`${be}/vscsi-devs`)) {
    const n = parseDevName(name);
    if (n === undefined) continue;
    out.push({
      n,
      vdev: await xs.read(`${be}/vscsi-devs/${name}/v-dev`),
      state: parseState(await xs.read(`${be}/vscsi-devs/${name}/state`)),
    });
  }
  return out;
}

/** Every node below `path` (depth first, the node itself first). */
async function treeNodes(xs: XenStore, path: string): Promise<string[]> {
  const out = [path];
  for (const c of await xs.directory(path)) out.push(...(await treeNodes(xs, `${path}/${c}`)));
  return out;
}

/**
 * As QEMU's toolstack side does: the backend directory belongs to the backend domain and is readable
 * by the guest; the frontend directory belongs to the guest and is readable by the backend (which,
 * being dom0 here, may write anyway).
 */
async function setDevicePermissions(xs: XenStore, be: string, fe: string, backendDomid: number, domid: number): Promise<void> {
  for (const p of await treeNodes(xs, be)) {
    await xs.setPermissions(p, [
      { domid: backendDomid, read: false, write: false },
      { domid, read: true, write: false },
    ]);
  }
  for (const p of await treeNodes(xs, fe)) {
    await xs.setPermissions(p, [
      { domid, read: false, write: false },
      { domid: backendDomid, read: true, write: false },
    ]);
  }
}

/**
 * Create the vscsi device of `domid`/`vhost` with the given LUNs, or hot-plug the LUNs into an
 * existing one. Returns the dev-N indices used.
 */
export async function xenAttach(o: XenAttachOptions): Promise<number[]> {
  checkIds(o.domid, o.vhost, o.backendDomid);
  if (o.luns.length === 0) throw new Error('xen: attach needs at least one --lun pdev=h:c:t:l');
  o.luns.forEach(checkLun);
  const be = backendPath(o.backendDomid, o.domid, o.vhost);
  const fe = frontendPath(o.domid, o.vhost);
  const used: number[] = [];
  let hotplug = false;
  let hotplugOrExisting = false;
  await o.xs.transaction(async (tx) => {
    used.length = 0;
    const exists = (await tx.read(`${be}/state`)) !== undefined;
    hotplugOrExisting = exists;
    const existing = exists ? await tx.directory(`${be}/vscsi-devs`) : [];
    const existingVdevs = new Set<string>();
    for (const name of existing) {
      const v = await tx.read(`${be}/vscsi-devs/${name}/v-dev`);
      const st = parseState(await tx.read(`${be}/vscsi-devs/${name}/state`));
      if (v !== undefined && st !== XenbusState.Closed && st !== XenbusState.Closing) existingVdevs.add(v);
    }
    let next = Math.max(-1, ...existing.map((n) => parseDevName(n) ?? -1)) + 1;
    for (const l of o.luns) {
      if (existingVdevs.has(l.vdev)) throw new Error(`xen: dom ${o.domid} vhost ${o.vhost} already has a LUN at ${l.vdev}`);
      existingVdevs.add(l.vdev);
      const d = `${be}/vscsi-devs/dev-${next}`;
      await tx.write(`${d}/p-dev`, l.pdev);
      await tx.write(`${d}/p-devname`, l.pdev);
      await tx.write(`${d}/v-dev`, l.vdev);
      await tx.write(`${d}/state`, String(XenbusState.Initialising));
      used.push(next++);
    }
    if (!exists) {
      await tx.write(`${be}/frontend`, fe);
      await tx.write(`${be}/frontend-id`, String(o.domid));
      await tx.write(`${be}/online`, '1');
      await tx.write(`${be}/feature-host`, '0');
      await tx.write(`${be}/state`, String(XenbusState.Initialising));
      await tx.write(`${fe}/backend`, be);
      await tx.write(`${fe}/backend-id`, String(o.backendDomid));
      await tx.write(`${fe}/state`, String(XenbusState.Initialising));
      hotplug = false;
    } else {
      // Hot-plug only through the Reconfiguring handshake when a frontend is connected; otherwise
      // the new devices are picked up at connect time.
      hotplug = parseState(await tx.read(`${be}/state`)) === XenbusState.Connected;
      if (hotplug) await tx.write(`${be}/state`, String(XenbusState.Reconfiguring));
    }
  });
  if (!hotplugOrExisting) await setDevicePermissions(o.xs, be, fe, o.backendDomid, o.domid);
  if (hotplug && o.wait !== false) {
    const want = new Set(used);
    await waitFor(
      o.xs,
      be,
      async () => {
        if (parseState(await o.xs.read(`${be}/state`)) !== XenbusState.Connected) return false;
        const devs = (await devEntries(o.xs, be)).filter((d) => want.has(d.n));
        const failed = devs.find((d) => d.state === XenbusState.Closed);
        if (failed) throw new Error(`xen: dom ${o.domid} vhost ${o.vhost}: dev-${failed.n} (${failed.vdev}) was refused by the backend or the guest`);
        return devs.every((d) => d.state === XenbusState.Connected);
      },
      o.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      `dom ${o.domid} vhost ${o.vhost} to connect the hot-plugged LUNs`,
    );
  }
  return used;
}

/** Unplug one LUN (Reconfiguring handshake) or the whole virtual host (online 0, Closing). */
export async function xenDetach(o: XenDetachOptions): Promise<{ forced: boolean }> {
  checkIds(o.domid, o.vhost, o.backendDomid);
  const xs = o.xs;
  const be = backendPath(o.backendDomid, o.domid, o.vhost);
  const fe = frontendPath(o.domid, o.vhost);
  const timeout = o.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const state = parseState(await xs.read(`${be}/state`));
  if (state === undefined) throw new Error(`xen: dom ${o.domid} has no vscsi vhost ${o.vhost} (no ${be})`);
  if (o.vdev !== undefined) {
    if (!parseVirtualAddress(o.vdev)) throw new Error(`xen: v-dev ${JSON.stringify(o.vdev)} must be "host:channel:target:lun"`);
    const dev = (await devEntries(xs, be)).find((d) => d.vdev === o.vdev && d.state !== XenbusState.Closed);
    if (!dev) throw new Error(`xen: dom ${o.domid} vhost ${o.vhost} has no LUN at ${o.vdev}`);
    const d = `${be}/vscsi-devs/dev-${dev.n}`;
    if (state === XenbusState.Connected) {
      await xs.transaction(async (tx) => {
        await tx.write(`${d}/state`, String(XenbusState.Closing));
        await tx.write(`${be}/state`, String(XenbusState.Reconfiguring));
      });
      await waitFor(
        xs,
        be,
        async () =>
          parseState(await xs.read(`${d}/state`)) === XenbusState.Closed && parseState(await xs.read(`${be}/state`)) === XenbusState.Connected,
        timeout,
        `dom ${o.domid} vhost ${o.vhost} to release ${o.vdev}`,
      );
    }
    await xs.rm(d);
    return { forced: false };
  }
  // No frontend attached (or no backend ever picked the device up): nothing to wait for.
  const active = state === XenbusState.Connected || state === XenbusState.Initialised || state === XenbusState.Reconfiguring || state === XenbusState.Reconfigured;
  const feState = parseState(await xs.read(`${fe}/state`));
  if (!active && (feState === undefined || feState <= XenbusState.InitWait || feState === XenbusState.Closed)) {
    await xs.rm(be);
    await xs.rm(fe);
    return { forced: false };
  }
  await xs.transaction(async (tx) => {
    await tx.write(`${be}/online`, '0');
    await tx.write(`${be}/state`, String(XenbusState.Closing));
  });
  try {
    await waitFor(
      xs,
      be,
      async () => {
        const s = parseState(await xs.read(`${be}/state`));
        return s === XenbusState.Closed || s === undefined;
      },
      timeout,
      `dom ${o.domid} vhost ${o.vhost} to close (backend state ${stateName(state)})`,
    );
    return { forced: false };
  } catch (e) {
    if (!o.force) throw e;
    return { forced: true };
  } finally {
    // Removed even when the frontend never answered: a half-detached vhost helps no one.
    await xs.rm(be);
    await xs.rm(fe);
  }
}

/**
 * The xenstore the toolstack commands talk to: the simulated one (`simSocket`, as printed by the
 * simulator) or the real one through the addon on a dom0. Call `close()` when done.
 */
export async function openToolstackXenStore(opts: { simSocket?: string } = {}): Promise<{
  xs: XenStore;
  backendDomid: number;
  close(): Promise<void>;
  /** Simulator only: create a guest domain; returns its credential file for the domU emulator. */
  createSimDomain?(domid: number): Promise<string>;
}> {
  if (opts.simSocket) {
    const { SimXenClient } = await import('./sim/client.js');
    // As dom0, with the credential the daemon left beside its socket (readable by its user only).
    const c = await SimXenClient.connect(opts.simSocket, 0);
    return { xs: c.xenstore, backendDomid: 0, close: () => c.close(), createSimDomain: (domid) => c.createDomain(domid) };
  }
  const { openXenHypervisor } = await import('./native.js');
  const hv = openXenHypervisor();
  return { xs: hv.xenstore, backendDomid: hv.domid, close: () => hv.close() };
}
