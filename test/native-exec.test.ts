// The addon's execve (used by `vtgt serve` to restart Node with its heap flags): argument checks, and a
// failed exec leaves the process running with its standard descriptors as they were.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadNative } from '../src/native/index.js';

const fdFlags = (fd: number) => readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').find((l) => l.startsWith('flags:'));

describe('native execReplace', () => {
  const n = loadNative();

  it('throws the errno and leaves the process running when execve fails', () => {
    const before = [0, 1, 2].map(fdFlags);
    let err: NodeJS.ErrnoException | undefined;
    try {
      n.execReplace('/nonexistent/vtgt-node', ['/nonexistent/vtgt-node', '-e', '0']);
    } catch (e) {
      err = e as NodeJS.ErrnoException;
    }
    expect(err?.code).toBe('ENOENT');
    expect(err?.message).toContain('execve /nonexistent/vtgt-node');
    // close-on-exec and O_NONBLOCK, cleared for the new program, are back.
    expect([0, 1, 2].map(fdFlags)).toEqual(before);
  });

  it('refuses arguments it cannot pass to execve', () => {
    expect(() => n.execReplace('', ['x'])).toThrow(TypeError);
    expect(() => n.execReplace('/bin/true', [])).toThrow(/must name the program/);
    expect(() => (n.execReplace as (p: unknown, a: unknown) => never)('/bin/true', ['true', 5])).toThrow(/argv\[1\] is not a string/);
    expect(() => n.execReplace('/bin/true', ['true', 'a\0b'])).toThrow(/NUL byte/);
    expect(() => (n.execReplace as (p: unknown, a: unknown) => never)(1, ['x'])).toThrow(TypeError);
  });
});
