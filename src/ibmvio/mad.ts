/**
 * MAD handling of one server adapter (ibmvio.md §4): adapter info, capabilities, fast fail,
 * empty IU, error log, host config. Answers are the 16-byte header with a status, written back over
 * the request IU (as ibmvscsis does). Guest-supplied lengths are clamped to the structure sizes.
 */
import { Buffer } from 'node:buffer';
import type { Logger } from 'pino';
import {
  ADAPTER_INFO_LEN,
  CapFlag,
  CAPABILITIES_LIST_OFFSET,
  CAPABILITIES_MAX_LEN,
  MAD_HEADER_LEN,
  MadStatus,
  MadType,
  ServerSupport,
} from './constants.js';
import {
  type AdapterInfo,
  decodeAdapterInfo,
  decodeCapabilities,
  decodeMad,
  encodeAdapterInfo,
  encodeMad,
  writeMadAscii,
} from './mad-codec.js';

export interface MadPort {
  /** Copy from the client window; undefined when the hypervisor refused. */
  copyFrom(ioba: bigint, length: number): Buffer | undefined;
  copyTo(ioba: bigint, data: Buffer): boolean;
  loggedIn(): boolean;
}

export interface MadIdentity {
  /** What we answer in ADAPTER_INFO. */
  info: AdapterInfo;
  /** Server device name written into CAPABILITIES (ibmvscsis: its device name). */
  deviceName: string;
  locationCode: string;
}

export class MadHandler {
  /** What the client told us in ADAPTER_INFO (untrusted, sanitized to printable ASCII). */
  clientInfo: AdapterInfo | undefined;
  fastFail = false;
  clientMigrated = false;
  readonly counts = new Map<number, number>();

  constructor(
    private readonly identity: MadIdentity,
    private readonly logger?: Logger,
  ) {}

  /** Handle one MAD IU; returns the 16-byte response header. */
  handle(iu: Buffer, port: MadPort): Buffer {
    const req = decodeMad(iu);
    if (!req) return encodeMad({ type: 0, status: MadStatus.FAILED, length: 0, tag: Buffer.alloc(8) });
    this.counts.set(req.type, (this.counts.get(req.type) ?? 0) + 1);
    let status: number;
    switch (req.type) {
      case MadType.ADAPTER_INFO:
        status = this.adapterInfo(req.length, req.buffer, port);
        break;
      case MadType.CAPABILITIES:
        status = this.capabilities(req.length, req.buffer, port);
        break;
      case MadType.ENABLE_FAST_FAIL:
        if (port.loggedIn()) {
          status = MadStatus.FAILED; // ibmvscsis: "fast fail mad sent after login"
        } else {
          this.fastFail = true;
          status = MadStatus.SUCCESS;
        }
        break;
      case MadType.EMPTY_IU:
        status = MadStatus.SUCCESS;
        break;
      default:
        // ERROR_LOG, HOST_CONFIG and anything unknown.
        status = MadStatus.NOT_SUPPORTED;
    }
    return encodeMad({ type: req.type, status, length: req.length, tag: req.tag });
  }

  private adapterInfo(length: number, buffer: bigint | undefined, port: MadPort): number {
    if (buffer === undefined || length === 0 || length > ADAPTER_INFO_LEN) return MadStatus.FAILED;
    const theirs = port.copyFrom(buffer, length);
    if (!theirs) return MadStatus.FAILED;
    this.clientInfo = decodeAdapterInfo(theirs);
    this.logger?.info(
      {
        partitionName: this.clientInfo.partitionName,
        partitionNumber: this.clientInfo.partitionNumber,
        osType: this.clientInfo.osType,
      },
      'VIO adapter: client adapter info',
    );
    const ours = encodeAdapterInfo(this.identity.info).subarray(0, length);
    return port.copyTo(buffer, ours) ? MadStatus.SUCCESS : MadStatus.FAILED;
  }

  private capabilities(length: number, buffer: bigint | undefined, port: MadPort): number {
    if (buffer === undefined || length < CAPABILITIES_LIST_OFFSET || length > CAPABILITIES_MAX_LEN) return MadStatus.FAILED;
    const caps = port.copyFrom(buffer, length);
    if (!caps) return MadStatus.FAILED;
    const parsed = decodeCapabilities(caps);
    this.clientMigrated = (parsed.flags & CapFlag.CLIENT_MIGRATED) !== 0;
    // We support neither partition-migration hand-off nor client SCSI-2 reserve emulation: say so
    // in every record, and clear CAP_LIST_SUPPORTED (ibmvscsis answers the same way).
    caps.writeUInt32BE((parsed.flags & ~CapFlag.CAP_LIST_SUPPORTED) >>> 0, 0);
    caps.fill(0, 4, 68);
    writeMadAscii(caps, 4, 32, this.identity.deviceName);
    writeMadAscii(caps, 36, 32, this.identity.locationCode);
    for (const r of parsed.records) caps.writeUInt16BE(ServerSupport.NOT_SUPPORTED, r.offset + 6);
    return port.copyTo(buffer, caps) ? MadStatus.SUCCESS : MadStatus.FAILED;
  }
}

export { MAD_HEADER_LEN };
