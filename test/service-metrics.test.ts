// The optional Prometheus endpoint and the log formatting/guarding pieces of the service.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { BackstoreError, type BackstoreCompletion } from '../src/backstores/backstore.js';
import { MemoryBackstore } from '../src/backstores/memory.js';
import { guardBackstore } from '../src/service/backstore-guard.js';
import { createLogger, formatRecord } from '../src/service/logger.js';
import { serve } from '../src/service/service.js';
import { percentile, StatsSampler } from '../src/service/stats.js';
import { fakePlatform, MemoryStore } from '../src/service/testing/fake-platform.js';
import { ScsiCore } from '../src/vscsi/core.js';
import { LoopbackFabric, loopbackInitiator } from '../src/vscsi/loopback.js';
import { newLuStats, recordLatency, type CoreStats } from '../src/vscsi/stats.js';

const dir = mkdtempSync(join(tmpdir(), 'vtgt-metrics-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function capture() {
  const records: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) records.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { records, logger: pino({ level: 'debug' }, stream) };
}

describe('metrics endpoint', () => {
  it('is off by default and serves per-LUN counters and latency histograms when configured', async () => {
    const cfg = join(dir, 'vtgt.yaml');
    writeFileSync(
      cfg,
      'backstores: [{name: m0, type: memory, size: 1MiB}]\ntargets: [{name: "iqn.2026-11.org.vtgt:m", luns: [{lun: 0, backstore: m0}]}]\niscsi: {portals: ["127.0.0.1:0"]}\nmetrics: {listen: "127.0.0.1:0"}\n',
    );
    const plat = fakePlatform();
    const out: string[] = [];
    const svc = await serve({ dataDir: dir, configPath: cfg, logger: pino({ level: 'silent' }), platform: plat, out: (l) => out.push(l) });
    try {
      const line = out.find((l) => l.startsWith('vtgt: metrics on '));
      expect(line).toMatch(/^vtgt: metrics on http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const stats = plat.core.lus.get('m0')!.stats;
      stats.readCommands = 7;
      stats.writeBytes = 4096;
      recordLatency(stats, 0.3);
      recordLatency(stats, 3);
      const body = await (await fetch(line!.slice('vtgt: metrics on '.length))).text();
      expect(body).toContain('vtgt_lun_read_commands_total{backstore="m0",target="iqn.2026-11.org.vtgt:m"} 7');
      expect(body).toContain('vtgt_lun_write_bytes_total{backstore="m0",target="iqn.2026-11.org.vtgt:m"} 4096');
      expect(body).toContain('vtgt_lun_command_latency_seconds_bucket{backstore="m0",le="0.0005"} 1');
      expect(body).toContain('vtgt_lun_command_latency_seconds_bucket{backstore="m0",le="+Inf"} 2');
      expect(body).toContain('vtgt_lun_command_latency_seconds_count{backstore="m0"} 2');
      expect(body).toMatch(/# TYPE vtgt_lun_command_latency_seconds histogram/);
      expect(body).toContain('vtgt_sessions 0');
      // The stand-in platform reports fixed busy-poll counters while polling is on (default 200 µs).
      expect(body).toContain('vtgt_busy_poll_waits_total 12');
      expect(body).toContain('vtgt_busy_poll_hits_total 9');
      expect(body).toContain('vtgt_busy_poll_seconds_total 0.25');
      expect(body).toContain('vtgt_busy_poll_window_microseconds 200');
      // and fixed I/O engine counters.
      expect(body).toContain('vtgt_io_requests_total{engine="io_uring"} 320');
      expect(body).toContain('vtgt_io_submissions_total{engine="io_uring"} 11');
      expect(body).toContain('vtgt_io_submissions_total{engine="threadpool"} 5');
      expect(body).toContain('vtgt_io_inline_total 40');
    } finally {
      await svc.stop('test');
    }
    // Without a metrics section nothing listens.
    writeFileSync(cfg, 'iscsi: {portals: ["127.0.0.1:0"]}\n');
    const out2: string[] = [];
    const svc2 = await serve({ dataDir: dir, configPath: cfg, logger: pino({ level: 'silent' }), platform: fakePlatform(), out: (l) => out2.push(l) });
    expect(out2.some((l) => l.includes('metrics'))).toBe(false);
    await svc2.stop('test');
  });

  it('turns counters into per-LUN and per-session rates over the sampling window', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    try {
      const lu = newLuStats();
      const core: CoreStats = { logicalUnits: { d0: lu }, nexuses: 1, activeCommands: 0 };
      const session = { initiator: 'iqn.x:y', isid: '01', tsih: 1, target: 't', commands: 0, readBytes: 0, writeBytes: 0 };
      const sampler = new StatsSampler(() => core, () => [{ ...session }], 2000);
      sampler.start();
      expect(sampler.report().luns[0]!.iops).toBeUndefined(); // no window yet
      lu.readCommands = 400;
      lu.readBytes = 400 * 4096;
      session.commands = 400;
      session.readBytes = 400 * 4096;
      vi.advanceTimersByTime(2000);
      const r = sampler.report();
      expect(r.windowSeconds).toBe(2);
      expect(r.luns[0]).toMatchObject({ backstore: 'd0', iops: 200, readBytesPerSec: 200 * 4096, writeBytesPerSec: 0 });
      expect(r.sessions[0]).toMatchObject({ initiator: 'iqn.x:y', iops: 200, readBytesPerSec: 200 * 4096 });
      sampler.stop();
    } finally {
      vi.useRealTimers();
    }
  });

  it('computes latency percentiles from the histogram', () => {
    const l = { bucketsMs: [1, 10], counts: [90, 9, 1], sumMs: 0, count: 100 };
    expect(percentile(l, 0.5)).toBe(1);
    expect(percentile(l, 0.99)).toBe(10);
    expect(percentile(l, 1)).toBe(Infinity);
    expect(percentile({ ...l, counts: [0, 0, 0], count: 0 }, 0.5)).toBeUndefined();
  });
});

describe('logging', () => {
  it('renders JSON records as readable lines for terminals', () => {
    const line = formatRecord(JSON.stringify({ level: 40, time: Date.UTC(2026, 10, 21, 6, 5, 4), pid: 1, component: 'iscsi', initiator: 'iqn.x\u001b[2J', msg: 'login failed' }));
    expect(line).toBe('06:05:04 WARN  [iscsi] login failed  initiator="iqn.x\\u001b[2J"\n');
    expect(formatRecord('not json')).toBe('not json');
  });

  it('redacts secrets', () => {
    const c = capture();
    const l = createLogger({ destination: { write: (s: string) => c.records.push(JSON.parse(s) as Record<string, unknown>) } });
    l.info({ chap: { user: 'u', secret: 'very-secret-value' } }, 'x');
    expect(JSON.stringify(c.records)).not.toContain('very-secret-value');
    expect((c.records[0]!.chap as Record<string, unknown>).user).toBe('u');
  });

  it('logs a failing backstore once per kind of failure, with advice, and passes the error on', async () => {
    const c = capture();
    const inner = new MemoryStore({ type: 'file', name: 'd0', path: '/srv/d0.img', size: 1 << 20 });
    const g = guardBackstore(inner, c.logger);
    inner.failWith = new BackstoreError('nospace', 'ENOSPC: no space left on device', 'ENOSPC');
    for (let i = 0; i < 5; i++) await expect(g.write(0, Buffer.alloc(512), false)).rejects.toBe(inner.failWith);
    inner.failWith = new BackstoreError('io', 'EIO', 'EIO');
    await expect(g.read(0, 512)).rejects.toBeInstanceOf(BackstoreError);
    await expect(g.read(0, 512)).rejects.toBeInstanceOf(BackstoreError);
    expect(c.records).toHaveLength(2);
    expect(c.records[0]).toMatchObject({ level: 50, backstore: 'd0', kind: 'nospace', errno: 'ENOSPC' });
    expect(c.records[0]!.msg).toContain('free space or grow it');
    expect(c.records[1]!.msg).toContain('check the disk');
    expect([...g.failures]).toEqual(['nospace', 'io']);
    inner.failWith = undefined;
    expect((await g.read(0, 512)).length).toBe(512);
    expect(g.failures.size).toBe(0);
    expect(c.records[2]).toMatchObject({ level: 30, backstore: 'd0', after: ['nospace', 'io'] });
    inner.failWith = new BackstoreError('nospace', 'ENOSPC', 'ENOSPC');
    await expect(g.write(0, Buffer.alloc(512), false)).rejects.toBe(inner.failWith);
    expect(c.records).toHaveLength(4); // logged again after the recovery
  });

  it('relays startRead/startWrite when the store has them: failures logged once per kind, told on unchanged', async () => {
    const c = capture();
    expect(guardBackstore(new MemoryStore({ type: 'memory', name: 'p', size: 1 << 20 }), c.logger).startRead).toBeUndefined();
    const inner = new MemoryBackstore({ name: 'm2', size: 1 << 20 });
    let failure: BackstoreError | undefined;
    let throwAtOnce = false;
    const later = (done: BackstoreCompletion, work: () => boolean): boolean => {
      if (failure && throwAtOnce) throw failure;
      if (!failure) return work();
      const e = failure;
      setImmediate(() => done.backstoreDone(e));
      return false;
    };
    const { startRead, startWrite } = inner;
    inner.startRead = (o: number, l: number, into: Buffer, done: BackstoreCompletion) => later(done, () => startRead.call(inner, o, l, into, done));
    inner.startWrite = (o: number, d: Buffer, f: boolean, done: BackstoreCompletion) => later(done, () => startWrite.call(inner, o, d, f, done));
    const g = guardBackstore(inner, c.logger);
    const told = (start: (done: BackstoreCompletion) => boolean) =>
      new Promise<unknown>((resolve) => {
        try {
          if (start({ backstoreDone: resolve })) resolve('now');
        } catch (e) {
          resolve(e);
        }
      });
    expect(await told((d) => g.startWrite!(0, Buffer.alloc(512, 1), false, d))).toBe('now');
    failure = new BackstoreError('io', 'EIO: i/o error', 'EIO');
    for (let i = 0; i < 3; i++) expect(await told((d) => g.startRead!(0, 512, Buffer.alloc(512), d))).toBe(failure);
    throwAtOnce = true;
    failure = new BackstoreError('nospace', 'ENOSPC', 'ENOSPC');
    expect(await told((d) => g.startWrite!(0, Buffer.alloc(512), false, d))).toBe(failure);
    expect(c.records).toHaveLength(2);
    expect(c.records[0]!.msg).toContain('check the disk');
    expect(c.records[1]!.msg).toContain('free space or grow it');
    expect([...g.failures]).toEqual(['io', 'nospace']);
    failure = undefined;
    const into = Buffer.alloc(512);
    expect(await told((d) => g.startRead!(0, 512, into, d))).toBe('now');
    expect(into.every((v) => v === 1)).toBe(true);
    expect(g.failures.size).toBe(0);
    expect(c.records[2]).toMatchObject({ level: 30, backstore: 'm2', after: ['io', 'nospace'] });
  });

  it('relays lendRead and lendWrite when the store has them: the stored bytes as lent, failures logged once per kind', async () => {
    const c = capture();
    const plain = guardBackstore(new MemoryStore({ type: 'memory', name: 'p', size: 1 << 20 }), c.logger);
    expect(plain.lendRead).toBeUndefined();
    expect(plain.lendWrite).toBeUndefined();
    const inner = new MemoryBackstore({ name: 'm3', size: 1 << 20 });
    await inner.write(4096, Buffer.alloc(512, 3), false);
    let failure: BackstoreError | undefined;
    const { lendRead } = inner;
    inner.lendRead = (o: number, l: number) => {
      if (failure) throw failure;
      return lendRead.call(inner, o, l);
    };
    const g = guardBackstore(inner, c.logger);
    const loan = g.lendRead!(4096, 512)!;
    expect(loan.data.every((v) => v === 3)).toBe(true);
    await g.write(4096, Buffer.alloc(512, 4), false);
    expect(loan.data.every((v) => v === 3)).toBe(true); // still lent: the write went to a copy
    loan.release();
    g.lendWrite!(4096, 512)!.fill(5);
    expect((await g.read(4096, 512)).every((v) => v === 5)).toBe(true);
    failure = new BackstoreError('gone', 'device removed');
    for (let i = 0; i < 2; i++) expect(() => g.lendRead!(0, 512)).toThrow(failure);
    expect(c.records).toHaveLength(1);
    expect(c.records[0]!.msg).toContain('restore it');
    expect([...g.failures]).toEqual(['gone']);
    const ro = guardBackstore(new MemoryBackstore({ name: 'ro', size: 1 << 20, readOnly: true }), c.logger);
    for (let i = 0; i < 2; i++) expect(() => ro.lendWrite!(0, 512)).toThrow(BackstoreError);
    expect(c.records).toHaveLength(2); // once for this store's kind of failure
    expect(c.records[1]!.msg).toContain('mark the backstore readOnly');
  });

  it('passes the description of the store through: physical block size and O_DIRECT alignment', () => {
    const c = capture();
    const allocate = (n: number) => Buffer.alloc(n);
    const inner = Object.assign(new MemoryStore({ type: 'file', name: 'd1', path: '/srv/d1.img', size: 1 << 20 }), {
      physicalBlockSize: 4096,
      alignedBuffers: { alignment: 4096, allocate },
    });
    const g = guardBackstore(inner, c.logger);
    // The core's READ CAPACITY(16) LBPPBE default and the buffer pool's alignment read these.
    expect(g.physicalBlockSize).toBe(4096);
    expect(g.alignedBuffers).toEqual({ alignment: 4096, allocate });
    expect(guardBackstore(new MemoryStore({ type: 'memory', name: 'm1', size: 1 << 20 }), c.logger).alignedBuffers).toBeUndefined();
  });

  it('is the only one to log a failure the core also sees (once, not once per layer)', async () => {
    const c = capture();
    const inner = new MemoryStore({ type: 'memory', name: 'm0', size: 1 << 20 });
    const core = new ScsiCore({ logger: c.logger, reservations: false });
    const lu = core.addLogicalUnit({ id: 'm0', backstore: guardBackstore(inner, c.logger), serial: 'M0' });
    const target = core.createTarget({ name: 'iqn.2026-11.org.vtgt:t' });
    const port = target.addPort({ name: 'iqn.2026-11.org.vtgt:t,t,0x0001' });
    target.luns.set(0, lu);
    const fab = new LoopbackFabric(core.openNexus({ target, targetPort: port, initiator: loopbackInitiator('iqn.2026-11.org.vtgt:i', '0x000000000001') }));
    const read = () => fab.submit({ lun: 0, cdb: [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], expectedLength: 512 });
    await read(); // the power-on unit attention
    inner.failWith = new BackstoreError('io', 'EIO: i/o error', 'EIO');
    for (let i = 0; i < 3; i++) expect((await read()).status).toBe(0x02);
    const errors = c.records.filter((r) => r.level === 50);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.msg).toContain('check the disk');
    inner.failWith = undefined;
    expect((await read()).status).toBe(0);
    expect(c.records.filter((r) => String(r.msg).includes('works again'))).toHaveLength(1);
  });
});
