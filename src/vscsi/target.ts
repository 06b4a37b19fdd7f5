/**
 * SCSI target device model (SAM-5 4.6): a target has target port groups (SPC-4 5.16 ALUA), each with
 * target ports; a default LUN map; and the nexuses opened on its ports.
 */
import { LunMap } from './lun-map.js';
import type { Nexus } from './fabric.js';

/** SPC-4 6.37 table 149 asymmetric access states. */
export const AluaState = {
  ACTIVE_OPTIMIZED: 0x0,
  ACTIVE_NON_OPTIMIZED: 0x1,
  STANDBY: 0x2,
  UNAVAILABLE: 0x3,
  OFFLINE: 0xe,
  TRANSITIONING: 0xf,
} as const;
export type AluaState = (typeof AluaState)[keyof typeof AluaState];

export interface TargetPort {
  /** Fabric's port name (iSCSI: `<target iqn>,t,0x<TPGT>`). */
  readonly name: string;
  /** SPC-4 RELATIVE TARGET PORT IDENTIFIER, 1..65535, unique within the target. */
  readonly relativeId: number;
  readonly group: TargetPortGroup;
  readonly target: ScsiTarget;
}

export interface TargetPortGroup {
  readonly id: number;
  state: AluaState;
  preferred: boolean;
  readonly ports: TargetPort[];
}

export class ScsiTarget {
  readonly portGroups: TargetPortGroup[] = [];
  readonly luns = new LunMap();
  private readonly openNexuses = new Set<Nexus>();

  constructor(readonly name: string) {}

  addPort(opts: { name: string; relativeId?: number; groupId?: number }): TargetPort {
    const taken = new Set(this.ports().map((p) => p.relativeId));
    if (this.ports().some((p) => p.name === opts.name)) {
      throw new Error(`target ${this.name}: port ${opts.name} already exists`);
    }
    let relativeId = opts.relativeId;
    if (relativeId === undefined) {
      relativeId = 1;
      while (taken.has(relativeId)) relativeId++;
    }
    if (!Number.isInteger(relativeId) || relativeId < 1 || relativeId > 0xffff || taken.has(relativeId)) {
      throw new Error(`target ${this.name}: relative target port id ${relativeId} is invalid or in use (1..65535)`);
    }
    const groupId = opts.groupId ?? 1;
    if (!Number.isInteger(groupId) || groupId < 0 || groupId > 0xffff) {
      throw new Error(`target ${this.name}: target port group id ${groupId} is invalid (0..65535)`);
    }
    let group = this.portGroups.find((g) => g.id === groupId);
    if (!group) {
      group = { id: groupId, state: AluaState.ACTIVE_OPTIMIZED, preferred: false, ports: [] };
      this.portGroups.push(group);
    }
    const port: TargetPort = { name: opts.name, relativeId, group, target: this };
    group.ports.push(port);
    return port;
  }

  ports(): TargetPort[] {
    return this.portGroups.flatMap((g) => g.ports);
  }

  getPort(name: string): TargetPort | undefined {
    return this.ports().find((p) => p.name === name);
  }

  nexuses(): Nexus[] {
    return [...this.openNexuses];
  }

  /** @internal the core tracks nexuses here. */
  attachNexus(n: Nexus): void {
    this.openNexuses.add(n);
  }

  /** @internal */
  detachNexus(n: Nexus): void {
    this.openNexuses.delete(n);
  }
}
