/**
 * The backend side of one vscsi device (one virtual host of one domU) on xenbus: the state machine
 * of xen-vscsiif.md §5 — handshake, per-LUN hot-plug and unplug through Reconfiguring/Reconfigured,
 * frontend close and reconnect — driving a `VscsiRing` for the data path.
 *
 * Xenstore watches fire spuriously and out of order, and frontend nodes are written by the guest:
 * every change only schedules a `reconcile()` that re-reads the nodes, parses them strictly and
 * moves to the state they call for. Reconciles never overlap.
 */
import type { Logger } from 'pino';
import { LunTarget, VscsiRing } from './backend.js';
import { XenHypervisor, XenStoreWatch } from './hypervisor.js';
import {
  VirtualAddress,
  XenbusState,
  addressKey,
  backendPath,
  frontendPath,
  parseDevName,
  parseState,
  parseUnsigned,
  parseVirtualAddress,
  stateName,
} from './xenbus-nodes.js';

/** The core-facing side of one virtual host: binds guest addresses to the core's logical units. */
export interface XenScsiHost {
  /** Make `pdev` visible at the guest address; returns where commands go, or a message why not. */
  attach(addr: VirtualAddress, pdev: string): LunTarget | string;
  detach(addr: VirtualAddress): void;
  close(): Promise<void>;
}
export type XenScsiHostFactory = (frontendDomid: number, vhost: number) => XenScsiHost;

export interface VscsiDeviceOptions {
  hv: XenHypervisor;
  frontendDomid: number;
  vhost: number;
  hostFactory: XenScsiHostFactory;
  /** feature-sg-grant to advertise (0 = direct segments only). */
  maxIndirectSegments: number;
  logger?: Logger;
  /** The toolstack removed the device (online = 0 and closed, or backend directory gone). */
  onDestroyed?: () => void;
  onRingHalted?: (reason: string) => void;
}

interface AttachedLun {
  dev: number;
  addr: VirtualAddress;
  target: LunTarget;
}

export class VscsiDevice {
  readonly bePath: string;
  private fePath: string;
  private ring: VscsiRing | undefined;
  private ringRef = -1;
  private evtchn = -1;
  private readonly luns = new Map<string, AttachedLun>();
  private readonly host: XenScsiHost;
  private watches: XenStoreWatch[] = [];
  private running: Promise<void> | undefined;
  private dirty = false;
  private destroyed = false;
  private readonly name: string;

  constructor(private readonly o: VscsiDeviceOptions) {
    this.bePath = backendPath(o.hv.domid, o.frontendDomid, o.vhost);
    this.fePath = frontendPath(o.frontendDomid, o.vhost);
    this.host = o.hostFactory(o.frontendDomid, o.vhost);
    this.name = `dom ${o.frontendDomid} vhost ${o.vhost}`;
  }

  get ringStats() {
    return this.ring?.stats;
  }

  get ringHalted(): string | undefined {
    return this.ring?.halted;
  }

  /** Guest addresses currently served. */
  addresses(): string[] {
    return [...this.luns.keys()];
  }

  resolve(channel: number, id: number, lun: number): LunTarget | undefined {
    return this.luns.get(addressKey(channel, id, lun))?.target;
  }

  async start(): Promise<void> {
    const xs = this.o.hv.xenstore;
    const fe = await xs.read(`${this.bePath}/frontend`);
    const feId = parseUnsigned(await xs.read(`${this.bePath}/frontend-id`), 0xffff);
    if (fe !== undefined) {
      if (!fe.startsWith(`/local/domain/${this.o.frontendDomid}/`) || feId !== this.o.frontendDomid) {
        throw new Error(
          `xen: ${this.bePath}: frontend ${JSON.stringify(fe)} / frontend-id ${feId} do not belong to dom ${this.o.frontendDomid}; fix the toolstack entries`,
        );
      }
      this.fePath = fe;
    }
    await xs.write(`${this.bePath}/feature-sg-grant`, String(this.o.maxIndirectSegments));
    const st = parseState(await xs.read(`${this.bePath}/state`));
    if (st === undefined || st === XenbusState.Initialising || st === XenbusState.Unknown) {
      await this.setState(XenbusState.InitWait);
    }
    this.watches.push(await xs.watch(this.bePath, () => this.schedule()));
    this.watches.push(await xs.watch(this.fePath, () => this.schedule()));
    this.schedule();
  }

  /** Stop serving (service shutdown or restart): drain the ring, leave xenstore as it is. */
  async stop(): Promise<void> {
    this.destroyed = true;
    for (const w of this.watches) await w.close().catch(() => undefined);
    this.watches = [];
    await this.running;
    await this.disconnect(false);
    await this.host.close();
  }

  /** Run a reconcile now and wait for it (tests). */
  async settle(): Promise<void> {
    this.schedule();
    while (this.running) await this.running;
  }

