import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { listenTcp, type IscsiTransport, type PortalListener } from '../src/iscsi/tcp.js';

// The TCP transport sizes each socket read from what the protocol says it still needs: small reads
// while PDUs are small (so a burst of commands is answered in slices), large ones inside a large PDU.
describe('iSCSI TCP transport read sizes', () => {
  let listener: PortalListener | undefined;
  let client: Socket | undefined;
  afterEach(async () => {
    client?.destroy();
    await listener?.close();
  });

  const written = (s: Socket, b: Buffer) => new Promise<void>((res, rej) => s.write(b, (e) => (e ? rej(e) : res())));
  const settle = () => new Promise((r) => setTimeout(r, 100));

  it('reads at most 16 KiB while no large PDU is pending, more inside one', async () => {
    let transport: IscsiTransport | undefined;
    const accepted = new Promise<void>((res) => {
      void listenTcp('127.0.0.1', 0, (t) => {
        transport = t;
        res();
      }).then((l) => {
        listener = l;
        client = connect(l.port, '127.0.0.1');
      });
    });
    await accepted;
    const t = transport!;
    expect(t.ephemeralChunks).toBe(true);
    let demand = 0;
    t.setReadDemand?.(() => demand);
    const sizes: number[] = [];
    let bytes = 0;
    const pattern = (n: number, seed: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff));
    const received: Buffer[] = [];
    t.start(
      (chunk) => {
        sizes.push(chunk.length);
        bytes += chunk.length;
        received.push(Buffer.from(chunk));
      },
      () => undefined,
    );

    // Queue 200 KiB in the kernel before reading, so each read could take far more than it asks for;
    // answers the largest read and checks every byte arrived in order.
    const deliver = async (seed: number): Promise<number> => {
      sizes.length = 0;
      received.length = 0;
      bytes = 0;
      t.pauseReading();
      const sent = pattern(200 * 1024, seed);
      await written(client!, sent);
      await settle();
      t.resumeReading();
      while (bytes < sent.length) await settle();
      expect(Buffer.concat(received).equals(sent)).toBe(true);
      return Math.max(...sizes);
    };
    expect(await deliver(1)).toBeLessThanOrEqual(16 * 1024);
    // The protocol now waits for a large data segment: the next reads take what is there.
    demand = 1 << 20;
    expect(await deliver(2)).toBeGreaterThan(16 * 1024);
  });
});
