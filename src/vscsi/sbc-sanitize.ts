/**
 * SANITIZE (SBC-4 5.30, sanitize operations 4.11): OVERWRITE, BLOCK ERASE and EXIT FAILURE MODE.
 *
 * CRYPTOGRAPHIC ERASE is not offered: no backstore encrypts with a key we could throw away, so the
 * service action is unsupported (INVALID FIELD IN CDB, absent from REPORT SUPPORTED OPERATION CODES,
 * WACEREQ 0). The operation belongs to the LU, not to the command: it keeps running when the command
 * is aborted, the LU reset or the nexus lost, and until it ends every command other than INQUIRY,
 * REPORT LUNS and REQUEST SENSE gets NOT READY, SANITIZE IN PROGRESS with a progress indication.
 */
import { Buffer } from 'node:buffer';
import { check, good, isFailure, type CommandContext, type CommandSpec } from './command.js';
import { u16 } from './cdb.js';
import type { LogicalUnit } from './logical-unit.js';
import { checkWritable } from './sbc-common.js';
import { failure, invalidCdbField, invalidParamField, type ScsiFailure } from './sense.js';

export const Opcode = { SANITIZE: 0x48 } as const;
/** SBC-4 5.30 table: SANITIZE service actions. */
export const SanitizeServiceAction = { OVERWRITE: 0x01, BLOCK_ERASE: 0x02, CRYPTOGRAPHIC_ERASE: 0x03, EXIT_FAILURE_MODE: 0x1f } as const;

const IMMED = 0x80;
const AUSE = 0x20;
const PARAMETER_LIST_LENGTH_BYTE = 7;
/** OVERWRITE parameter list header (SBC-4 5.30.3): INVERT, TEST, OVERWRITE COUNT, INITIALIZATION PATTERN LENGTH. */
const OVERWRITE_HEADER = 4;
/** Bytes per backstore call, so progress moves and one call never holds a huge buffer. */
const SANITIZE_CHUNK_BYTES = 1024 * 1024;

/** NOT READY, SANITIZE IN PROGRESS with the progress indication (SPC-4 4.5.2.4.4: fraction of 65536). */
export function sanitizeInProgress(lu: LogicalUnit): ScsiFailure {
  const p = lu.sanitize?.progress ?? 0;
  return failure('LU_NOT_READY_SANITIZE_IN_PROGRESS', { progress: Math.min(0xffff, Math.floor(p * 0x10000)) });
}

interface OverwriteParams {
  invert: boolean;
  passes: number;
  block: Buffer;
}

function parseOverwrite(p: Buffer, bs: number): OverwriteParams | ScsiFailure {
  if ((p[0]! & 0x60) !== 0) return invalidParamField(0, 6); // TEST: only 00b (normal operation)
  const passes = p[0]! & 0x1f;
  if (passes === 0) return invalidParamField(0, 4); // OVERWRITE COUNT 0
  const patternLength = u16(p, 2);
  if (patternLength === 0 || patternLength > bs || OVERWRITE_HEADER + patternLength > p.length) {
    return invalidParamField(2); // INITIALIZATION PATTERN LENGTH
  }
  const pattern = p.subarray(OVERWRITE_HEADER, OVERWRITE_HEADER + patternLength);
  // A pattern shorter than a block is repeated to fill it.
  const block = Buffer.alloc(bs);
  for (let o = 0; o < bs; o += patternLength) pattern.copy(block, o, 0, Math.min(patternLength, bs - o));
  return { invert: (p[0]! & 0x80) !== 0, passes, block };
}

/** The LU was removed: stop between chunks rather than write to a backstore about to be closed. */
function stopIfRemoved(lu: LogicalUnit): void {
  if (lu.removed) throw new Error(`logical unit ${lu.id} was removed during SANITIZE`);
}

type Work = (lu: LogicalUnit, report: (fraction: number) => void) => Promise<void>;

function overwrite(params: OverwriteParams): Work {
  return async (lu, report) => {
    const total = lu.capacityBlocks() * BigInt(lu.blockSize);
    const bs = lu.blockSize;
    const perChunk = Math.max(bs, Math.floor(SANITIZE_CHUNK_BYTES / bs) * bs);
    const chunk = Buffer.alloc(Number(total < BigInt(perChunk) ? total : BigInt(perChunk)));
    const inverted = Buffer.from(params.block.map((x) => ~x & 0xff));
    const totalBytes = Number(total) * params.passes;
    for (let pass = 0; pass < params.passes; pass++) {
      // INVERT: the pattern alternates between passes, starting (and with an odd count ending) as given.
      const block = params.invert && pass % 2 === 1 ? inverted : params.block;
      for (let o = 0; o < chunk.length; o += bs) block.copy(chunk, o);
      for (let off = 0; off < Number(total); off += chunk.length) {
        stopIfRemoved(lu);
        const n = Math.min(chunk.length, Number(total) - off);
        await lu.backstore.write(off, n === chunk.length ? chunk : chunk.subarray(0, n), false);
        report((pass * Number(total) + off + n) / totalBytes);
      }
      // Each pass must reach the medium, or the cache would fold the passes into one.
      await lu.backstore.flush();
    }
  };
}

