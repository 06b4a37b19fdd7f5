/**
 * The Xen pvSCSI backend service: watches this domain's `backend/vscsi` directory and runs one
 * `VscsiDevice` per (frontend domain, virtual host) the toolstack creates there.
 */
import type { Logger } from 'pino';
import { XenHypervisor, XenStoreWatch } from './hypervisor.js';
import { VscsiDevice, XenScsiHostFactory } from './xenbus.js';
import { MAX_DOMID, backendRoot, parseUnsigned } from './xenbus-nodes.js';
import { VSCSI_DEFAULT_MAX_INDIRECT_SEGMENTS } from './segments.js';

export interface XenScsiServerOptions {
  hv: XenHypervisor;
  hostFactory: XenScsiHostFactory;
  /** feature-sg-grant (default 128 = Linux SG_ALL; 0 disables indirect segments). */
  maxIndirectSegments?: number;
  logger?: Logger;
  onRingHalted?: (domid: number, vhost: number, reason: string) => void;
}

export class XenScsiServer {
  private readonly devices = new Map<string, VscsiDevice>();
  private watch: XenStoreWatch | undefined;
  private scanning: Promise<void> | undefined;
  private rescan = false;
  private stopped = false;

  constructor(private readonly o: XenScsiServerOptions) {}

  async start(): Promise<void> {
    this.watch = await this.o.hv.xenstore.watch(backendRoot(this.o.hv.domid), () => this.scheduleScan());
    await this.scan();
  }

  /** Stop serving every device (drains rings; xenstore left for a restarted backend to resume). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.watch?.close();
    await this.scanning;
    await Promise.all([...this.devices.values()].map((d) => d.stop()));
    this.devices.clear();
  }

  device(domid: number, vhost: number): VscsiDevice | undefined {
    return this.devices.get(`${domid}/${vhost}`);
  }

  list(): Array<{ domid: number; vhost: number; device: VscsiDevice }> {
    return [...this.devices.entries()].map(([k, device]) => {
      const [d, v] = k.split('/').map(Number);
      return { domid: d!, vhost: v!, device };
    });
  }

  private scheduleScan(): void {
    if (this.stopped) return;
    if (this.scanning) {
      this.rescan = true;
      return;
    }
    this.scanning = this.scan().finally(() => {
      this.scanning = undefined;
      if (this.rescan) {
        this.rescan = false;
        this.scheduleScan();
      }
    });
  }

  private async scan(): Promise<void> {
    const xs = this.o.hv.xenstore;
    const root = backendRoot(this.o.hv.domid);
    for (const d of await xs.directory(root)) {
      const domid = parseUnsigned(d, MAX_DOMID);
      if (domid === undefined) continue;
      for (const v of await xs.directory(`${root}/${d}`)) {
        const vhost = parseUnsigned(v, 0xffff);
        if (vhost === undefined) continue;
        // Only devices the toolstack finished creating and wants online (a device being detached
        // has online 0 and must not be picked up again after it was destroyed).
        if ((await xs.read(`${root}/${d}/${v}/online`)) !== '1') continue;
        if ((await xs.read(`${root}/${d}/${v}/state`)) === undefined) continue;
        const key = `${domid}/${vhost}`;
        if (this.devices.has(key) || this.stopped) continue;
        const dev = new VscsiDevice({
          hv: this.o.hv,
          frontendDomid: domid,
          vhost,
          hostFactory: this.o.hostFactory,
          maxIndirectSegments: this.o.maxIndirectSegments ?? VSCSI_DEFAULT_MAX_INDIRECT_SEGMENTS,
          ...(this.o.logger ? { logger: this.o.logger } : {}),
          onDestroyed: () => {
            if (this.devices.get(key) === dev) this.devices.delete(key);
          },
          onRingHalted: (reason) => this.o.onRingHalted?.(domid, vhost, reason),
        });
        this.devices.set(key, dev);
        try {
          await dev.start();
        } catch (e) {
          this.devices.delete(key);
          this.o.logger?.error({ domid, vhost, err: (e as Error).message }, 'xen: cannot start vscsi device');
        }
      }
    }
  }
}
