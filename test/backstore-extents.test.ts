import { describe, expect, it } from 'vitest';
import { allMapped, ExtentList } from '../src/backstores/extents.js';

describe('ExtentList (GET LBA STATUS extents)', () => {
  it('merges adjacent ranges of the same state and keeps state changes apart', () => {
    const l = new ExtentList();
    l.add(0, 512, true);
    l.add(512, 4096, true);
    l.add(4096, 8192, false);
    l.add(8192, 8704, false);
    l.add(8704, 9216, true);
    expect(l.extents).toEqual([
      { offset: 0, length: 4096, mapped: true },
      { offset: 4096, length: 4608, mapped: false },
      { offset: 8704, length: 512, mapped: true },
    ]);
    expect(l.count).toBe(3);
  });

  it('ignores empty and inverted ranges', () => {
    const l = new ExtentList();
    l.add(1024, 1024, true);
    l.add(2048, 1024, false);
    expect(l.extents).toEqual([]);
    l.add(0, 512, false);
    l.add(512, 512, true); // empty: must not split the next hole from the previous one
    l.add(512, 1024, false);
    expect(l.extents).toEqual([{ offset: 0, length: 1024, mapped: false }]);
  });

  it('does not merge same-state ranges with a gap between them', () => {
    const l = new ExtentList();
    l.add(0, 512, true);
    l.add(1024, 1536, true);
    expect(l.extents).toEqual([
      { offset: 0, length: 512, mapped: true },
      { offset: 1024, length: 512, mapped: true },
    ]);
  });

  it('allMapped reports one mapped extent to the end, nothing past it', () => {
    expect(allMapped(4096, 1 << 20)).toEqual([{ offset: 4096, length: (1 << 20) - 4096, mapped: true }]);
    expect(allMapped(1 << 20, 1 << 20)).toEqual([]);
  });
});
