/**
 * Preparing a benchmark backing file so that both targets start from the same state and stay in it.
 *
 * Allocating the file (fallocate) is not enough on ext4 and XFS: allocated-but-never-written extents
 * are "unwritten", and a read of one returns zeros without touching the device — an O_DIRECT 4 KiB
 * read costs ~2 µs there against ~50 µs for written blocks on this machine's virtual disk. A target's
 * own write workloads then turn its file into written blocks at its own write speed, so the faster
 * writer reads more real blocks in the following runs (BENCHMARKS.md section 20). Writing every block
 * once up front takes that asymmetry out: each later read costs what a read of data costs.
 */
import { open, type FileHandle } from 'node:fs/promises';

const CHUNK = 4 << 20;

/** Create or overwrite `path` with `sizeBytes` of zeros, every block written, flushed to the device. */
export async function writeEveryBlock(path: string, sizeBytes: number): Promise<void> {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0) throw new RangeError(`writeEveryBlock: bad size ${sizeBytes}`);
  const zeros = Buffer.alloc(Math.min(CHUNK, Math.max(sizeBytes, 1)));
  let fh: FileHandle | undefined;
  try {
    fh = await open(path, 'w');
    for (let at = 0; at < sizeBytes; ) {
      const { bytesWritten } = await fh.write(zeros, 0, Math.min(zeros.length, sizeBytes - at), at);
      at += bytesWritten;
    }
    // Flushed, so the first runs do not pay for write-back of this preparation.
    await fh.sync();
  } catch (e) {
    throw new Error(`could not prepare benchmark backing ${path} (${sizeBytes} bytes of zeros): ${(e as Error).message}`);
  } finally {
    await fh?.close();
  }
}
