/**
 * Shared by the IBM VIO and Xen guest emulators' throughput modes: the workload spec and the exact
 * content of a transfer unit, so a READ can be checked byte for byte against the stream's last WRITE.
 */

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
