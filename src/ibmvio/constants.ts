/**
 * IBM POWER VIO constants: hypervisor call return codes, CRQ entry codes, MAD types and statuses.
 * Numbers as in Linux arch/powerpc/include/asm/hvcall.h, include/scsi/viosrp.h and
 * drivers/scsi/ibmvscsi_tgt/libsrp.h (see /work/shared/protocols/ibmvio.md §2-4).
 */

/** hvcall.h return codes. */
export const H = {
  SUCCESS: 0,
  BUSY: 1,
  CLOSED: 2,
  NOT_AVAILABLE: 3,
  IN_PROGRESS: 14,
  HARDWARE: -1,
  FUNCTION: -2,
  PRIVILEGE: -3,
  PARAMETER: -4,
  NOT_FOUND: -7,
  PERMISSION: -11,
  DROPPED: -12,
  SOURCE_PARM: -13,
  DEST_PARM: -14,
  REMOTE_PARM: -15,
  RESOURCE: -16,
} as const;
export type HReturn = number;

export function hName(rc: HReturn): string {
  for (const [k, v] of Object.entries(H)) if (v === rc) return `H_${k}`;
  return `H_${rc}`;
}

/** hvcall.h hypervisor call numbers (for logs and the kernel-shim description). */
export const HCall = {
  H_REG_CRQ: 0xfc,
  H_FREE_CRQ: 0x100,
  H_VIO_SIGNAL: 0x104,
  H_SEND_CRQ: 0x108,
  H_COPY_RDMA: 0x110,
  H_VIOCTL: 0x2a8,
  H_ENABLE_CRQ: 0x2b0,
} as const;

/** viosrp.h struct viosrp_crq: byte 0 `valid`. */
export const CrqValid = {
  FREE: 0x00,
  CMD_RSP: 0x80,
  INIT: 0xc0,
  TRANSPORT_EVENT: 0xff,
} as const;

/** viosrp.h viosrp_crq_formats (valid = 0x80). The kernel's values, not QEMU's copy. */
export const CrqFormat = {
  SRP: 0x01,
  MAD: 0x02,
  OS400: 0x03,
  AIX: 0x04,
  LINUX: 0x05,
  MESSAGE_IN_CRQ: 0x06,
} as const;

/** viosrp.h viosrp_crq_init_formats (valid = 0xC0). */
export const CrqInitFormat = { INIT: 0x01, INIT_COMPLETE: 0x02 } as const;

/** libsrp.h srp_trans_event (valid = 0xFF). */
export const TransportEvent = {
  PARTNER_FAILED: 0x01,
  PARTNER_DEREGISTER: 0x02,
  MIGRATED: 0x06,
  PREPARE_FOR_SUSPEND: 0x09,
  RESUME_FROM_SUSPEND: 0x0a,
} as const;

/** viosrp.h viosrp_crq_status / libsrp.h srp_status. */
export const CrqStatus = {
  OK: 0x00,
  NONRECOVERABLE_ERR: 0x01,
  VIOLATES_MAX_XFER: 0x02,
  PARTNER_PANIC: 0x03,
  DEVICE_BUSY: 0x08,
  ADAPTER_FAIL: 0x10,
  OK2: 0x99,
  CRQ_ENTRY_OVERWRITTEN: 0x20,
  PING: 0xf5,
  PING_RESPONSE: 0xf6,
} as const;

/** viosrp.h: every request IU slot of the client is a 256-byte union viosrp_iu. */
export const SRP_MAX_IU_LEN = 256;
/** ibmvscsis_tgt.h MAX_H_COPY_RDMA: default maximum bytes per H_COPY_RDMA. */
export const MAX_H_COPY_RDMA = 128 * 1024;
/** One 4 KiB page = 256 CRQ entries (both Linux drivers). */
export const CRQ_QUEUE_BYTES = 4096;
export const CRQ_ENTRY_LEN = 16;
/** spapr_iommu: TCE page size. */
export const TCE_PAGE_SHIFT = 12;
export const TCE_PAGE_SIZE = 1 << TCE_PAGE_SHIFT;
/** TCE permission bits: device may read / write the page. */
export const TcePerm = { READ: 1, WRITE: 2, RW: 3 } as const;

/** viosrp.h enum mad_types. */
export const MadType = {
  EMPTY_IU: 0x01,
  ERROR_LOG: 0x02,
  ADAPTER_INFO: 0x03,
  HOST_CONFIG: 0x04,
  CAPABILITIES: 0x05,
  ENABLE_FAST_FAIL: 0x08,
} as const;

/** viosrp.h viosrp_mad_status. */
export const MadStatus = { SUCCESS: 0x00, NOT_SUPPORTED: 0xf1, FAILED: 0xf7 } as const;

/** libsrp.h: os_type in the adapter info. */
export const OsType = { OS400: 1, LINUX: 2, AIX: 3, OFW: 4 } as const;

/** viosrp.h capability flags and records. */
export const CapFlag = {
  CLIENT_MIGRATED: 0x01,
  CLIENT_RECONNECT: 0x02,
  CAP_LIST_SUPPORTED: 0x04,
  CAP_LIST_DATA: 0x08,
} as const;
export const CapType = { MIGRATION: 1, RESERVATION: 2 } as const;
export const ServerSupport = { NOT_SUPPORTED: 0, SUPPORTED: 1, SUPPORTED_WITH_DATA: 2 } as const;

export const ADAPTER_INFO_LEN = 148;
export const CAPABILITIES_LEN = 92;
export const CAPABILITIES_LIST_OFFSET = 68;
/** ibmvscsis accepts capability MADs up to a page. */
export const CAPABILITIES_MAX_LEN = 4096;
export const MAD_HEADER_LEN = 16;
