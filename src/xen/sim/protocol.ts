/**
 * Wire format between simulated domains and the simulated hypervisor daemon (`server.ts`): one JSON
 * object per line over a Unix socket. Requests carry an `id` echoed in the reply; `ev` lines are
 * asynchronous events (watch fired, event channel notified). `ev.notify` and `ev.unmask` may be
 * posted without an `id`: they get no reply (like EVTCHNOP_send, whose result a sender ignores), so
 * an event costs one line each way, not three.
 */
export type SimRequest =
  /** Identify as `domid` with the token the daemon issued to it (credentials.ts). */
  | { id: number; op: 'hello'; domid: number; token: string }
  /** dom0 only: create a domain (returns its token file's path) / destroy it. */
  | { id: number; op: 'dom.create'; domid: number }
  | { id: number; op: 'dom.destroy'; domid: number }
  | { id: number; op: 'xs.read'; path: string }
  | { id: number; op: 'xs.write'; path: string; value: string }
  | { id: number; op: 'xs.rm'; path: string }
  | { id: number; op: 'xs.dir'; path: string }
  | { id: number; op: 'xs.watch'; wid: number; path: string }
  | { id: number; op: 'xs.unwatch'; wid: number }
  | { id: number; op: 'xs.txstart' }
  | { id: number; op: 'xs.commit'; generation: number; ops: Array<{ op: 'write'; path: string; value: string } | { op: 'rm'; path: string }> }
  | { id: number; op: 'ev.alloc'; remote: number }
  | { id: number; op: 'ev.bind'; remote: number; remotePort: number }
  | { id?: number; op: 'ev.notify'; port: number }
  | { id?: number; op: 'ev.unmask'; port: number }
  | { id: number; op: 'ev.close'; port: number };

export type SimReply = { id: number; ok: true; result?: unknown } | { id: number; ok: false; code: string; message: string };

export type SimEvent = { ev: 'watch'; wid: number; path: string } | { ev: 'evtchn'; port: number };

/** Longest line either side accepts (a xenstore value is at most 4 KiB; a commit may carry many). */
export const SIM_MAX_LINE = 1 << 20;
