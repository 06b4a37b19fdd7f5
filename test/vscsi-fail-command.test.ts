import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { TaskAttribute, type ScsiCompletion } from '../src/vscsi/fabric.js';
import { buildSense, failure, parseSense, senseKeyOf } from '../src/vscsi/sense.js';
import { clearUa, rig } from './vscsi-helpers.js';

function request(lun: number, direction: 'read' | 'write' | 'bidi' | 'none', expectedLength: number, onComplete: (c: ScsiCompletion) => void) {
  return {
    lun,
    cdb: Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
    attribute: TaskAttribute.SIMPLE,
    tag: 9n,
    direction,
    expectedLength,
    ...(direction === 'bidi' ? { expectedReadLength: 64 } : {}),
    port: { fetchDataOut: () => Promise.reject(new Error('none')), complete: onComplete },
  };
}

describe('Nexus.failCommand', () => {
  it('completes later (not inside the call) with CHECK CONDITION, fixed sense and an underflow of everything', async () => {
    const { fab } = rig();
    let got: ScsiCompletion | undefined;
    fab.nexus.failCommand(request(0, 'read', 4096, (c) => (got = c)), 'LOGICAL_UNIT_COMMUNICATION_FAILURE');
    expect(got).toBeUndefined();
    await Promise.resolve();
    expect(got?.status).toBe(0x02);
    expect(got?.residual).toEqual({ kind: 'underflow', count: 4096 });
    expect(parseSense(got!.sense!)).toMatchObject({ format: 'fixed', key: 0x4, asc: 0x08, ascq: 0x00 });
  });

  it('uses descriptor format when the LU has D_SENSE=1, and carries a field pointer', async () => {
    const { fab, lu } = rig();
    await clearUa(fab);
    lu.mode.dSense = true;
    const c = fab.nexus.failureCompletion(request(0, 'write', 512, () => {}), 'INVALID_FIELD_IN_COMMAND_INFORMATION_UNIT', {
      field: { inCdb: false, byte: 12 },
    });
    const s = parseSense(c.sense!);
    expect(s).toMatchObject({ format: 'descriptor', key: 0x5, asc: 0x0e, ascq: 0x03, field: { inCdb: false, byte: 12 } });
    expect(senseKeyOf(c.sense!)).toBe(0x5);
  });

  it('answers for LUNs with no logical unit (fixed format) and bidirectional residuals', async () => {
    const { fab } = rig();
    const c = fab.nexus.failureCompletion(request(7, 'bidi', 100, () => {}), 'OVERLAPPED_COMMANDS_ATTEMPTED');
    expect(parseSense(c.sense!)).toMatchObject({ format: 'fixed', key: 0xb, asc: 0x4e });
    expect(c.residual).toEqual({ kind: 'underflow', count: 100 });
    expect(c.bidiReadResidual).toEqual({ kind: 'underflow', count: 64 });
    const none = fab.nexus.failureCompletion(request(0, 'none', 0, () => {}), 'DATA_PHASE_ERROR');
    expect(none.residual).toEqual({ kind: 'none' });
  });
});

describe('parseSense', () => {
  it('round-trips what buildSense makes, in both formats', () => {
    for (const format of ['fixed', 'descriptor'] as const) {
      const s = parseSense(buildSense(failure('LBA_OUT_OF_RANGE', { information: 77n }), format));
      expect(s).toMatchObject({ format, current: true, key: 0x5, asc: 0x21, ascq: 0, information: 77n });
      const p = parseSense(buildSense(failure('LU_NOT_READY_SANITIZE_IN_PROGRESS', { progress: 0x8000 }), format));
      expect(p).toMatchObject({ key: 0x2, asc: 0x04, ascq: 0x1b, progress: 0x8000 });
      const f = parseSense(buildSense(failure('INVALID_FIELD_IN_CDB', { field: { inCdb: true, byte: 1, bit: 4 } }), format));
      expect(f?.field).toEqual({ inCdb: true, byte: 1, bit: 4 });
    }
  });

  it('never throws on hostile bytes and rejects what is not sense data', () => {
    expect(parseSense(Buffer.alloc(0))).toBeUndefined();
    expect(parseSense(Buffer.from([0x00, 1, 2, 3]))).toBeUndefined();
    expect(senseKeyOf(Buffer.from([0x72]))).toBeUndefined();
    // A descriptor list whose lengths point past the end.
    expect(parseSense(Buffer.from([0x72, 0x05, 0x24, 0x00, 0, 0, 0, 200, 0x00, 0x0a, 0x80]))).toMatchObject({ key: 5, asc: 0x24 });
    for (let i = 0; i < 2000; i++) {
      const b = randomBytes(i % 40);
      if (b.length > 0 && i % 3 === 0) b[0] = 0x72;
      if (b.length > 0 && i % 3 === 1) b[0] = 0x70;
      expect(() => parseSense(b)).not.toThrow();
    }
  });
});
