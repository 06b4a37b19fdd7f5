/**
 * The one way into and out of the SCSI core (ARCHITECTURE.md rule 1).
 *
 * A fabric (iSCSI, SRP/IBM VIO, Xen pvSCSI, the test loopback) obtains a `Nexus` from the core when an
 * initiator port logs in to a target port, then submits every SCSI command and task management
 * function through it. The core calls the fabric back through `FabricCommandPort` to fetch data-out
 * and to complete the command with status, sense, data-in and residual. Fabrics never look up LUNs,
 * parse CDBs or build sense data.
 */

import type { ReasonName, ScsiFailure } from './sense.js';

/** SAM-5 task attributes. Fabric encodings differ (iSCSI ATTR, SRP task_attr): each fabric maps its own. */
export const TaskAttribute = {
  SIMPLE: 0,
  ORDERED: 1,
  HEAD_OF_QUEUE: 2,
  ACA: 4,
} as const;
export type TaskAttribute = (typeof TaskAttribute)[keyof typeof TaskAttribute];

/** SAM-5 status codes. */
export const ScsiStatus = {
  GOOD: 0x00,
  CHECK_CONDITION: 0x02,
  CONDITION_MET: 0x04,
  BUSY: 0x08,
  RESERVATION_CONFLICT: 0x18,
  TASK_SET_FULL: 0x28,
  ACA_ACTIVE: 0x30,
  TASK_ABORTED: 0x40,
} as const;
export type ScsiStatus = (typeof ScsiStatus)[keyof typeof ScsiStatus];

export type DataDirection = 'none' | 'read' | 'write' | 'bidi';

/** Residual as SAM/iSCSI define it: underflow = fewer bytes moved than expected, overflow = more were needed. */
export type Residual =
  | { kind: 'none' }
  | { kind: 'underflow'; count: number }
  | { kind: 'overflow'; count: number };

/** Callbacks a fabric gives the core for one command. */
export interface FabricCommandPort {
  /**
   * Fetch data-out bytes [offset, offset+length) of this command from the initiator (immediate data,
   * unsolicited data, R2T/Data-Out, RDMA read, grant copy...). The core never asks for more than the
   * expected data-out length. Rejects if the transfer fails (connection lost, bad descriptor); the core
   * then completes the command with the appropriate error or drops it if it was aborted.
   */
  fetchDataOut(offset: number, length: number): Promise<Buffer>;
  /**
   * Optional: the same bytes as `fetchDataOut`, returned at once when the fabric already holds them
   * all (iSCSI immediate data) and nothing else is being fetched; otherwise undefined, and the core
   * calls `fetchDataOut`. Most WRITEs are small: they skip a chain of promises.
   */
  fetchDataOutNow?(offset: number, length: number): Buffer | undefined;
  /**
   * Optional: copy data-out bytes [offset, offset+dst.length) into `dst` before returning, for fabrics
   * whose transfer is one synchronous copy (H_COPY_RDMA, a grant copy): the core can then land a
   * WRITE's data straight in a memory store's bytes. Returns true when all of it was copied, false
   * when the bytes cannot be had at once (nothing was copied; the core calls `fetchDataOut`). Throws
   * when the transfer failed — `dst` may then hold part of the data, and nothing writes into it later.
   */
  fetchDataOutInto?(offset: number, dst: Buffer): boolean;
  /**
   * The command is finished. Called exactly once, unless the command was aborted by a task management
   * function, in which case it is never called (the TMF response covers it). `dataIn` holds exactly the
   * bytes to send to the initiator (already limited to the expected length).
   */
  complete(result: ScsiCompletion): void;
  /**
   * Optional: the core dropped this command without completing it (aborted by a task management
   * function, PREEMPT AND ABORT or nexus loss — SAM-5 sends no status for it). Called at most once,
   * never together with `complete`, and only when the core will no longer call `fetchDataOut`, so the
   * fabric can free its per-task state (tags, R2T bookkeeping) at once. A `fetchDataOut` promise still
   * pending at that point is no longer awaited: the fabric may reject it or leave it.
   */
  aborted?(): void;
}

export interface ScsiCompletion {
  status: ScsiStatus;
  /** Sense data (fixed or descriptor format as the LU's D_SENSE says), only with CHECK CONDITION. */
  sense?: Buffer;
  /** Data-in bytes to transfer (read direction). */
  dataIn?: Buffer;
  /** Residual of the data-in transfer for reads, of the data-out transfer for writes. */
  residual: Residual;
  /** For bidirectional commands: residual of the read part. */
  bidiReadResidual?: Residual;
  /**
   * Present when the core lent `dataIn` from its buffer pool (READ): call it once, after the transport
   * has written the bytes (e.g. the socket write callback) or when they will not be sent, and do not
   * touch `dataIn` afterwards. A fabric that never calls it is still correct (the buffer is then
   * garbage-collected), only slower.
   */
  releaseDataIn?: () => void;
}

