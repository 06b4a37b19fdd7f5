/**
 * Real PowerVM: refused, with the reason and what would be needed. The CRQ and H_COPY_RDMA hcalls
 * are privileged (made by the server partition's kernel), so a user-space service cannot drive a
 * `v-scsi-host` adapter without a kernel shim; docs/ibmvio.md describes the shim's interface.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Linux exposes VIO devices under /sys/bus/vio/devices/<unit>/ with a devicetree `compatible`. */
const VIO_DEVICES = '/sys/bus/vio/devices';

export interface VioHostAdapterInfo {
  unit: string;
  driver: string | undefined;
}

/** v-scsi-host adapters this partition has (empty off POWER or without VIO). Never throws. */
export function findVioHostAdapters(root = VIO_DEVICES): VioHostAdapterInfo[] {
  const out: VioHostAdapterInfo[] = [];
  try {
    if (!existsSync(root)) return out;
    for (const unit of readdirSync(root)) {
      const dir = join(root, unit);
      let compatible = '';
      try {
        compatible = readFileSync(join(dir, 'compatible'), 'latin1');
      } catch {
        try {
          compatible = readFileSync(join(dir, 'modalias'), 'latin1');
        } catch {
          continue;
        }
      }
      if (!/v-scsi-host/i.test(compatible)) continue;
      let driver: string | undefined;
      try {
        driver = readFileSync(join(dir, 'driver', 'module', 'name'), 'latin1').trim();
      } catch {
        driver = undefined;
      }
      out.push({ unit, driver });
    }
  } catch {
    // unreadable sysfs: report nothing
  }
  return out;
}

export class RealVioUnsupportedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RealVioUnsupportedError';
  }
}

/** Always throws: explains why a real adapter cannot be served and what to do instead. */
export function openPowerVmHypervisor(adapterName: string): never {
  const found = findVioHostAdapters();
  const where = found.length
    ? `this partition has v-scsi-host adapter(s) ${found.map((f) => `${f.unit}${f.driver ? ` (bound to ${f.driver})` : ''}`).join(', ')}, but`
    : 'no v-scsi-host adapter was found in /sys/bus/vio/devices, and in any case';
  throw new RealVioUnsupportedError(
    `ibmvio adapter ${adapterName}: cannot serve a real PowerVM virtual SCSI adapter: ${where} the hcalls it needs ` +
      '(H_REG_CRQ, H_FREE_CRQ, H_SEND_CRQ, H_COPY_RDMA, H_VIOCTL) are privileged and only a kernel driver can make them. ' +
      'Use the in-kernel ibmvscsis target for real LPARs, or a kernel shim exposing these calls (see docs/ibmvio.md); ' +
      'set `ibmvio.hypervisor: sim` to run against the simulated PowerVM.',
  );
}
