// The batch link between the main thread and a connection thread: one message per event-loop turn,
// bytes copied when queued (the sender may reuse its buffer at once) into shared areas that are
// reused once the receiver has released them.
import { MessageChannel } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { BatchSender, bytesOf, copyOf, releaseBatch } from '../src/iscsi/thread-batch.js';
import type { Batch, Bytes } from '../src/iscsi/thread-messages.js';

type Op = { n: number; at?: Bytes };

function receiver(): { sender: BatchSender<Op>; batches: Batch<Op>[]; close: () => void; arrived: (count: number) => Promise<void> } {
  const { port1, port2 } = new MessageChannel();
  const batches: Batch<Op>[] = [];
  let wake: (() => void) | undefined;
  port2.on('message', (b: Batch<Op>) => {
    batches.push(b);
    wake?.();
  });
  return {
    sender: new BatchSender<Op>(port1),
    batches,
    close: () => {
      port1.close();
      port2.close();
    },
    arrived: async (count) => {
      while (batches.length < count) await new Promise<void>((r) => (wake = r));
    },
  };
}

describe('BatchSender', () => {
  it('sends what one turn queued as one message, with its bytes as copied when queued', async () => {
    const r = receiver();
    const scratch = Buffer.alloc(4096, 0xaa);
    const first = r.sender.bytes(scratch);
    r.sender.send({ n: 1, at: first });
    scratch.fill(0x55); // reused at once by the caller: the batch must hold the earlier bytes
    const second = r.sender.bytes(scratch.subarray(0, 100));
    r.sender.send({ n: 2, at: second });
    r.sender.send({ n: 3 });
    await r.arrived(1);
    expect(r.batches).toHaveLength(1);
    const b = r.batches[0]!;
    expect(b.ops.map((o) => o.n)).toEqual([1, 2, 3]);
    expect(bytesOf(b, b.ops[0]!.at!).equals(Buffer.alloc(4096, 0xaa))).toBe(true);
    expect(bytesOf(b, b.ops[1]!.at!).equals(Buffer.alloc(100, 0x55))).toBe(true);

    // The next turn starts a new batch; an area larger than the first grows without losing bytes.
    const big = Buffer.alloc(200 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = i & 0xff;
    const small = r.sender.bytes(Buffer.from('cdb'));
    const large = r.sender.bytes(big);
    r.sender.send({ n: 4, at: small });
    r.sender.send({ n: 5, at: large });
    await r.arrived(2);
    const b2 = r.batches[1]!;
    expect(bytesOf(b2, b2.ops[0]!.at!).toString()).toBe('cdb');
    expect(bytesOf(b2, b2.ops[1]!.at!).equals(big)).toBe(true);

    // Areas are reused only after the receiver released them: a copy taken before survives.
    const kept = copyOf(b, b.ops[0]!.at!);
    expect(r.sender.pooledAreas).toBe(2);
    releaseBatch(b);
    releaseBatch(b2);
    r.sender.send({ n: 6, at: r.sender.bytes(Buffer.alloc(10, 0x11)) });
    await r.arrived(3);
    const b3 = r.batches[2]!;
    expect(r.sender.pooledAreas).toBe(2);
    expect(bytesOf(b3, b3.ops[0]!.at!).equals(Buffer.alloc(10, 0x11))).toBe(true);
    expect(kept.equals(Buffer.alloc(4096, 0xaa))).toBe(true);
    r.close();
  });

  it('sends no byte area for operations without bytes, and nothing for an empty turn', async () => {
    const r = receiver();
    r.sender.flush();
    r.sender.send({ n: 1 });
    await r.arrived(1);
    expect(r.batches[0]!.bytes).toBeNull();
    expect(r.batches[0]!.ops).toEqual([{ n: 1 }]);
    r.close();
  });
});
