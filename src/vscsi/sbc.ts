/**
 * SBC-3 commands that do not move user data in the common path: READ CAPACITY(10/16) (5.15, 5.16),
 * SYNCHRONIZE CACHE(10/16) (5.22, 5.23), PRE-FETCH(10/16) (5.5, 5.6), VERIFY(10/12/16) (5.25-5.27)
 * and GET LBA STATUS (5.4).
 */
import { Buffer } from 'node:buffer';
import { check, good, isFailure, type CommandContext, type CommandSpec } from './command.js';
import { u16, u32, u64 } from './cdb.js';
import { checkProtect, checkRange, checkTransferLength, firstMismatch } from './sbc-common.js';
import { failure, invalidCdbField } from './sense.js';
import { addressOf } from './sbc-read-write.js';

export const Opcode = {
  READ_CAPACITY_10: 0x25,
  VERIFY_10: 0x2f,
  PRE_FETCH_10: 0x34,
  SYNCHRONIZE_CACHE_10: 0x35,
  VERIFY_16: 0x8f,
  PRE_FETCH_16: 0x90,
  SYNCHRONIZE_CACHE_16: 0x91,
  SERVICE_ACTION_IN_16: 0x9e,
  VERIFY_12: 0xaf,
} as const;
/** SERVICE ACTION IN(16) service actions (SBC-3 SERVICE ACTION IN(16)). */
export const ServiceActionIn16 = { READ_CAPACITY_16: 0x10, GET_LBA_STATUS: 0x12 } as const;

function readCapacity10(ctx: CommandContext) {
  const lu = ctx.unit;
  const pmi = (ctx.cdb[8]! & 0x01) !== 0;
  // SBC-3 5.15: with PMI=0 the LOGICAL BLOCK ADDRESS must be zero.
  if (!pmi && u32(ctx.cdb, 2) !== 0) return check(invalidCdbField(2));
  const last = lu.capacityBlocks() - 1n;
  const data = Buffer.alloc(8);
  data.writeUInt32BE(last > 0xffffffffn ? 0xffffffff : Number(last < 0n ? 0n : last), 0);
  data.writeUInt32BE(lu.blockSize, 4);
  return good(data);
}

function readCapacity16(ctx: CommandContext) {
  const lu = ctx.unit;
  const alloc = u32(ctx.cdb, 10);
  const pmi = (ctx.cdb[14]! & 0x01) !== 0;
  if (!pmi && u64(ctx.cdb, 2) !== 0n) return check(invalidCdbField(2));
  const caps = lu.backstore.capabilities;
  const data = Buffer.alloc(32);
  const last = lu.capacityBlocks() - 1n;
  data.writeBigUInt64BE(last < 0n ? 0n : last, 0);
  data.writeUInt32BE(lu.blockSize, 8);
  data[13] = lu.lbppbExponent & 0x0f; // LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT; LOWEST ALIGNED LBA 0
  let b14 = 0;
  if (caps.discard) b14 |= 0x80; // LBPME: UNMAP / WRITE SAME UNMAP deallocate
  if (caps.discard && caps.discardZeroes) b14 |= 0x40; // LBPRZ: deallocated blocks read as zero
  data[14] = b14;
  return ctx.dataIn(data, alloc);
}

async function synchronizeCache(ctx: CommandContext) {
  const lu = ctx.unit;
  const sixteen = ctx.cdb.length === 16;
  const lba = sixteen ? u64(ctx.cdb, 2) : BigInt(u32(ctx.cdb, 2));
  const count = sixteen ? u32(ctx.cdb, 10) : u16(ctx.cdb, 7);
  const range = checkRange(lu, lba, BigInt(count));
  if (range) return check(range);
  // IMMED is honoured by not returning early: GOOD must mean the data is on stable storage.
  await lu.backstore.flush();
  return good();
}

function preFetch(ctx: CommandContext) {
  const lu = ctx.unit;
  const sixteen = ctx.cdb.length === 16;
  const lba = sixteen ? u64(ctx.cdb, 2) : BigInt(u32(ctx.cdb, 2));
  const count = sixteen ? u32(ctx.cdb, 10) : u16(ctx.cdb, 7);
  const range = checkRange(lu, lba, BigInt(count));
  if (range) return check(range);
  // No target-side cache to load: GOOD (not CONDITION MET) is the truthful answer (SBC-3 5.5).
  return good();
}

