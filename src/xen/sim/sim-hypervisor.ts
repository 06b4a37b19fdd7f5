/**
 * `XenHypervisor` over the simulator: xenstore and event channels through the simulated hypervisor
 * daemon's socket, grants through the checked access to the domains' memory files.
 */
import { BoundEventChannel, ForeignPage, GrantRange, XenHypervisor, XenStore } from '../hypervisor.js';
import { SimXenClient } from './client.js';
import { SimGrantAccess } from './grant-table.js';

export class SimHypervisor implements XenHypervisor {
  readonly grants: SimGrantAccess;

  private constructor(
    private readonly client: SimXenClient,
    memoryDir: string,
  ) {
    this.grants = new SimGrantAccess(memoryDir, client.domid);
  }

  /** Connect as `domid` (0 for a dom0 backend) to the daemon at `socketPath`. */
  static async connect(socketPath: string, memoryDir: string, domid = 0): Promise<SimHypervisor> {
    return new SimHypervisor(await SimXenClient.connect(socketPath, domid), memoryDir);
  }

  get domid(): number {
    return this.client.domid;
  }

  get xenstore(): XenStore {
    return this.client.xenstore;
  }

  mapGrant(domid: number, ref: number, writable: boolean): ForeignPage {
    return this.grants.map(domid, ref, writable);
  }

  copyFromGuest(domid: number, ranges: readonly GrantRange[], dst: Buffer, dstOffset: number): number[] {
    return this.grants.copy('from-guest', domid, ranges, dst, dstOffset);
  }

  copyToGuest(domid: number, ranges: readonly GrantRange[], src: Buffer, srcOffset: number): number[] {
    return this.grants.copy('to-guest', domid, ranges, src, srcOffset);
  }

  async bindInterdomain(domid: number, remotePort: number, onEvent: () => void): Promise<BoundEventChannel> {
    const port = await this.client.bindInterdomain(domid, remotePort, onEvent);
    return {
      localPort: port,
      notify: () => this.client.notify(port),
      unmask: () => this.client.unmask(port),
      close: () => this.client.closePort(port),
    };
  }

  async close(): Promise<void> {
    this.grants.close();
    await this.client.close();
  }
}
