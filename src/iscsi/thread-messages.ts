/**
 * What the main thread (SCSI core, logins, sessions as the administrator sees them) and a connection
 * thread (logged-in iSCSI connections: PDUs, command window, R2T and Data-In) say to each other.
 * Binary fields (CDBs, data, sense) travel in the batch's byte area (thread-batch.ts) as `Bytes`
 * offsets, never as Buffers: a Buffer would be cloned with its whole backing store.
 */
import type { DiscoverableTarget, PortalAddress } from './discovery.js';
import type { OperationalParams } from './params.js';
import type { DataDirection, Residual, TaskAttribute, TmfRequest, TmfResult } from '../vscsi/fabric.js';

/** [offset, length] in the byte area of the batch that carries the operation. */
export type Bytes = readonly [number, number];

/** Worker → main. `link` names one moved connection (and its session) for the life of the thread. */
export type ToCoreOp =
  | {
      t: 'submit';
      link: number;
      cmd: number;
      lun: number;
      cdb: Bytes;
      attribute: TaskAttribute;
      tag: number;
      direction: DataDirection;
      expectedLength: number;
      expectedReadLength?: number;
      /** All of the data-out, when the connection already held it at submission (immediate data). */
      dataOut?: Bytes;
    }
  | { t: 'data'; cmd: number; fetch: number; bytes: Bytes }
  | { t: 'fetchFailed'; cmd: number; fetch: number; message: string }
  | { t: 'tmf'; link: number; id: number; request: Omit<TmfRequest, 'referencedTag'> & { referencedTag?: number } }
  | { t: 'closed'; link: number; orderly: boolean; reason: string }
  | { t: 'recalled'; link: number; expCmdSn: number; maxCmdSn: number }
  | { t: 'stats'; link: number; stats: ConnectionStats };

/** Main → worker. */
export type ToConnectionOp =
  | {
      t: 'done';
      cmd: number;
      status: number;
      sense?: Bytes;
      dataIn?: Bytes;
      residual: Residual;
      bidiReadResidual?: Residual;
    }
  | { t: 'aborted'; cmd: number }
  | { t: 'fetch'; cmd: number; fetch: number; offset: number; length: number }
  | { t: 'tmfDone'; link: number; id: number; result?: TmfResult; error?: string }
  | { t: 'drop'; link: number; reason: string; orderly: boolean }
  | { t: 'closeAfterFlush'; link: number; reason: string }
  | { t: 'requestLogout'; link: number; seconds: number }
  | { t: 'recall'; link: number }
  | { t: 'discovery'; link: number; discovery: MovedConnection['discovery'] }
  | { t: 'adopt'; link: number; connection: MovedConnection; firstBytes: Bytes };

export interface Batch<Op> {
  ops: Op[];
  /** The area (thread-batch.ts) the operations' `Bytes` point into; null when none has bytes. */
  bytes: SharedArrayBuffer | null;
}

/** Everything a connection thread needs to continue a connection whose login finished elsewhere. */
export interface MovedConnection {
  fd: number;
  /** The connection's number in log lines (`conn`), kept on the thread so both halves log alike. */
  connId: number;
  tpgt: number;
  cid: number;
  /** StatSN of the first response after the final Login Response. */
  statSn: number;
  params: OperationalParams;
  session: {
    tsih: number;
    isidHex: string;
    initiatorName: string;
    targetName: string;
    expCmdSn: number;
    window: number;
  };
  /** SendTargets in this normal session: what the initiator may see (renewed when targets or portals change). */
  discovery: { targets: DiscoverableTarget[]; portals: PortalAddress[] };
}

/** Counters a connection thread reports for the management view. */
export interface ConnectionStats {
  expCmdSn: number;
  rejects: number;
  pdusReceived: number;
  pdusSent: number;
  sendQueueBytes: number;
  activeCommands: number;
}
