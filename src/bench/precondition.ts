/**
 * Preparing a benchmark backing file so that both targets start from the same state.
 *
 * Allocating the file (fallocate) is not enough on ext4 and XFS: allocated-but-never-written extents
 * are "unwritten", and a read of one returns zeros without touching the device — an O_DIRECT 4 KiB
 * read costs ~2 µs there against ~50 µs for written blocks on this machine's virtual disk. A target's
 * own write workloads then turn its file into written blocks at its own write speed, so the faster
 * writer reads more real blocks in the following runs (BENCHMARKS.md section 20). So every block is
 * written once up front.
 *
 * How it is written matters too. Buffered writes of megabytes leave the page cache holding large
 * folios (kernel 6.x), and a 4 KiB write then dirties a whole large folio: 4 KiB random writes ran at
 * ~31k IOPS against a file prepared so, ~60k against one written 4 KiB at a time, for both targets.
 * Buffered backings are therefore written in 4 KiB writes, the random-write size of the workloads,
 * and an O_DIRECT backing with O_DIRECT writes, which leave nothing in the page cache.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

const BUFFERED_WRITE = 4096;
const DIRECT_WRITE = 1 << 20;

export interface PreconditionOptions {
  /** The file will be used with O_DIRECT: write it with O_DIRECT, bypassing the page cache. */
  direct?: boolean;
}

/** Create or overwrite `path` with `sizeBytes` of zeros, every block written, flushed to the device. */
export async function writeEveryBlock(path: string, sizeBytes: number, o: PreconditionOptions = {}): Promise<void> {
  const bs = o.direct ? DIRECT_WRITE : BUFFERED_WRITE;
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes <= 0 || sizeBytes % bs !== 0) {
    throw new RangeError(`benchmark backing ${path}: size ${sizeBytes} must be a positive multiple of ${bs} bytes`);
  }
  const args = [`if=/dev/zero`, `of=${path}`, `bs=${bs}`, `count=${sizeBytes / bs}`, 'conv=fsync', 'status=none'];
  if (o.direct) args.push('oflag=direct');
  try {
    await run('dd', args, { maxBuffer: 1 << 20 });
  } catch (e) {
    const err = e as Error & { stderr?: string };
    throw new Error(`could not prepare benchmark backing ${path} (dd ${args.join(' ')}): ${(err.stderr || err.message).trim()}`);
  }
}