const blockErase: Work = async (lu, report) => {
  const total = Number(lu.capacityBlocks()) * lu.blockSize;
  const step = Math.max(lu.blockSize, Math.floor((64 * SANITIZE_CHUNK_BYTES) / lu.blockSize) * lu.blockSize);
  const discard = lu.backstore.capabilities.discard;
  for (let off = 0; off < total; off += step) {
    stopIfRemoved(lu);
    const n = Math.min(step, total - off);
    // Deallocated where the store can (thin LUs: every LBA reads as zero and is unmapped), zeroed elsewhere.
    await lu.backstore.writeZeroes(off, n, discard);
    report((off + n) / total);
  }
  await lu.backstore.flush();
};

/** Start the LU's sanitize operation; resolves when it ends (rejects never: failures set failure mode). */
function startSanitize(ctx: CommandContext, work: Work, ause: boolean): Promise<void> {
  const lu = ctx.unit;
  const state = { progress: 0, done: Promise.resolve() };
  lu.sanitize = state;
  state.done = (async () => {
    // Let commands already past their checks finish (a WRITE still receiving data-out would otherwise
    // land after the sanitize); nothing new gets through while `lu.sanitize` is set. Tasks still
    // waiting in the task set are left alone: they may be queued behind this very SANITIZE.
    const running = ctx.services
      .nexusesOf(lu)
      .flatMap(({ nexus }) => nexus.commandsFor(lu))
      .filter((c) => c.state === 'running' && c.request !== ctx.request);
    await Promise.all(running.map((c) => c.settled));
    const release = await lu.rangeLock.acquire(0n, lu.capacityBlocks());
    try {
      await work(lu, (f) => (state.progress = f));
      lu.sanitizeFailed = undefined;
      lu.logger?.info('sanitize completed');
    } catch (err) {
      lu.sanitizeFailed = { ause };
      lu.logErrorOnce('sanitize', err);
    } finally {
      release();
      lu.sanitize = undefined;
    }
  })();
  return state.done;
}

async function sanitize(ctx: CommandContext) {
  const lu = ctx.unit;
  const cdb = ctx.cdb;
  const sa = cdb[1]! & 0x1f;
  const immed = (cdb[1]! & IMMED) !== 0;
  const ause = (cdb[1]! & AUSE) !== 0;
  const length = u16(cdb, PARAMETER_LIST_LENGTH_BYTE);
  const bs = lu.blockSize;
  if (sa === SanitizeServiceAction.EXIT_FAILURE_MODE) {
    if (length !== 0) return check(invalidCdbField(PARAMETER_LIST_LENGTH_BYTE));
    // SBC-4 4.11.4: leaving failure mode without a good sanitize needs AUSE on the failed command.
    if (lu.sanitizeFailed && !lu.sanitizeFailed.ause) return check(invalidCdbField(1, 4));
    lu.sanitizeFailed = undefined;
    return good();
  }
  let work: Work;
  if (sa === SanitizeServiceAction.OVERWRITE) {
    if (length <= OVERWRITE_HEADER || length > bs + OVERWRITE_HEADER) return check(invalidCdbField(PARAMETER_LIST_LENGTH_BYTE));
    const wp = checkWritable(lu);
    if (wp) return check(wp);
    const p = await ctx.dataOut(length, 'parameters', PARAMETER_LIST_LENGTH_BYTE);
    if (isFailure(p)) return check(p);
    const params = parseOverwrite(p, bs);
    if ('reason' in params) return check(params);
    work = overwrite(params);
  } else if (sa === SanitizeServiceAction.BLOCK_ERASE) {
    if (length !== 0) return check(invalidCdbField(PARAMETER_LIST_LENGTH_BYTE));
    const wp = checkWritable(lu);
    if (wp) return check(wp);
    work = blockErase;
  } else {
    return check(invalidCdbField(1, 4));
  }
  if (ctx.aborted) return good();
  if (lu.sanitize) return check(sanitizeInProgress(lu)); // another nexus started one meanwhile
  const done = startSanitize(ctx, work, ause);
  if (immed) return good();
  await Promise.race([done, ctx.whenAborted()]);
  if (lu.sanitizeFailed) return check(failure('SANITIZE_COMMAND_FAILED'));
  return good();
}

/** byte 1: IMMED, AUSE, SERVICE ACTION; 7-8 PARAMETER LIST LENGTH. */
const usage = (): number[] => [0x48, 0xa0 | 0x1f, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0x00];

const spec = (name: string, sa: number): CommandSpec => ({
  name,
  opcode: Opcode.SANITIZE,
  serviceAction: sa,
  usage: usage(),
  cls: 'write',
  mediaAccess: true,
  sanitizeFailureAllowed: true,
  // Hours for a large LUN: initiators that want to wait should use IMMED and poll REQUEST SENSE.
  timeoutSeconds: 3600,
  run: sanitize,
});

export const sbcSanitizeCommands: CommandSpec[] = [
  spec('SANITIZE OVERWRITE', SanitizeServiceAction.OVERWRITE),
  spec('SANITIZE BLOCK ERASE', SanitizeServiceAction.BLOCK_ERASE),
  spec('SANITIZE EXIT FAILURE MODE', SanitizeServiceAction.EXIT_FAILURE_MODE),
];
