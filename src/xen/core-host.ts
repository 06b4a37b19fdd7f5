/**
 * Binds the guest addresses of a virtual host to the SCSI core. Each guest (channel, id) is one I_T
 * nexus with its own LUN map (numbered by the v-dev lun), so REPORT LUNS sent to a target id lists
 * exactly that target's LUNs and hot-plug raises REPORTED LUNS DATA HAS CHANGED through the core.
 *
 * p-dev names a logical unit of the core by id (config key), e.g. "disk0".
 */
import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import type { ScsiCore, ScsiTarget, LogicalUnit } from '../vscsi/core.js';
import { LunMap } from '../vscsi/core.js';
import type { InitiatorPortId, Nexus } from '../vscsi/fabric.js';
import type { LunTarget } from './backend.js';
import type { XenScsiHost, XenScsiHostFactory } from './xenbus.js';
import type { VirtualAddress } from './xenbus-nodes.js';

/** SPC-4 7.6.4.1 PROTOCOL IDENTIFIER: SAS, as Linux scsiback's LIO ports use for pvSCSI. */
const PROTOCOL_ID_SAS = 0x6;

export interface CoreHostOptions {
  core: ScsiCore;
  /** Target that carries the Xen ports; created as `xen-pvscsi` when absent. */
  target?: ScsiTarget;
  /** Resolve a p-dev string to a logical unit (default: core.getLogicalUnit(pdev)). */
  lookup?: (pdev: string) => LogicalUnit | undefined;
  logger?: Logger;
}

/** A stable, locally administered (NAA 3) SAS address for a guest's (domid, vhost, channel, id). */
export function xenInitiatorPort(domid: number, vhost: number, channel: number, id: number): InitiatorPortId {
  const addr = (0x3n << 60n) | (BigInt(domid & 0xffff) << 40n) | (BigInt(vhost & 0xffff) << 24n) | (BigInt(channel & 0xff) << 16n) | BigInt(id & 0xffff);
  // SPC-4 7.6.4.7 SAS TransportID: 24 bytes, protocol id in byte 0, SAS address in bytes 4..11.
  const transportId = Buffer.alloc(24);
  transportId[0] = PROTOCOL_ID_SAS;
  transportId.writeBigUInt64BE(addr, 4);
  return {
    name: `xen-dom${domid}`,
    portSuffix: `domU:${domid}/vhost:${vhost}/${channel}:${id}`,
    protocolId: PROTOCOL_ID_SAS,
    transportId,
  };
}

export function coreHostFactory(o: CoreHostOptions): XenScsiHostFactory {
  const target = o.target ?? o.core.getTarget('xen-pvscsi') ?? o.core.createTarget({ name: 'xen-pvscsi' });
  const lookup = o.lookup ?? ((pdev: string) => o.core.getLogicalUnit(pdev));
  return (domid, vhost) => {
    const portName = `xen/dom${domid}/vhost${vhost}`;
    const port = target.getPort(portName) ?? target.addPort({ name: portName });
    const nexuses = new Map<string, { nexus: Nexus; map: LunMap }>();
    const host: XenScsiHost = {
      attach(addr: VirtualAddress, pdev: string): LunTarget | string {
        const lu = lookup(pdev);
        if (!lu) return `no logical unit named ${JSON.stringify(pdev.slice(0, 64))}`;
        if (addr.lun > 16383) return `v-dev lun ${addr.lun} is beyond the flat LUN range`;
        const key = `${addr.channel}:${addr.id}`;
        let n = nexuses.get(key);
        if (!n) {
          const map = new LunMap();
          const nexus = o.core.openNexus({ target, targetPort: port, initiator: xenInitiatorPort(domid, vhost, addr.channel, addr.id), lunMap: map });
          n = { nexus, map };
          nexuses.set(key, n);
        }
        n.map.set(addr.lun, lu);
        return { nexus: n.nexus, lun: addr.lun };
      },
      detach(addr: VirtualAddress): void {
        nexuses.get(`${addr.channel}:${addr.id}`)?.map.delete(addr.lun);
      },
      async close(): Promise<void> {
        await Promise.all([...nexuses.values()].map((n) => n.nexus.close()));
        nexuses.clear();
      },
    };
    return host;
  };
}