async function verify(ctx: CommandContext) {
  const lu = ctx.unit;
  const cdb = ctx.cdb;
  const bad = checkProtect(cdb);
  if (bad) return check(bad);
  const bytchk = (cdb[1]! >> 1) & 0x03;
  if (bytchk === 2) return check(invalidCdbField(1, 2));
  const { lba, count, lengthByte } = addressOf(cdb);
  if (bytchk !== 0) {
    const tooLong = checkTransferLength(lu, count, lengthByte);
    if (tooLong) return check(tooLong);
  }
  const range = checkRange(lu, lba, BigInt(count));
  if (range) return check(range);
  const bs = lu.blockSize;
  if (count === 0) return good();
  if (bytchk === 0) {
    // Medium verification: read what fits one transfer so medium errors surface.
    if (checkTransferLength(lu, count, lengthByte)) return good();
    await lu.backstore.read(Number(lba) * bs, count * bs);
    return good();
  }
  const expected = await ctx.dataOut(bytchk === 1 ? count * bs : bs, 'media');
  if (isFailure(expected)) return check(expected);
  // Compare against a whole WRITE ATOMIC(16), never half of one.
  const guard = lu.readGuard(lba, BigInt(count));
  const release = typeof guard === 'function' ? guard : await guard;
  let medium: Buffer;
  try {
    medium = await lu.backstore.read(Number(lba) * bs, count * bs);
  } finally {
    release();
  }
  for (let i = 0; i < count; i++) {
    const block = medium.subarray(i * bs, (i + 1) * bs);
    const want = bytchk === 1 ? expected.subarray(i * bs, (i + 1) * bs) : expected;
    const at = firstMismatch(want, block);
    if (at >= 0) {
      // SBC-3 5.25: INFORMATION = offset of the first miscompare within the data-out buffer.
      const offset = bytchk === 1 ? i * bs + at : at;
      return check(failure('MISCOMPARE_DURING_VERIFY_OPERATION', { information: BigInt(offset) }));
    }
  }
  return good();
}

/** SBC-3 5.4 table 38 PROVISIONING STATUS. */
const ProvisioningStatus = { MAPPED: 0x0, DEALLOCATED: 0x1 } as const;
const MAX_LBA_STATUS_DESCRIPTORS = 64;
const LBA_STATUS_WINDOW_BYTES = 1n << 30n;

async function getLbaStatus(ctx: CommandContext) {
  const lu = ctx.unit;
  const lba = u64(ctx.cdb, 2);
  const alloc = u32(ctx.cdb, 10);
  const cap = lu.capacityBlocks();
  if (lba >= cap) return check(failure('LBA_OUT_OF_RANGE'));
  const bs = BigInt(lu.blockSize);
  const maxDesc = Math.max(1, Math.min(MAX_LBA_STATUS_DESCRIPTORS, Math.floor((alloc - 8) / 16)));
  const descs: Array<{ lba: bigint; count: bigint; mapped: boolean }> = [];
  if (!lu.backstore.capabilities.lbaStatus) {
    descs.push({ lba, count: cap - lba, mapped: true });
  } else {
    const start = lba * bs;
    // Look at a bounded window: a huge sparse file need not be walked to the end for one answer;
    // the initiator asks again from where the last descriptor ends.
    const end = cap * bs < start + LBA_STATUS_WINDOW_BYTES ? cap * bs : start + LBA_STATUS_WINDOW_BYTES;
    const extents = await lu.backstore.mapStatus(Number(start), Number(end - start));
    for (const e of extents) {
      let s = BigInt(e.offset);
      let t = BigInt(e.offset + e.length);
      if (t <= start || s >= end) continue;
      if (s < start) s = start;
      if (t > end) t = end;
      const first = s / bs;
      const lastExcl = (t + bs - 1n) / bs;
      const prev = descs[descs.length - 1];
      if (prev && prev.mapped === e.mapped && prev.lba + prev.count >= first) {
        prev.count = lastExcl - prev.lba;
      } else {
        if (prev && first < prev.lba + prev.count) continue; // overlap from rounding: keep the first
        descs.push({ lba: first, count: lastExcl - first, mapped: e.mapped });
      }
      if (descs.length > maxDesc) break;
    }
    if (descs.length === 0 || descs[0]!.lba !== lba) descs.unshift({ lba, count: 1n, mapped: true });
  }
  const used = descs.slice(0, maxDesc);
  const data = Buffer.alloc(8 + 16 * used.length);
  data.writeUInt32BE(4 + 16 * used.length, 0); // PARAMETER DATA LENGTH excludes its own 4 bytes
  used.forEach((d, i) => {
    const o = 8 + 16 * i;
    data.writeBigUInt64BE(d.lba, o);
    data.writeUInt32BE(d.count > 0xffffffffn ? 0xffffffff : Number(d.count), o + 8);
    data[o + 12] = d.mapped ? ProvisioningStatus.MAPPED : ProvisioningStatus.DEALLOCATED;
  });
  return ctx.dataIn(data, alloc);
}

