/** Small big-endian field readers shared by the command parsers. */

export const u16 = (b: Buffer, o: number): number => b.readUInt16BE(o);
export const u24 = (b: Buffer, o: number): number => (b[o]! << 16) | (b[o + 1]! << 8) | b[o + 2]!;
export const u32 = (b: Buffer, o: number): number => b.readUInt32BE(o);
export const u64 = (b: Buffer, o: number): bigint => b.readBigUInt64BE(o);
