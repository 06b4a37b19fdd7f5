import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SimXenClient } from '../src/xen/sim/client.js';
import { SimXenServer } from '../src/xen/sim/server.js';
import { xenAttach, xenDetach } from '../src/xen/toolstack.js';
import { backendPath, frontendPath, XenbusState } from '../src/xen/xenbus-nodes.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A vhost whose backend and frontend both say Connected, with no one left to answer a handshake. */
async function abandonedVhost() {
  const dir = mkdtempSync(join(tmpdir(), 'vtgt-xen-ts-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const srv = new SimXenServer();
  await srv.listen(join(dir, 'xen.sock'));
  cleanups.push(() => srv.close());
  const dom0 = await SimXenClient.connect(join(dir, 'xen.sock'), 0);
  cleanups.push(() => dom0.close());
  const xs = dom0.xenstore;
  await xenAttach({ xs, backendDomid: 0, domid: 5, vhost: 0, luns: [{ pdev: 'disk', vdev: '0:0:0:0' }] });
  const be = backendPath(0, 5, 0);
  const fe = frontendPath(5, 0);
  await xs.write(`${be}/state`, String(XenbusState.Connected));
  await xs.write(`${fe}/state`, String(XenbusState.Connected));
  return { xs, be, fe };
}

describe('xen toolstack detach of a vhost whose guest is gone', () => {
  it('fails after the timeout without force, but still removes the device', async () => {
    const { xs, be, fe } = await abandonedVhost();
    await expect(xenDetach({ xs, backendDomid: 0, domid: 5, vhost: 0, timeoutMs: 150 })).rejects.toThrow(/timed out .* dom 5 vhost 0 to close/);
    expect(await xs.read(`${be}/state`)).toBeUndefined();
    expect(await xs.read(`${fe}/state`)).toBeUndefined();
  });

  it('with force, reports a forced removal instead of an error', async () => {
    const { xs, be, fe } = await abandonedVhost();
    expect(await xenDetach({ xs, backendDomid: 0, domid: 5, vhost: 0, timeoutMs: 150, force: true })).toEqual({ forced: true });
    expect(await xs.read(`${be}/online`)).toBeUndefined();
    expect(await xs.read(`${fe}/backend`)).toBeUndefined();
  });

  it('a vhost no frontend ever used is removed at once, not forced', async () => {
    const { xs, be } = await abandonedVhost();
    await xs.write(`${be}/state`, String(XenbusState.InitWait));
    await xs.write(`${frontendPath(5, 0)}/state`, String(XenbusState.Initialising));
    expect(await xenDetach({ xs, backendDomid: 0, domid: 5, vhost: 0, timeoutMs: 150, force: true })).toEqual({ forced: false });
    expect(await xs.read(`${be}/state`)).toBeUndefined();
  });
});
