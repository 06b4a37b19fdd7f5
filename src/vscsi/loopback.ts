/**
 * The loopback fabric: the smallest complete fabric, used by tests and as the reference for how a
 * fabric drives the core. It submits a CDB with optional data-out through a nexus and returns the
 * completion as a promise.
 */
import { Buffer } from 'node:buffer';
import {
  TaskAttribute,
  type DataDirection,
  type InitiatorPortId,
  type Nexus,
  type Residual,
  type ScsiCompletion,
  type TmfRequest,
  type TmfResult,
} from './fabric.js';

export interface LoopbackCommand {
  lun?: number;
  cdb: Buffer | number[];
  /** Data-out bytes for write-direction commands. */
  dataOut?: Buffer;
  /** Expected data-in length for read-direction commands (default 0). */
  expectedLength?: number;
  /** Override the direction (default: write if dataOut is given, read if expectedLength > 0, else none). */
  direction?: DataDirection;
  attribute?: TaskAttribute;
  tag?: bigint;
  /** Called if the core drops the command without completing it (task management abort). */
  onAborted?: () => void;
  /** Offer the core a synchronous data-out copy, as the hypervisor fabrics do (FabricCommandPort.fetchDataOutInto). */
  fetchDataOutInto?: (offset: number, dst: Buffer) => boolean;
}

export interface LoopbackResult {
  status: number;
  sense: Buffer | undefined;
  data: Buffer;
  residual: Residual;
}

/** Build an InitiatorPortId for tests: iSCSI protocol id and a matching TransportID. */
export function loopbackInitiator(name = 'iqn.2026-01.test:initiator', isid = '0x000000000001'): InitiatorPortId {
  const text = `${name},i,${isid}`;
  const len = Math.ceil((text.length + 1) / 4) * 4;
  const tid = Buffer.alloc(4 + len);
  tid[0] = 0x40 | 0x05; // FORMAT CODE 01b (initiator port), PROTOCOL IDENTIFIER iSCSI
  tid.writeUInt16BE(len, 2);
  tid.write(text, 4, 'utf8');
  return { name, portSuffix: `,i,${isid}`, protocolId: 0x5, transportId: tid };
}

export class LoopbackFabric {
  private nextTag = 1n;

  constructor(readonly nexus: Nexus) {}

  submit(cmd: LoopbackCommand): Promise<LoopbackResult> {
    const cdb = Buffer.from(cmd.cdb);
    const dataOut = cmd.dataOut;
    const direction: DataDirection =
      cmd.direction ?? (dataOut ? 'write' : (cmd.expectedLength ?? 0) > 0 ? 'read' : 'none');
    const expectedLength = direction === 'write' ? (cmd.expectedLength ?? dataOut?.length ?? 0) : (cmd.expectedLength ?? 0);
    const tag = cmd.tag ?? this.nextTag++;
    return new Promise<LoopbackResult>((resolve, reject) => {
      let done = false;
      this.nexus.submit({
        lun: cmd.lun ?? 0,
        cdb,
        attribute: cmd.attribute ?? TaskAttribute.SIMPLE,
        tag,
        direction,
        expectedLength,
        port: {
          fetchDataOut: (offset, length) => {
            const src = dataOut ?? Buffer.alloc(0);
            if (offset < 0 || length < 0 || offset + length > expectedLength || offset + length > src.length) {
              return Promise.reject(new Error(`core asked for data-out [${offset}, ${offset + length}) beyond ${expectedLength}`));
            }
            return Promise.resolve(Buffer.from(src.subarray(offset, offset + length)));
          },
          ...(cmd.fetchDataOutInto ? { fetchDataOutInto: cmd.fetchDataOutInto } : {}),
          aborted: () => cmd.onAborted?.(),
          complete: (r: ScsiCompletion) => {
            if (done) {
              reject(new Error(`command tag ${tag} completed twice`));
              return;
            }
            done = true;
            resolve({ status: r.status, sense: r.sense, data: r.dataIn ?? Buffer.alloc(0), residual: r.residual });
          },
        },
      });
    });
  }

  taskManagement(req: TmfRequest): Promise<TmfResult> {
    return this.nexus.taskManagement(req);
  }
}
