import { describe, expect, it } from 'vitest';
import { BackstoreError } from '../src/backstores/backstore.js';
import { checkRange, errnoKind, readTarget, toBackstoreError } from '../src/backstores/errors.js';

describe('errno to BackstoreError kind', () => {
  const table: Array<[string | undefined, string]> = [
    ['EIO', 'io'],
    ['EUCLEAN', 'io'],
    [undefined, 'io'],
    ['ENOSPC', 'nospace'],
    ['EDQUOT', 'nospace'],
    ['EFBIG', 'nospace'],
    ['ENOENT', 'gone'],
    ['ENODEV', 'gone'],
    ['ENXIO', 'gone'],
    ['ESTALE', 'gone'],
    ['EROFS', 'readonly'],
    ['EACCES', 'readonly'],
    ['EPERM', 'readonly'],
    ['EOPNOTSUPP', 'unsupported'],
    ['ENOTTY', 'unsupported'],
  ];
  for (const [code, kind] of table) {
    it(`${code ?? 'no code'} -> ${kind}`, () => {
      expect(errnoKind(code)).toBe(kind);
    });
  }

  it('wraps an fs error with what failed, where, the errno and what to do', () => {
    const fsErr = Object.assign(new Error("EACCES: permission denied, open '/srv/disk0.img'"), { code: 'EACCES' });
    const e = toBackstoreError(fsErr, 'file backstore disk0 (/srv/disk0.img)', 'open');
    expect(e).toBeInstanceOf(BackstoreError);
    expect(e.kind).toBe('readonly');
    expect(e.errno).toBe('EACCES');
    expect(e.message).toBe(
      "open on file backstore disk0 (/srv/disk0.img) failed: EACCES: permission denied, open '/srv/disk0.img'; " +
        'check its permissions and whether its file system is mounted read-only',
    );
    // A BackstoreError passes through unchanged.
    expect(toBackstoreError(e, 'x', 'y')).toBe(e);
    // Non-Error values still produce a readable message.
    expect(toBackstoreError('boom', 'memory backstore m', 'read').message).toMatch(/read on memory backstore m failed: boom/);
  });

  it('range checks name the store and the numbers', () => {
    expect(() => checkRange('read', 'S', 512, 512, 512, 1024)).not.toThrow();
    expect(() => checkRange('read', 'S', 1024, 0, 512, 1024)).not.toThrow();
    expect(() => checkRange('read', 'S', 1024, 512, 512, 1024)).toThrow('read on S: range 1024+512 is past the end (1024 bytes)');
    expect(() => checkRange('read', 'S', 100, 512, 512, 1024)).toThrow(/multiples of 512/);
    expect(() => checkRange('read', 'S', -512, 512, 512, 1024)).toThrow(/non-negative integers/);
    expect(() => checkRange('read', 'S', 0, Number.NaN, 512, 1024)).toThrow(/non-negative integers/);
    expect(() => readTarget('read', 'S', 10, Buffer.alloc(5))).toThrow(/5 bytes is smaller than the 10/);
    expect(readTarget('read', 'S', 4, Buffer.alloc(8)).length).toBe(4);
  });
});