  private schedule(): void {
    if (this.destroyed) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    this.running = (async () => {
      do {
        this.dirty = false;
        try {
          await this.reconcile();
        } catch (e) {
          this.o.logger?.error({ device: this.bePath, err: (e as Error).message }, `xen: ${this.name}: xenbus handling failed`);
        }
      } while (this.dirty && !this.destroyed);
      this.running = undefined;
    })();
  }

  private async setState(s: XenbusState): Promise<void> {
    await this.o.hv.xenstore.write(`${this.bePath}/state`, String(s));
  }

  private async reconcile(): Promise<void> {
    const xs = this.o.hv.xenstore;
    const online = await xs.read(`${this.bePath}/online`);
    if (online === undefined) {
      // The toolstack removed the backend directory (it writes `online` with everything else).
      // Remove anything we wrote after it did, so no half directory is left behind.
      await this.destroy('backend directory removed');
      await xs.rm(this.bePath).catch(() => undefined);
      return;
    }
    const be = parseState(await xs.read(`${this.bePath}/state`));
    const fe = parseState(await xs.read(`${this.fePath}/state`));
    this.o.logger?.debug({ device: this.bePath, backend: stateName(be), frontend: stateName(fe) }, 'xen: reconcile');

    // A backend Closing set by the toolstack while no frontend is active finishes at Closed.
    if (be === XenbusState.Closing && !this.ring && (fe === undefined || fe < XenbusState.InitWait || fe > XenbusState.Closing)) {
      await this.setState(XenbusState.Closed);
      if (online === '0') return this.destroy('detached by the toolstack');
      return;
    }

    switch (fe) {
      case undefined:
      case XenbusState.Unknown:
      case XenbusState.Initialising:
      case XenbusState.InitWait:
        // Fresh frontend, or a guest that rebooted/kexec'd: forget the old ring, offer a new one.
        if (this.ring) await this.disconnect(true);
        if (online === '1' && be !== XenbusState.InitWait && be !== XenbusState.Reconfiguring) await this.setState(XenbusState.InitWait);
        return;
      case XenbusState.Initialised: {
        if (be === XenbusState.InitWait || (be === XenbusState.Connected && (await this.ringChanged()))) {
          if (this.ring) await this.disconnect(true);
          // Translations first: the ring may hold requests the moment it is mapped.
          await this.processDevices();
          if (!(await this.connect())) return;
          await this.setState(XenbusState.Connected);
        }
        return;
      }
      case XenbusState.Connected:
        // The toolstack is detaching the vhost: wait for the frontend to close.
        if (be === XenbusState.Closing || be === XenbusState.Closed) return;
        // The toolstack asked for a reconfiguration: the frontend moves first (§5.4 step 2).
        if (be === XenbusState.Reconfiguring) return;
        if (!this.ring && (be === XenbusState.Connected || be === XenbusState.Reconfigured)) {
          // We restarted while the guest stayed connected: pick the ring up where it was.
          await this.processDevices();
          if (!(await this.connect())) return;
        }
        if (!this.ring) return;
        await this.promoteDevices();
        if (be !== XenbusState.Connected) await this.setState(XenbusState.Connected);
        return;
      case XenbusState.Reconfiguring:
        if (be === XenbusState.Reconfiguring && this.ring) {
          await this.processDevices();
          await this.setState(XenbusState.Reconfigured);
        }
        return;
      case XenbusState.Reconfigured:
        return;
      case XenbusState.Closing:
        if (this.ring) await this.disconnect(false);
        if (be !== XenbusState.Closing && be !== XenbusState.Closed) await this.setState(XenbusState.Closing);
        return;
      case XenbusState.Closed:
        if (this.ring) await this.disconnect(false);
        if (be !== XenbusState.Closed) await this.setState(XenbusState.Closed);
        if (online === '0') return this.destroy('frontend closed and device offline');
        return;
    }
  }

  private async ringChanged(): Promise<boolean> {
    const xs = this.o.hv.xenstore;
    const ref = parseUnsigned(await xs.read(`${this.fePath}/ring-ref`), 0xffffffff);
    const ev = parseUnsigned(await xs.read(`${this.fePath}/event-channel`), 0x7fffffff);
    return !this.ring || ref !== this.ringRef || ev !== this.evtchn;
  }

