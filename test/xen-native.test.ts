import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { openXenHypervisor, xenUnavailableReason } from '../src/xen/native.js';
import { loadNative } from '../src/native/index.js';

const onXen = existsSync('/dev/xen/gntdev') && existsSync('/dev/xen/evtchn');

describe('real Xen hypervisor interface', () => {
  it('is compiled in when the Xen headers are present', () => {
    const n = loadNative() as unknown as { xenBuiltWithLibxen?: boolean; XenDom0?: unknown };
    expect(typeof n.xenBuiltWithLibxen).toBe('boolean');
    if (existsSync('/usr/include/xengnttab.h')) {
      expect(n.xenBuiltWithLibxen).toBe(true);
      expect(typeof n.XenDom0).toBe('function');
    }
  });
  it.skipIf(onXen)('refuses to start off Xen with a message saying why and what to do', () => {
    expect(xenUnavailableReason()).toMatch(/not running under Xen|gntdev|evtchn|hypervisor/);
    expect(() => openXenHypervisor()).toThrow(/cannot serve Xen guests here: .*Xen dom0 .*vtgt sim xen/);
  });
});
