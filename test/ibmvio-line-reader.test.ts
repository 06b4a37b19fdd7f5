import { describe, expect, it } from 'vitest';
import { LineReader } from '../src/sim/line-reader.js';

describe('simulator socket framing (LineReader)', () => {
  const text = '{"op":"attach","unit":1}\n{"op":"hcall","id":2}\n\n{"op":"irq"}\n';
  const want = ['{"op":"attach","unit":1}', '{"op":"hcall","id":2}', '{"op":"irq"}'];

  it('yields the same lines however the stream is split (every offset, byte by byte)', () => {
    for (let cut = 0; cut <= text.length; cut++) {
      const got: string[] = [];
      const r = new LineReader((l) => got.push(l));
      expect(r.push(text.slice(0, cut))).toBe(true);
      expect(r.push(text.slice(cut))).toBe(true);
      expect(got).toEqual(want);
    }
    const got: string[] = [];
    const r = new LineReader((l) => got.push(l));
    for (const ch of text) r.push(ch);
    expect(got).toEqual(want);
  });

  it('refuses a line over the bound, whether it arrives whole or unterminated', () => {
    const got: string[] = [];
    expect(new LineReader((l) => got.push(l), 16).push('x'.repeat(17) + '\n')).toBe(false);
    expect(new LineReader((l) => got.push(l), 16).push('x'.repeat(17))).toBe(false);
    expect(got).toEqual([]);
    const r = new LineReader((l) => got.push(l), 16);
    expect(r.push('x'.repeat(16) + '\n')).toBe(true);
    expect(got).toEqual(['x'.repeat(16)]);
  });
});