  /** Map the ring and bind the event channel named by the frontend. False (and Closing) on failure. */
  private async connect(): Promise<boolean> {
    const xs = this.o.hv.xenstore;
    const refRaw = await xs.read(`${this.fePath}/ring-ref`);
    const evRaw = await xs.read(`${this.fePath}/event-channel`);
    const ref = parseUnsigned(refRaw, 0xffffffff);
    const ev = parseUnsigned(evRaw, 0x7fffffff);
    const fail = async (why: string): Promise<false> => {
      this.o.logger?.error({ device: this.bePath, domid: this.o.frontendDomid, problem: why }, `xen: ${this.name}: cannot connect the ring`);
      await xs.write(`${this.bePath}/error`, why.slice(0, 200)).catch(() => undefined);
      await this.setState(XenbusState.Closing);
      return false;
    };
    if (ref === undefined) return fail(`ring-ref ${JSON.stringify(refRaw ?? null)} is not an unsigned decimal`);
    if (ev === undefined) return fail(`event-channel ${JSON.stringify(evRaw ?? null)} is not an unsigned decimal`);
    const ring = new VscsiRing({
      hv: this.o.hv,
      frontendDomid: this.o.frontendDomid,
      ringRef: ref,
      eventChannel: ev,
      resolve: (c, t, l) => this.resolve(c, t, l),
      maxIndirectSegments: this.o.maxIndirectSegments,
      name: this.name,
      ...(this.o.logger ? { logger: this.o.logger } : {}),
    });
    ring.onHalt = (reason) => this.o.onRingHalted?.(reason);
    try {
      await ring.start();
    } catch (e) {
      return fail(`ring-ref ${ref} / event-channel ${ev}: ${(e as Error).message}`);
    }
    this.ring = ring;
    this.ringRef = ref;
    this.evtchn = ev;
    this.o.logger?.info({ device: this.bePath, domid: this.o.frontendDomid, ringRef: ref, eventChannel: ev }, `xen: ${this.name} connected`);
    return true;
  }

  private async disconnect(force: boolean): Promise<void> {
    const r = this.ring;
    if (!r) return;
    this.ring = undefined;
    await r.stop(force);
    this.o.logger?.info({ device: this.bePath, domid: this.o.frontendDomid }, `xen: ${this.name} disconnected`);
  }

  /** Apply the per-LUN requests of the toolstack (§5.3 step 4, §5.4 step 3). */
  private async processDevices(): Promise<void> {
    const xs = this.o.hv.xenstore;
    const base = `${this.bePath}/vscsi-devs`;
    const seen = new Set<number>();
    for (const name of await xs.directory(base)) {
      const dev = parseDevName(name);
      if (dev === undefined) continue;
      seen.add(dev);
      const p = `${base}/${name}`;
      const st = parseState(await xs.read(`${p}/state`));
      const addr = parseVirtualAddress(await xs.read(`${p}/v-dev`));
      const pdev = await xs.read(`${p}/p-dev`);
      const current = [...this.luns.values()].find((l) => l.dev === dev);
      if (st === XenbusState.Initialising || ((st === XenbusState.Initialised || st === XenbusState.Connected) && !current)) {
        const ok = this.attach(dev, addr, pdev);
        if (st === XenbusState.Initialising || !ok) await xs.write(`${p}/state`, String(ok ? XenbusState.Initialised : XenbusState.Closed));
      } else if (st === XenbusState.Closing) {
        if (current) this.detach(current);
        await xs.write(`${p}/state`, String(XenbusState.Closed));
      }
    }
    // Entries the toolstack deleted without the unplug handshake.
    for (const l of [...this.luns.values()]) if (!seen.has(l.dev)) this.detach(l);
  }

  /** Devices the frontend has now seen move Initialised → Connected (§5.3 step 6). */
  private async promoteDevices(): Promise<void> {
    const xs = this.o.hv.xenstore;
    const base = `${this.bePath}/vscsi-devs`;
    for (const name of await xs.directory(base)) {
      if (parseDevName(name) === undefined) continue;
      const p = `${base}/${name}`;
      if (parseState(await xs.read(`${p}/state`)) === XenbusState.Initialised) await xs.write(`${p}/state`, String(XenbusState.Connected));
    }
  }

  private attach(dev: number, addr: VirtualAddress | undefined, pdev: string | undefined): boolean {
    if (!addr || pdev === undefined || pdev.length === 0) {
      this.o.logger?.warn({ device: this.bePath, dev }, `xen: ${this.name} dev-${dev}: p-dev or v-dev missing or malformed; not attached`);
      return false;
    }
    const key = addressKey(addr.channel, addr.id, addr.lun);
    const clash = this.luns.get(key);
    if (clash && clash.dev !== dev) {
      this.o.logger?.warn({ device: this.bePath, dev, vdev: key }, `xen: ${this.name} dev-${dev}: address already used by dev-${clash.dev}`);
      return false;
    }
    const r = this.host.attach(addr, pdev);
    if (typeof r === 'string') {
      this.o.logger?.warn({ device: this.bePath, dev, pdev, problem: r }, `xen: ${this.name} dev-${dev}: cannot attach`);
      return false;
    }
    this.luns.set(key, { dev, addr, target: r });
    return true;
  }

  private detach(l: AttachedLun): void {
    this.luns.delete(addressKey(l.addr.channel, l.addr.id, l.addr.lun));
    this.host.detach(l.addr);
  }

  private async destroy(why: string): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    this.o.logger?.info({ device: this.bePath, reason: why }, `xen: ${this.name} removed`);
    for (const w of this.watches) await w.close().catch(() => undefined);
    this.watches = [];
    await this.disconnect(true);
    for (const l of [...this.luns.values()]) this.detach(l);
    await this.host.close();
    this.o.onDestroyed?.();
  }
}
