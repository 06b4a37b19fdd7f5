/**
 * What the VIO server needs from the hypervisor (ibmvio.md §2), and nothing more. On PowerVM these
 * are privileged hcalls made on behalf of the server partition (a kernel shim would provide them,
 * see docs/ibmvio.md); in tests `sim/hypervisor.ts` implements them over shared-memory files.
 *
 * Every method is synchronous, like an hcall, and returns an H_* code instead of throwing: a
 * hostile partner must never be able to raise an exception in the server.
 */
import type { HReturn } from './constants.js';

export interface VioHypervisor {
  /** Human-readable name for logs ("simulated PowerVM"). */
  readonly describe: string;
  /** Largest length one H_COPY_RDMA accepts (ibm,max-virtual-dma-size; 128 KiB by default). */
  readonly maxCopyLength: number;
  /**
   * H_REG_CRQ for the server adapter `unit`: the hypervisor keeps a one-page receive queue for it
   * and calls `interrupt` (asynchronously, never from inside another hcall) when entries arrive.
   * H_SUCCESS, H_CLOSED (registered, partner not there yet), H_RESOURCE (already registered),
   * H_NOT_FOUND (no such adapter).
   */
  registerCrq(unit: number, interrupt: () => void): HReturn;
  /** H_FREE_CRQ: deregister; the partner gets a 0xFF/0x02 transport event. */
  freeCrq(unit: number): HReturn;
  /** Take the next entry from this adapter's receive queue (frees the slot), or undefined when empty. */
  receiveCrq(unit: number): Buffer | undefined;
  /** H_SEND_CRQ: 16 bytes to the partner's queue. H_SUCCESS, H_CLOSED, H_DROPPED (queue full). */
  sendCrq(unit: number, entry: Buffer): HReturn;
  /** H_COPY_RDMA, partner window (REMOTE) -> server memory: `dst.length` bytes from `ioba`. */
  copyFromPartner(unit: number, ioba: bigint, dst: Buffer): HReturn;
  /** H_COPY_RDMA, server memory -> partner window at `ioba`. */
  copyToPartner(unit: number, ioba: bigint, src: Buffer): HReturn;
  /** H_VIOCTL H_GET_PARTNER_INFO: the client partition's number. */
  getPartnerInfo(unit: number): { rc: HReturn; partitionNumber: number };
}
