/** In-process target for iSCSI tests: the real core with memory LUNs behind an IscsiServer on 127.0.0.1:0. */
import { startDevTarget, parseDevArgs } from '../../src/iscsi/dev-target.js';

export const IQN = 'iqn.2026-11.org.vtgt:test';

export async function startTarget(extraArgs: string[] = []) {
  const o = parseDevArgs(['--target', IQN, '--nop-interval', '0', ...extraArgs]);
  return startDevTarget(o);
}

export function pattern(len: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}
