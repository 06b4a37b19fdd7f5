/**
 * Messages between a client partition process and the simulated PowerVM, one JSON object per line
 * over a Unix socket. Only hcalls and interrupts travel here; the partition's memory is a
 * shared-memory file the hypervisor maps (and the server reaches only through H_COPY_RDMA).
 */

export { LineReader } from '../../sim/line-reader.js';

export type ClientToHv =
  /** `token`: the client adapter's credential, issued by the simulated PowerVM (src/sim/credentials.ts). */
  | { op: 'attach'; unit: number; windowBytes: number; token: string }
  | { op: 'hcall'; id: number; call: 'H_PUT_TCE'; ioba: number; pages: number; realOffset: number; perm: number }
  | { op: 'hcall'; id: number; call: 'H_REG_CRQ'; ioba: number; len: number }
  | { op: 'hcall'; id: number; call: 'H_FREE_CRQ' }
  | { op: 'hcall'; id: number; call: 'H_ENABLE_CRQ' }
  | { op: 'hcall'; id: number; call: 'H_SEND_CRQ'; entry: string };

/** Credential name of the client adapter `clientUnit` (its token file, see src/sim/credentials.ts). */
export const partitionCredentialName = (clientUnit: number): string => `unit-${(clientUnit >>> 0).toString(16)}`;

export type HvToClient =
  /** `memPath`: the partition memory the hypervisor created for it (the partition maps it). */
  | { op: 'attached'; rc: number; partition: number; memPath?: string; message?: string }
  | { op: 'ret'; id: number; rc: number }
  | { op: 'irq' };
