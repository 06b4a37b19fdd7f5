import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SimXenServer } from '../../src/xen/sim/server.js';

/** A simulated Xen hypervisor daemon listening in a fresh directory; `cleanups` closes and removes both. */
export async function simXenDaemon(cleanups: Array<() => unknown>, prefix: string): Promise<{ sock: string; srv: SimXenServer }> {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const sock = join(dir, 'xen.sock');
  const srv = new SimXenServer();
  await srv.listen(sock);
  cleanups.push(() => srv.close());
  return { sock, srv };
}
