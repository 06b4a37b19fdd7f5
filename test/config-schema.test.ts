import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/service/config/schema.js';
import { configToYaml } from '../src/service/config/serialize.js';
import { defaultConfig } from '../src/service/config/default.js';
import { formatIssue } from '../src/service/config/yaml-reader.js';
import { parseSize, parseSizeOrZero, parseHostPort, checkIscsiName } from '../src/service/config/values.js';

const dir = mkdtempSync(join(tmpdir(), 'vtgt-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GOOD = `
backstores:
  - name: disk0
    type: file
    path: disk0.img
    size: 1GiB
  - name: scratch
    type: memory
    size: 64MiB
    blockSize: 4096
    serial: SCRATCH-01
    maxAtomicWriteBytes: 1MiB
accounts:
  - name: ops
    user: ops-user
    secret: twelve-chars-or-more
  - name: fromenv
    user: envuser
    secretEnv: VTGT_TEST_SECRET
targets:
  - name: iqn.2026-11.org.vtgt:t1
    luns:
      - { lun: 0, backstore: disk0 }
      - { lun: 3, backstore: scratch }
    acls:
      - initiator: iqn.1994-05.com.redhat:client
        chap: ops
        luns: [{ lun: 0, backstore: scratch }]
    params:
      MaxRecvDataSegmentLength: 65536
      ImmediateData: false
iscsi:
  portals: ["127.0.0.1:3260", "[::1]", { address: "0.0.0.0:3261", tpgt: 2 }]
  discoveryChap: fromenv
metrics:
  listen: 127.0.0.1:9471
log:
  level: debug
performance:
  busyPollMicros: 40
`;

function bad(text: string) {
  const r = parseConfig('/etc/vtgt.yaml', text, { env: {} });
  if (r.ok) throw new Error('expected the config to be rejected');
  return r.issues;
}

describe('config schema', () => {
  it('reads a complete config', () => {
    const r = parseConfig('/x/vtgt.yaml', GOOD, { env: { VTGT_TEST_SECRET: 'from-the-environment' } });
    if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
    const c = r.config;
    expect(c.backstores[0]).toEqual({ name: 'disk0', type: 'file', path: 'disk0.img', size: 1024 ** 3 });
    expect(c.backstores[1]!.blockSize).toBe(4096);
    expect(c.backstores[1]!.serial).toBe('SCRATCH-01');
    expect(c.backstores[1]!.maxAtomicWriteBytes).toBe(1024 * 1024);
    expect(c.targets[0]!.luns).toEqual([{ lun: 0, backstore: 'disk0' }, { lun: 3, backstore: 'scratch' }]);
    expect(c.targets[0]!.acls[0]!.luns).toEqual([{ lun: 0, backstore: 'scratch' }]);
    expect(c.targets[0]!.params).toEqual({ MaxRecvDataSegmentLength: '65536', ImmediateData: 'No' });
    expect(c.iscsi.portals).toEqual([
      { host: '127.0.0.1', port: 3260 },
      { host: '::1', port: 3260 },
      { host: '0.0.0.0', port: 3261, tpgt: 2 },
    ]);
    expect(c.accounts[1]!.secret).toEqual({ kind: 'env', name: 'VTGT_TEST_SECRET' });
    expect(c.metrics.listen).toEqual({ host: '127.0.0.1', port: 9471 });
    expect(c.log.level).toBe('debug');
    expect(c.performance).toEqual({ busyPollMicros: 40 });
  });

  it('bounds the busy-poll window and leaves it at the default when absent', () => {
    const [i] = bad('performance:\n  busyPollMicros: 5000\n');
    expect(i).toMatchObject({ line: 2, path: 'performance.busyPollMicros' });
    expect(i!.message).toContain('microseconds (0 = off)');
    expect(bad('performance:\n  busyPoll: 10\n')[0]!.message).toBe('unknown key "busyPoll"; allowed: busyPollMicros, iscsiThreads');
    const r = parseConfig('/x/vtgt.yaml', 'log:\n  level: warn\n');
    expect(r.ok && r.config.performance).toBeUndefined();
    const off = parseConfig('/x/vtgt.yaml', 'performance: { busyPollMicros: 0 }\n');
    expect(off.ok && off.config.performance).toEqual({ busyPollMicros: 0 });
  });

  it('bounds the connection threads and keeps them apart from the busy-poll window', () => {
    const [i] = bad('performance:\n  iscsiThreads: 17\n');
    expect(i).toMatchObject({ line: 2, path: 'performance.iscsiThreads' });
    expect(i!.message).toContain('connection threads (0 = none)');
    const r = parseConfig('/x/vtgt.yaml', 'performance: { iscsiThreads: 2 }\n');
    expect(r.ok && r.config.performance).toEqual({ iscsiThreads: 2 });
  });

  it('round-trips through save', () => {
    const r = parseConfig('/x/vtgt.yaml', GOOD, { env: { VTGT_TEST_SECRET: 'from-the-environment' } });
    if (!r.ok) throw new Error('bad fixture');
    const again = parseConfig('/x/vtgt.yaml', configToYaml(r.config), { env: { VTGT_TEST_SECRET: 'from-the-environment' } });
    if (!again.ok) throw new Error(again.issues.map(formatIssue).join('\n'));
    expect(again.config).toEqual(r.config);
    const d = parseConfig('/x/vtgt.yaml', configToYaml(defaultConfig()));
    expect(d.ok && d.config).toEqual(defaultConfig());
  });

  it('names line and column of an unknown key with a hint and the allowed keys', () => {
    const issues = bad('backstores:\n  - name: d\n    type: memory\n    sise: 1GiB\n');
    expect(issues).toHaveLength(2);
    const unknown = issues.find((i) => i.message.includes('unknown key'))!;
    expect(unknown).toMatchObject({ file: '/etc/vtgt.yaml', line: 4, col: 5, path: 'backstores[0].sise' });
    expect(unknown.message).toContain('did you mean "size"');
    expect(unknown.message).toContain('allowed: name, type, path, size');
    const missing = issues.find((i) => i.path === 'backstores[0].size')!;
    expect(missing.message).toContain('required for a memory backstore');
    expect(formatIssue(unknown)).toMatch(/^\/etc\/vtgt\.yaml:4:5: backstores\[0\]\.sise: unknown key/);
  });

  it('points at a bad value', () => {
    const [i] = bad('backstores:\n  - name: d\n    type: tape\n');
    expect(i).toMatchObject({ line: 3, col: 11, path: 'backstores[0].type' });
    expect(i!.message).toBe('"tape" is not allowed; allowed: file, block, memory, null');
  });

  it('checks LUN numbers, duplicates and references', () => {
    const issues = bad(
      [
        'backstores: [{name: a, type: null, size: 1MiB}]',
        'targets:',
        '  - name: iqn.2026-11.org.vtgt:x',
        '    luns:',
        '      - {lun: 0, backstore: a}',
        '      - {lun: 0, backstore: b}',
        '      - {lun: 99999, backstore: a}',
        '    chap: nobody',
      ].join('\n'),
    );
    const byPath = Object.fromEntries(issues.map((i) => [`${i.path}@${i.line}:${i.col}`, i.message]));
    expect(byPath['targets[0].luns[1]@6:9']).toContain('duplicate LUN "0"');
    expect(byPath['targets[0].luns[1].backstore@6:29']).toContain('no backstore named "b"; defined backstores: a');
    expect(byPath['targets[0].luns[2].lun@7:15']).toContain('expected a LUN number from 0 to 16383, got 99999');
    expect(byPath['targets[0].chap@8:11']).toContain('no account named "nobody"');
  });

  it('rejects bad target names, portals, sizes and short secrets', () => {
    const issues = bad(
      [
        'targets: [{name: "iqn.2026-11.Org.Bad", luns: []}]',
        'iscsi: {portals: ["localhostt:3260", "127.0.0.1:70000"]}',
        'backstores: [{name: m, type: memory, size: 10 parsecs}]',
        'accounts: [{name: a, user: u, secret: short}]',
      ].join('\n'),
    );
    const msgs = issues.map(formatIssue).join('\n');
    expect(msgs).toContain('/etc/vtgt.yaml:1:18: targets[0].name: "iqn.2026-11.Org.Bad" is not an iSCSI name');
    expect(msgs).toContain('/etc/vtgt.yaml:2:19: iscsi.portals[0]: "localhostt" is not an IP address');
    expect(msgs).toContain('iscsi.portals[1]: port 70000 is out of range');
    expect(msgs).toContain('/etc/vtgt.yaml:3:44: backstores[0].size: expected a size such as 1GiB');
    expect(issues.filter((i) => i.path === 'backstores[0].size')).toHaveLength(1);
    expect(msgs).toContain('accounts[0].secret: the CHAP secret is 5 bytes; use at least 12');
  });

  it('reports missing secret sources and YAML syntax errors with positions', () => {
    const i1 = bad('accounts:\n  - name: a\n    user: u\n    secretEnv: NOT_SET_HERE\n');
    expect(i1[0]).toMatchObject({ line: 4, col: 16, path: 'accounts[0].secretEnv' });
    expect(i1[0]!.message).toContain('NOT_SET_HERE is not set');
    const i2 = bad('targets:\n  - name: [unclosed\n');
    expect(i2[0]!.message).toMatch(/^YAML syntax/);
    expect(i2[0]!.line).toBeGreaterThanOrEqual(2);
    const i3 = bad('- just\n- a list\n');
    expect(i3[0]).toMatchObject({ line: 1, col: 1, path: '' });
    expect(i3[0]!.message).toContain('expected the vtgt configuration mapping');
  });

  it('reads secrets from files relative to the config', () => {
    writeFileSync(join(dir, 'chap.secret'), 'a-file-secret-123\n', { mode: 0o600 });
    const r = parseConfig(join(dir, 'vtgt.yaml'), 'accounts: [{name: f, user: u, secretFile: chap.secret}]\n');
    expect(r.ok).toBe(true);
    const missing = parseConfig(join(dir, 'vtgt.yaml'), 'accounts: [{name: f, user: u, secretFile: nope}]\n');
    expect(!missing.ok && missing.issues[0]!.message).toContain(`cannot read secret file ${join(dir, 'nope')} (ENOENT)`);
  });

  it('checks the physical block size against the block size', () => {
    const ok = parseConfig('/x.yaml', 'backstores: [{name: a, type: memory, size: 1MiB, physicalBlockSize: 4096}]\n');
    expect(ok.ok && ok.config.backstores[0]!.physicalBlockSize).toBe(4096);
    const [i] = bad('backstores: [{name: a, type: memory, size: 1MiB, physicalBlockSize: 1536}]\n');
    expect(formatIssue(i!)).toBe('/etc/vtgt.yaml:1:69: backstores[0].physicalBlockSize: physical block size 1536 must be the block size (512) times a power of two, e.g. 4096');
  });

  it('knows which backstore options fit which type', () => {
    const issues = bad('backstores:\n  - {name: m, type: memory, size: 1MiB, cacheMode: writeback, engine: fs}\n  - {name: f, type: file, path: f.img, engine: turbo}\n');
    expect(issues.map(formatIssue)).toEqual([
      '/etc/vtgt.yaml:2:52: backstores[0].cacheMode: a memory backstore has no write cache; remove cacheMode or use writethrough',
      '/etc/vtgt.yaml:2:71: backstores[0].engine: engine applies to file backstores only, not memory',
      '/etc/vtgt.yaml:3:48: backstores[1].engine: "turbo" is not allowed; allowed: native, native-threadpool, fs',
    ]);
  });

  it('reads an O_DIRECT store\'s device window as a size, 0 as off, and refuses it without direct', () => {
    const r = parseConfig('/x.yaml', 'backstores:\n  - {name: a, type: file, path: a.img, direct: true, deviceWindowBytes: 2MiB}\n  - {name: b, type: block, path: /dev/sdb, direct: true, deviceWindowBytes: 0}\n');
    if (!r.ok) throw new Error(r.issues.map(formatIssue).join('\n'));
    expect(r.config.backstores.map((b) => b.deviceWindowBytes)).toEqual([2 << 20, 0]);
    const again = parseConfig('/x.yaml', configToYaml(r.config));
    expect(again.ok && again.config.backstores.map((b) => b.deviceWindowBytes)).toEqual([2 << 20, 0]);
    const issues = bad('backstores:\n  - {name: a, type: file, path: a.img, deviceWindowBytes: 2MiB}\n  - {name: b, type: file, path: b.img, direct: true, deviceWindowBytes: lots}\n');
    expect(issues.map(formatIssue)).toEqual([
      '/etc/vtgt.yaml:2:59: backstores[0].deviceWindowBytes: deviceWindowBytes applies to O_DIRECT stores only; set direct: true or remove it',
      '/etc/vtgt.yaml:3:73: backstores[1].deviceWindowBytes: expected a size such as 1GiB, 512MiB, 10G or a byte count, got "lots"',
    ]);
  });

  it('accepts an empty file as an empty config', () => {
    const r = parseConfig('/x.yaml', '');
    expect(r.ok && r.config.targets).toEqual([]);
  });
});

describe('config values', () => {
  it('parses sizes, addresses and names', () => {
    expect(parseSize('1GiB')).toBe(1073741824);
    expect(parseSizeOrZero(0)).toBe(0);
    expect(parseSizeOrZero(' 0 ')).toBe(0);
    expect(parseSizeOrZero('2MiB')).toBe(2 << 20);
    expect(parseSizeOrZero('-1')).toMatch(/expected a size/);
    expect(parseSize('10G')).toBe(10 * 1024 ** 3);
    expect(parseSize('1.5MiB')).toBe(1572864);
    expect(typeof parseSize('-1')).toBe('string');
    expect(parseHostPort('[::1]:3261', 3260)).toEqual({ host: '::1', port: 3261 });
    expect(parseHostPort('127.0.0.1', 3260)).toEqual({ host: '127.0.0.1', port: 3260 });
    expect(typeof parseHostPort('127.0.0.1:x', 3260)).toBe('string');
    expect(checkIscsiName('iqn.2026-11.org.vtgt:default')).toBeUndefined();
    expect(checkIscsiName('eui.0123456789ABCDEF')).toBeUndefined();
    expect(checkIscsiName('naa.0123456789abcdef0123456789abcdef')).toBeUndefined();
    expect(checkIscsiName('iqn.26-11.x')).toBeDefined();
  });
});

describe('config change description', () => {
  it('lists added, removed and changed objects', async () => {
    const { describeConfigChange } = await import('../src/service/config/diff.js');
    const a = defaultConfig();
    const b = defaultConfig();
    b.backstores[0]!.readOnly = true;
    b.backstores.push({ name: 'm', type: 'memory', size: 1 << 20 });
    b.targets = [];
    b.iscsi.portals = [{ host: '0.0.0.0', port: 3260 }];
    b.iscsi.nopInterval = 5;
    expect(describeConfigChange(a, b)).toEqual([
      'change backstore disk0: readOnly',
      'add backstore m',
      'remove target iqn.2026-11.org.vtgt:default',
      'remove portal 127.0.0.1:3260',
      'add portal 0.0.0.0:3260',
      'change iscsi.nopInterval',
    ]);
    expect(describeConfigChange(a, defaultConfig())).toEqual([]);
  });
});