const ff = (n: number): number[] => new Array<number>(n).fill(0xff);

export const sbcCommands: CommandSpec[] = [
  {
    name: 'READ CAPACITY(10)',
    opcode: Opcode.READ_CAPACITY_10,
    usage: [0x25, 0x00, ...ff(4), 0x00, 0x00, 0x01, 0x00],
    mediaAccess: true,
    cls: 'other',
    run: readCapacity10,
  },
  {
    name: 'READ CAPACITY(16)',
    opcode: Opcode.SERVICE_ACTION_IN_16,
    serviceAction: ServiceActionIn16.READ_CAPACITY_16,
    usage: [0x9e, 0x1f, ...ff(12), 0x01, 0x00],
    mediaAccess: true,
    cls: 'other',
    run: readCapacity16,
  },
  {
    name: 'GET LBA STATUS',
    opcode: Opcode.SERVICE_ACTION_IN_16,
    serviceAction: ServiceActionIn16.GET_LBA_STATUS,
    usage: [0x9e, 0x1f, ...ff(12), 0x00, 0x00],
    mediaAccess: true,
    cls: 'other',
    run: getLbaStatus,
  },
  {
    name: 'SYNCHRONIZE CACHE(10)',
    opcode: Opcode.SYNCHRONIZE_CACHE_10,
    usage: [0x35, 0x06, ...ff(4), 0x3f, 0xff, 0xff, 0x00],
    mediaAccess: true,
    cls: 'other',
    timeoutSeconds: 60,
    run: synchronizeCache,
  },
  {
    name: 'SYNCHRONIZE CACHE(16)',
    opcode: Opcode.SYNCHRONIZE_CACHE_16,
    usage: [0x91, 0x06, ...ff(12), 0x3f, 0x00],
    mediaAccess: true,
    cls: 'other',
    timeoutSeconds: 60,
    run: synchronizeCache,
  },
  {
    name: 'PRE-FETCH(10)',
    opcode: Opcode.PRE_FETCH_10,
    usage: [0x34, 0x02, ...ff(4), 0x3f, 0xff, 0xff, 0x00],
    mediaAccess: true,
    cls: 'other',
    run: preFetch,
  },
  {
    name: 'PRE-FETCH(16)',
    opcode: Opcode.PRE_FETCH_16,
    usage: [0x90, 0x02, ...ff(12), 0x3f, 0x00],
    mediaAccess: true,
    cls: 'other',
    run: preFetch,
  },
  {
    name: 'VERIFY(10)',
    opcode: Opcode.VERIFY_10,
    usage: [0x2f, 0xf6, ...ff(4), 0x3f, 0xff, 0xff, 0x00],
    mediaAccess: true,
    cls: 'read',
    timeoutSeconds: 30,
    run: verify,
  },
  {
    name: 'VERIFY(12)',
    opcode: Opcode.VERIFY_12,
    usage: [0xaf, 0xf6, ...ff(8), 0x3f, 0x00],
    mediaAccess: true,
    cls: 'read',
    timeoutSeconds: 30,
    run: verify,
  },
  {
    name: 'VERIFY(16)',
    opcode: Opcode.VERIFY_16,
    usage: [0x8f, 0xf6, ...ff(12), 0x3f, 0x00],
    mediaAccess: true,
    cls: 'read',
    timeoutSeconds: 30,
    run: verify,
  },
];
