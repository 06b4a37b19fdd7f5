import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SimXenClient } from '../src/xen/sim/client.js';
import { simXenDaemon } from './helpers/xen-daemon.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const daemon = () => simXenDaemon(cleanups, 'vtgt-xen-evt-');

const settle = () => new Promise((r) => setTimeout(r, 50));

describe('simulated hypervisor: event channels', () => {
  it('delivers a notification once, holds further ones while the port is masked, and delivers on unmask', async () => {
    const { sock, srv } = await daemon();
    srv.createDomain(3);
    const dom0 = await SimXenClient.connect(sock, 0);
    const guest = await SimXenClient.connect(sock, 3);
    cleanups.push(() => guest.close(), () => dom0.close());
    let guestEvents = 0;
    let dom0Events = 0;
    const gPort = await guest.allocUnbound(0, () => guestEvents++);
    const dPort = await dom0.bindInterdomain(3, gPort, () => dom0Events++);
    dom0.notify(dPort);
    await settle();
    expect(guestEvents).toBe(1);
    dom0.notify(dPort);
    dom0.notify(dPort);
    await settle();
    expect(guestEvents).toBe(1); // masked since the first delivery
    guest.unmask(gPort);
    await settle();
    expect(guestEvents).toBe(2); // the pending one, coalesced
    expect(srv.coalescedEvents).toBe(1);
    guest.notify(gPort);
    await settle();
    expect(dom0Events).toBe(1);
  });

  it('answers posted notify/unmask (no id) with nothing, even when refused, and requests with an id as before', async () => {
    const { sock, srv } = await daemon();
    const token = readFileSync(srv.createDomain(4), 'utf8').trim();
    const lines: string[] = [];
    const s = connect(sock);
    cleanups.push(() => s.destroy());
    s.setEncoding('utf8');
    let buf = '';
    s.on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    await new Promise<void>((r) => s.once('connect', () => r()));
    s.write(`${JSON.stringify({ id: 1, op: 'hello', domid: 4, token })}\n`);
    s.write(`${JSON.stringify({ op: 'ev.notify', port: 99 })}\n`);
    s.write(`${JSON.stringify({ op: 'ev.unmask', port: 99 })}\n`);
    s.write(`${JSON.stringify({ id: 2, op: 'ev.notify', port: 99 })}\n`);
    await settle();
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      { id: 1, ok: true },
      { id: 2, ok: false, code: 'EINVAL', message: 'port 99 is not yours' },
    ]);
  });
});
