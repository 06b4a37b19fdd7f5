// The service assembled in-process on a stand-in platform (fake core/iSCSI, memory stores): config
// file handling, the control socket, CLI commands and their exit codes, reload and graceful stop.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection, createServer } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../src/cli/program.js';
import { parseConfig } from '../src/service/config/schema.js';
import { DEFAULT_BUSY_POLL_MICROS } from '../src/service/config/types.js';
import { controlRequest } from '../src/service/control/client.js';
import { serve, type RunningService } from '../src/service/service.js';
import { fakePlatform, type FakePlatform } from '../src/service/testing/fake-platform.js';

// Reloads set the level from the file, so silence the destination rather than the level.
const silent = pino({ level: 'info' }, { write: () => undefined });
let dir: string;
let svc: RunningService;
let plat: FakePlatform;
const lines: string[] = [];
const T = 'iqn.2026-11.org.vtgt:default';

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(['--data', dir, ...args], { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'vtgt-svc-'));
  plat = fakePlatform();
  svc = await serve({ dataDir: dir, portals: [{ host: '127.0.0.1', port: 0 }], logger: silent, platform: plat, out: (l) => lines.push(l) });
});
afterAll(async () => {
  await svc?.stop('test end');
  rmSync(dir, { recursive: true, force: true });
});

