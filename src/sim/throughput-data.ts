/**
 * Shared by the IBM VIO and Xen guest emulators' throughput modes: the workload spec and the exact
 * content of a transfer unit, so a READ can be checked byte for byte against the stream's last WRITE.
 */
import { Buffer } from 'node:buffer';

export interface ThroughputSpec {
  /** Bytes per command: a multiple of the LUN's block size, within the fabric's transfer limit. */
  blockSize: number;
  pattern: 'random' | 'sequential';
  op: 'read' | 'write';
  /** Concurrent commands; 'max' (default) = the fabric's limit (login credits, ring slots). */
  queueDepth?: number | 'max';
}

/** Size of the area the streams share; each stream owns every W-th transfer unit of it. */
export const WORK_AREA = 8 << 20;
/** Every STAMP bytes of a unit start with a header: magic, LBA, generation, stream. */
const STAMP = 4096;
const MAGIC = 0x76746774; // "vtgt"

/** The exact content of one transfer unit at a generation (0 = never written: zeros). */
export function unitImage(out: Buffer, lbaOfUnit: number, blockSize: number, gen: number, stream: number): Buffer {
  if (gen === 0) return out.fill(0);
  for (let off = 0; off < out.length; off += STAMP) {
    out.fill((stream * 37 + 11) & 0xff, off + 16, Math.min(out.length, off + STAMP));
    out.writeUInt32LE(MAGIC, off);
    out.writeUInt32LE((lbaOfUnit + off / blockSize) >>> 0, off + 4);
    out.writeUInt32LE(gen >>> 0, off + 8);
    out.writeUInt32LE(stream, off + 12);
  }
  return out;
}

/**
 * One stream's transfer-unit image, rebuilt in place for each command. Its body bytes depend only on
 * the stream, so after the first build only the 16-byte headers are rewritten: the guest's own cost
 * of checking every byte stays one compare, not a fill and a compare. Callers must not modify the
 * returned buffer (it is written to guest memory or compared, never changed).
 */
export class StreamImage {
  readonly buf: Buffer;
  private bodyReady = false;

  constructor(
    size: number,
    private readonly stream: number,
  ) {
    this.buf = Buffer.alloc(size);
  }

  /** The unit's exact content at `gen` (same bytes as `unitImage`). */
  at(lbaOfUnit: number, blockSize: number, gen: number): Buffer {
    if (gen === 0 || !this.bodyReady) {
      unitImage(this.buf, lbaOfUnit, blockSize, gen, this.stream);
      this.bodyReady = gen !== 0;
      return this.buf;
    }
    for (let off = 0; off < this.buf.length; off += STAMP) {
      this.buf.writeUInt32LE((lbaOfUnit + off / blockSize) >>> 0, off + 4);
      this.buf.writeUInt32LE(gen >>> 0, off + 8);
    }
    return this.buf;
  }
}
