import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { listenTcp, type IscsiTransport, type PortalListener } from '../src/iscsi/tcp.js';

// Ending a connection arms a timer that destroys the socket if the peer never closes its side. The
// timer must go when the socket closes: an armed one kept the whole logged-out connection (socket,
// session, nexus) reachable for its 5 s.
describe('iSCSI TCP transport end', () => {
  let listener: PortalListener | undefined;
  let client: Socket | undefined;
  afterEach(async () => {
    vi.useRealTimers();
    client?.destroy();
    await listener?.close();
  });

  async function accept(peerKeepsItsSide = false): Promise<{ t: IscsiTransport; closed: Promise<void> }> {
    const transport = await new Promise<IscsiTransport>((res) => {
      void listenTcp('127.0.0.1', 0, res).then((l) => {
        listener = l;
        client = connect({ port: l.port, host: '127.0.0.1', allowHalfOpen: peerKeepsItsSide });
      });
    });
    let closedNow!: () => void;
    const closed = new Promise<void>((r) => (closedNow = r));
    transport.start(
      () => undefined,
      () => closedNow(),
    );
    return { t: transport, closed };
  }

  it('clears its give-up timer once the peer closes', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { t, closed } = await accept();
    client!.on('end', () => client!.end());
    const before = vi.getTimerCount();
    t.end();
    expect(vi.getTimerCount()).toBe(before + 1);
    await closed;
    expect(vi.getTimerCount()).toBe(before);
  });

  it('destroys the socket 5 s after ending when the peer never closes', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const { t, closed } = await accept(true);
    const peerSawEnd = new Promise<void>((r) => client!.once('end', r));
    client!.resume();
    let isClosed = false;
    void closed.then(() => (isClosed = true));
    t.end();
    await peerSawEnd;
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    expect(isClosed).toBe(false);
    vi.advanceTimersByTime(4999);
    await new Promise((r) => setImmediate(r));
    expect(isClosed).toBe(false);
    vi.advanceTimersByTime(1);
    await closed;
    expect(vi.getTimerCount()).toBe(0);
  });
});