describe('vtgt serve (stand-in platform)', () => {
  it('starts on the embedded default and prints the bound portal', () => {
    const listen = lines.find((l) => l.startsWith('vtgt: listening on '));
    expect(listen).toMatch(/^vtgt: listening on iscsi:\/\/127\.0\.0\.1:(\d+)$/);
    const port = Number(/:(\d+)$/.exec(listen!)![1]);
    expect(port).toBeGreaterThan(0);
    expect(plat.iscsi.servers.has(`127.0.0.1:${port}`)).toBe(true);
    expect(lines).toContain('vtgt: ready');
    expect(lines.some((l) => l.includes(`iscsi-inq iscsi://127.0.0.1:${port}/${T}/0`))).toBe(true);
    // Default config written; the image path handed to the backstore lives in the data directory.
    const cfg = parseConfig(join(dir, 'vtgt.yaml'), readFileSync(join(dir, 'vtgt.yaml'), 'utf8'));
    expect(cfg.ok && cfg.config.targets[0]!.name).toBe(T);
    expect(plat.stores[0]!.spec).toMatchObject({ type: 'file', path: join(dir, 'disk0.img'), size: 1024 ** 3 });
  });

  it('keeps the control socket private to its owner', () => {
    expect(statSync(join(dir, 'vtgt.sock')).mode & 0o777).toBe(0o600);
  });

  it('refuses a second service on the same data directory', async () => {
    const second = fakePlatform();
    await expect(serve({ dataDir: dir, portals: [{ host: '127.0.0.1', port: 0 }], logger: silent, platform: second, out: () => undefined })).rejects.toThrow(
      /another vtgt is already running with data directory/,
    );
    expect(second.stores).toHaveLength(0); // refused before opening any image
    // The first one still answers.
    expect(await controlRequest(join(dir, 'vtgt.sock'), 'ping')).toEqual({ pid: process.pid });
  });

  it('hot-adds and removes a LUN; the target LUN map changes in place', async () => {
    const target = plat.core.targets.get(T)!;
    let mapChanges = 0;
    const off = target.luns.onChange(() => mapChanges++);
    const add = await cli('lun', 'create', T, '--memory', '64MiB', '--name', 'scratch');
    expect(add).toMatchObject({ code: 0 });
    expect(add.out).toContain('mapped LUN 1 to scratch');
    expect(target.luns.lunNumbers()).toEqual([0, 1]);
    expect(mapChanges).toBe(1);
    expect(plat.iscsi.log.filter((l) => l === `update-target ${T}`)).toHaveLength(0);

    const del = await cli('lun', 'delete', T, '1');
    expect(del.code).toBe(0);
    expect(del.out).toContain('backstore scratch closed');
    expect(target.luns.lunNumbers()).toEqual([0]);
    const scratch = plat.stores.find((s) => s.name === 'scratch')!;
    expect(scratch.closed).toBe(true);
    expect(scratch.flushes).toBeGreaterThan(0);
    expect(plat.core.log).toContain('remove-lu scratch');
    off();
  });

  it('creates an O_DIRECT backstore with the device window asked for, and refuses one without --direct', async () => {
    const made = await cli('backstore', 'create', 'dw0', '--type', 'file', '--path', 'dw0.img', '--size', '16MiB', '--direct', '--device-window', '2MiB');
    expect(made).toMatchObject({ code: 0 });
    expect(plat.stores.find((s) => s.name === 'dw0')!.spec).toMatchObject({ direct: true, deviceWindowBytes: 2 << 20 });
    // What `vtgt config save` would write keeps it.
    const shown = parseConfig('/x/vtgt.yaml', (await cli('config', 'show')).out);
    expect(shown.ok && shown.config.backstores.find((b) => b.name === 'dw0')?.deviceWindowBytes).toBe(2 << 20);
    const refused = await cli('backstore', 'create', 'dw1', '--type', 'file', '--path', 'dw1.img', '--size', '16MiB', '--device-window', '2MiB');
    expect(refused.code).not.toBe(0);
    expect(refused.err).toContain('--device-window applies to O_DIRECT backstores only');
    expect((await cli('backstore', 'delete', 'dw0')).code).toBe(0);
  });

  it('applies concurrent changes from several clients without losing any', async () => {
    const sock = join(dir, 'vtgt.sock');
    const names = ['c0', 'c1', 'c2', 'c3', 'c4'];
    await Promise.all(names.map((n) => controlRequest(sock, 'lun.create', { target: T, type: 'null', size: '1MiB', name: n })));
    const luns = (await controlRequest(sock, 'lun.list', { target: T })) as Array<{ lun: number; backstore: string }>;
    expect(luns.map((l) => l.backstore).sort()).toEqual([...names, 'disk0']);
    expect(new Set(luns.map((l) => l.lun)).size).toBe(6);
    await Promise.all(luns.filter((l) => l.backstore !== 'disk0').map((l) => controlRequest(sock, 'lun.delete', { target: T, lun: l.lun })));
    expect(plat.core.targets.get(T)!.luns.lunNumbers()).toEqual([0]);
  });

  it('maps LUNs per initiator ACL and passes CHAP accounts to the iSCSI server', async () => {
    const ini = 'iqn.1994-05.com.redhat:client1';
    expect((await cli('account', 'create', 'c1', '--user', 'client1', '--secret', 'a-long-enough-secret')).code).toBe(0);
    expect((await cli('acl', 'create', T, ini, '--chap', 'c1')).code).toBe(0);
    expect((await cli('lun', 'create', T, '--initiator', ini, '--null', '1GiB', '--lun', '7')).code).toBe(0);
    const spec = plat.iscsi.targets.get(T)!;
    expect(spec.acls).toHaveLength(1);
    expect(spec.acls![0]).toMatchObject({ initiator: ini, chap: { user: 'client1', secret: 'a-long-enough-secret' } });
    expect(spec.acls![0]!.lunMap!.lunNumbers()).toEqual([0, 7]);
    const show = JSON.parse((await cli('show', '--json')).out);
    expect(show.targets[0].acls[0]).toMatchObject({ initiator: ini, chap: 'c1' });
    expect(show.accounts).toEqual([{ name: 'c1', user: 'client1' }]);
    const tree = (await cli('show')).out;
    expect(tree).toContain(`${T}  auth: ACL`);
    expect(tree).toContain('lun7 -> null');
    // Target-wide and discovery CHAP.
    expect((await cli('target', 'auth', T, '--chap', 'c1')).code).toBe(0);
    expect(plat.iscsi.targets.get(T)!.chap).toEqual({ user: 'client1', secret: 'a-long-enough-secret' });
    expect((await cli('discovery', 'auth', '--chap', 'c1')).code).toBe(0);
    expect(plat.iscsi.discovery).toEqual({ chap: { user: 'client1', secret: 'a-long-enough-secret' }, mutual: undefined });
    expect((await cli('discovery', 'auth', '--mutual-chap', 'c1')).code).toBe(2);
    expect((await cli('target', 'auth', T, '--chap', 'ghost')).code).toBe(1);
    expect((await cli('target', 'auth', T)).code).toBe(0);
    expect(plat.iscsi.targets.get(T)!.chap).toBeUndefined();
    expect((await cli('discovery', 'auth')).code).toBe(0);
    expect(plat.iscsi.discovery).toEqual({ chap: undefined, mutual: undefined });
    // The account list never shows the secret.
    expect((await cli('account', 'list')).out).not.toContain('a-long-enough-secret');
  });

  it('answers with exit code 2 for usage errors and 1 for failed operations', async () => {
    expect((await cli('lun', 'create', T)).code).toBe(2); // no storage given
    expect((await cli('lun', 'create', T, '--lun', 'x', '--memory', '1MiB')).code).toBe(2);
    const bogus = await cli('frobnicate');
    expect(bogus.code).toBe(2);
    expect(bogus.err).toContain("unknown command 'frobnicate'");
    const missing = await cli('lun', 'delete', T, '42');
    expect(missing).toMatchObject({ code: 1 });
    expect(missing.err).toContain(`${T} has no LUN 42`);
    const dup = await cli('target', 'create', T);
    expect(dup.code).toBe(1);
    expect(dup.err).toContain('already exists');
    const badName = await cli('target', 'create', 'not-an-iqn');
    expect(badName.code).toBe(2);
    expect(badName.err).toContain('is not an iSCSI name');
    const busy = await cli('account', 'delete', 'c1');
    expect(busy.err).toContain('account c1 is used by');
    expect((await cli('lun', 'delete', '--help')).code).toBe(0);
    const gone = await runCli(['--data', join(dir, 'nope'), 'show'], { out: () => undefined, err: () => undefined });
    expect(gone).toBe(1);
  });

  it('answers malformed control requests with an error and keeps serving', async () => {
    const sock = createConnection(join(dir, 'vtgt.sock'));
    const answers: string[] = [];
    let buf = '';
    sock.on('data', (c) => {
      buf += c.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        answers.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    await new Promise((r) => sock.once('connect', r));
    sock.write('{not json\n[1,2]\n{"id":7,"op":"nope.nope"}\n{"id":8,"op":"lun.create","args":{"target":5}}\n{"id":9,"op":"ping"}\n');
    for (let i = 0; i < 100 && answers.length < 5; i++) await new Promise((r) => setTimeout(r, 10));
    sock.destroy();
    const parsed = answers.map((a) => JSON.parse(a) as { id: number; ok: boolean; error?: { code: string; message: string } });
    expect(parsed.map((p) => [p.id, p.ok, p.error?.code])).toEqual([
      [0, false, 'usage'],
      [0, false, 'usage'],
      [7, false, 'usage'],
      [8, false, 'usage'],
      [9, true, undefined],
    ]);
    expect(parsed[3]!.error!.message).toBe('argument "target" must be a string');
  });

  it('adds and removes portals', async () => {
    const r = await cli('portal', 'create', '127.0.0.1:0');
    expect(r.code).toBe(0);
    const list = JSON.parse((await cli('portal', 'list', '--json')).out) as Array<{ listening: string }>;
    expect(list).toHaveLength(2);
    const second = list[1]!.listening;
    expect((await cli('portal', 'delete', second)).code).toBe(0);
    expect(JSON.parse((await cli('portal', 'list', '--json')).out)).toHaveLength(1);
  });

  it('deletes exactly the "port 0" portal named by its bound address, whichever of several it is', async () => {
    const listening = async () => (JSON.parse((await cli('portal', 'list', '--json')).out) as Array<{ listening: string }>).map((p) => p.listening);
    const before = await listening();
    expect((await cli('portal', 'create', '127.0.0.1:0')).code).toBe(0);
    expect((await cli('portal', 'create', '127.0.0.1:0')).code).toBe(0);
    const three = await listening();
    expect(three).toHaveLength(before.length + 2);
    for (const victim of [three[0]!, three[1]!]) {
      const others = (await listening()).filter((a) => a !== victim);
      expect((await cli('portal', 'delete', victim)).code).toBe(0);
      // The others keep listening on the same ports (their sessions stay); only the victim closed.
      expect((await listening()).sort()).toEqual(others.sort());
      expect(plat.iscsi.servers.has(victim)).toBe(false);
      for (const a of others) expect(plat.iscsi.servers.has(a)).toBe(true);
    }
  });

  it('rolls a failed change back as a whole (a busy port)', async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    const port = (busy.address() as { port: number }).port;
    try {
      const r = await cli('portal', 'create', `127.0.0.1:${port}`);
      expect(r.code).toBe(1);
      expect(r.err).toContain(`cannot listen on iSCSI portal 127.0.0.1:${port}`);
      expect(r.err).toContain('another process listens there');
      // A file that adds a backstore and a target the iSCSI layer refuses: neither is left running.
      const alt = join(dir, 'alt.yaml');
      const yaml = (JSON.parse((await cli('config', 'show', '--json')).out) as { yaml: string }).yaml
        .replace('backstores:\n', 'backstores:\n  - name: extra\n    type: memory\n    size: 1MiB\n')
        .replace('targets:\n', 'targets:\n  - name: iqn.2026-11.org.vtgt:rollback\n    luns: [{lun: 0, backstore: extra}]\n');
      writeFileSync(alt, yaml);
      plat.iscsi.refuse = 'iqn.2026-11.org.vtgt:rollback';
      const load = await cli('config', 'load', alt);
      plat.iscsi.refuse = undefined;
      expect(load.code).toBe(1);
      expect(load.err).toContain('refused by the test');
      expect(plat.iscsi.targets.has('iqn.2026-11.org.vtgt:rollback')).toBe(false);
      expect(plat.core.targets.has('iqn.2026-11.org.vtgt:rollback')).toBe(false);
      expect(plat.core.lus.has('extra')).toBe(false);
      expect(plat.stores.find((x) => x.name === 'extra')!.closed).toBe(true);
      expect(JSON.parse((await cli('target', 'list', '--json')).out).map((t: { name: string }) => t.name)).toEqual([T]);
      expect(JSON.parse((await cli('portal', 'list', '--json')).out)).toHaveLength(1);
    } finally {
      busy.close();
    }
  });

  it('saves atomically and reloads only what changed; an invalid file is rejected', async () => {
    const save = await cli('config', 'save');
    expect(save.code).toBe(0);
    const file = join(dir, 'vtgt.yaml');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    expect(text).toContain('initiator: iqn.1994-05.com.redhat:client1');
    // The --portal override of this run is not written over the file's portals.
    expect(text).toContain('- 127.0.0.1:3260');
    expect(text).not.toContain('127.0.0.1:0');

    // Add a second target by editing the file, then reload (what SIGHUP does).
    const before = plat.iscsi.log.length;
    writeFileSync(file, `${text}\n`.replace('targets:\n', 'targets:\n  - name: iqn.2026-11.org.vtgt:second\n    luns: [{lun: 0, backstore: disk0}]\n'));
    const dry = await cli('config', 'load', '--dry-run');
    expect(dry.code).toBe(0);
    expect(dry.out).toContain('would apply (dry run, nothing changed):\nadd target iqn.2026-11.org.vtgt:second');
    expect(plat.iscsi.targets.has('iqn.2026-11.org.vtgt:second')).toBe(false);
    const changes = await svc.reload();
    expect(changes).toContain('added target iqn.2026-11.org.vtgt:second');
    const after = plat.iscsi.log.slice(before);
    expect(after).toContain('add-target iqn.2026-11.org.vtgt:second');
    expect(after.some((l) => l.includes(T))).toBe(false); // the default target's sessions are untouched

    // A different creation size for an existing image is not a reason to reopen it (that is `resize`).
    const opened = plat.stores.length;
    writeFileSync(file, readFileSync(file, 'utf8').replace('size: 1GiB', 'size: 2GiB'));
    expect((await svc.reload()).filter((c) => c.includes('disk0'))).toEqual([]);
    expect(plat.stores.length).toBe(opened);
    // ... but a real change (read-only) is: the LU is drained and replaced.
    writeFileSync(file, readFileSync(file, 'utf8').replace('cacheMode: writeback', 'cacheMode: writeback\n    readOnly: true'));
    expect(await svc.reload()).toContain(`replaced file ${join(dir, 'disk0.img')}`);
    expect(plat.stores.at(-1)!.readOnly).toBe(true);

    // Busy polling: the default applied at start, a change applied by a reload, nothing else reopened.
    expect(plat.busyPoll[0]).toBe(DEFAULT_BUSY_POLL_MICROS);
    const storesBefore = plat.stores.length;
    writeFileSync(file, `${readFileSync(file, 'utf8')}performance:\n  busyPollMicros: 0\n`);
    expect(await svc.reload()).toEqual(['busy polling off']);
    expect(plat.busyPoll.at(-1)).toBe(0);
    expect(plat.stores.length).toBe(storesBefore);
    expect(readFileSync(file, 'utf8')).toContain('busyPollMicros: 0');

    writeFileSync(file, 'targets:\n  - name: iqn.2026-11.org.vtgt:x\n    luns: [{lun: 0, backstore: missing}]\n');
    const load = await cli('config', 'load');
    expect(load.code).toBe(1);
    expect(load.err).toContain(`${file}:3:32: targets[0].luns[0].backstore: no backstore named "missing"`);
    expect(load.err).toContain('running configuration was kept');
    expect(plat.iscsi.targets.has('iqn.2026-11.org.vtgt:second')).toBe(true);
  });

  it('stops gracefully: portals closed, logout requested, stores flushed and closed', async () => {
    const code = await svc.stop('test');
    expect(code).toBe(0);
    expect(plat.iscsi.loggedOut).toBe(true);
    expect(plat.iscsi.closed).toBe(true);
    expect(plat.iscsi.servers.size).toBe(0);
    const disk0 = plat.stores.find((s) => s.name === 'disk0' && !s.closed);
    expect(disk0).toBeUndefined();
    expect(plat.stores.filter((s) => s.name === 'disk0').every((s) => s.flushes > 0)).toBe(true);
    expect(() => statSync(join(dir, 'vtgt.sock'))).toThrow();
  });
});