/** One SCSI command as a fabric submits it. */
export interface ScsiCommandRequest {
  /**
   * LUN number as addressed by the initiator on this nexus (after the fabric decoded its LUN field
   * with `decodeSamLun` or its own addressing scheme). `INVALID_LUN` for an undecodable LUN field.
   */
  lun: number;
  cdb: Buffer;
  attribute: TaskAttribute;
  /** The fabric's task tag; unique among this nexus's active tasks. Used by ABORT TASK / QUERY TASK. */
  tag: bigint;
  direction: DataDirection;
  /** Expected data transfer length (iSCSI EDTL, SRP descriptor total, vscsiif request_bufflen). */
  expectedLength: number;
  /** Bidirectional commands: expected data-in length (expectedLength is then the data-out length). */
  expectedReadLength?: number;
  /** Command priority (SAM-5), 0 when the fabric has none. */
  priority?: number;
  port: FabricCommandPort;
}

export const INVALID_LUN = -1;

/** SAM-5 task management functions. */
export const TmfFunction = {
  ABORT_TASK: 'ABORT_TASK',
  ABORT_TASK_SET: 'ABORT_TASK_SET',
  CLEAR_TASK_SET: 'CLEAR_TASK_SET',
  CLEAR_ACA: 'CLEAR_ACA',
  LOGICAL_UNIT_RESET: 'LOGICAL_UNIT_RESET',
  I_T_NEXUS_RESET: 'I_T_NEXUS_RESET',
  TARGET_RESET: 'TARGET_RESET',
  QUERY_TASK: 'QUERY_TASK',
  QUERY_TASK_SET: 'QUERY_TASK_SET',
  QUERY_ASYNCHRONOUS_EVENT: 'QUERY_ASYNCHRONOUS_EVENT',
} as const;
export type TmfFunction = (typeof TmfFunction)[keyof typeof TmfFunction];

export interface TmfRequest {
  fn: TmfFunction;
  /** LUN the function addresses (ignored for I_T_NEXUS_RESET and TARGET_RESET). */
  lun: number;
  /** Tag of the referenced task for ABORT_TASK and QUERY_TASK. */
  referencedTag?: bigint;
}

/** SAM-5 service responses of a task management function. */
export const TmfResponse = {
  FUNCTION_COMPLETE: 'FUNCTION_COMPLETE',
  FUNCTION_SUCCEEDED: 'FUNCTION_SUCCEEDED',
  FUNCTION_REJECTED: 'FUNCTION_REJECTED',
  INCORRECT_LOGICAL_UNIT_NUMBER: 'INCORRECT_LOGICAL_UNIT_NUMBER',
  SERVICE_DELIVERY_OR_TARGET_FAILURE: 'SERVICE_DELIVERY_OR_TARGET_FAILURE',
} as const;
export type TmfResponse = (typeof TmfResponse)[keyof typeof TmfResponse];

export interface TmfResult {
  response: TmfResponse;
  /** QUERY ASYNCHRONOUS EVENT: the pending unit attention / deferred error, if any (SAM-5 7.10). */
  additionalResponseInfo?: { senseKey: number; asc: number; ascq: number; uaPending: boolean };
}

/** How an initiator port identifies itself; used for reservations (TransportIDs) and logs. */
export interface InitiatorPortId {
  /** Initiator device name, e.g. an iSCSI name `iqn.1994-05.com.redhat:host`. */
  name: string;
  /**
   * Initiator port identifier within the device name (iSCSI: `,i,0x<ISID hex>`; SRP: the 16-byte port id
   * in hex; Xen: `domU:<domid>/vhost:<n>`). Together with `name` it must be unique per port.
   */
  portSuffix: string;
  /** SPC-4 7.6.4 PROTOCOL IDENTIFIER of the fabric (iSCSI 0x5, SRP 0x4, SAS 0x6 ...). */
  protocolId: number;
  /** TransportID as the initiator would send it in PERSISTENT RESERVE OUT (SPC-4 7.6.4). */
  transportId: Buffer;
}

/**
 * An I_T nexus, created by the core for a fabric at login (`ScsiCore.openNexus`). Commands and TMFs of
 * that initiator port at that target port go through it.
 */
export interface Nexus {
  readonly id: number;
  readonly initiator: InitiatorPortId;
  /**
   * Submit a command; completion comes through `request.port.complete`, never before `submit` returns.
   * Never throws on bad input.
   */
  submit(request: ScsiCommandRequest): void;
  taskManagement(request: TmfRequest): Promise<TmfResult>;
  /** LUN numbers this nexus sees (for fabrics that must announce LUNs themselves, e.g. Xen hot-plug). */
  lunNumbers(): number[];
  /** Count of commands submitted and not yet completed or aborted (leak checks, draining). */
  activeCommands(): number;
  /**
   * The fabric cannot carry a command it received (bad data descriptors, a tag the fabric finds in
   * use, a failed data-in transfer it must report instead): the core completes it through
   * `request.port.complete` (never inside this call) with CHECK CONDITION, sense for `reason` in the
   * format the LU at `request.lun` uses (D_SENSE), and the residual of nothing transferred. For a
   * request never passed to `submit`, or one whose completion the fabric could not deliver.
   */
  failCommand(request: ScsiCommandRequest, reason: ReasonName, extra?: Omit<ScsiFailure, 'reason'>): void;
  /** The completion `failCommand` would deliver, for fabrics that answer from their own completion path. */
  failureCompletion(request: ScsiCommandRequest, reason: ReasonName, extra?: Omit<ScsiFailure, 'reason'>): ScsiCompletion;
  /** The initiator port logged out or the connection is gone: abort its tasks silently, drop UAs. */
  close(): Promise<void>;
}
