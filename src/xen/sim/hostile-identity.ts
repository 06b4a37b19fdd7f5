/**
 * Identity attacks of the hostile domU: a guest process holding only its own credential tries to
 * become dom0 or another guest, or to use dom0's privileges. The simulated hypervisor must refuse
 * every one (as Xen would: a domain cannot choose its domid).
 */
import { randomBytes } from 'node:crypto';
import { SimXenClient } from './client.js';
import type { HostileResult } from './hostile.js';

export async function runIdentityAttacks(socket: string, domid: number, ownToken: string, client: SimXenClient): Promise<HostileResult> {
  const lines: string[] = [];
  let failures = 0;
  const report = (attack: string, sent: string, answer: string, ok: boolean): void => {
    lines.push(`hostile dom ${domid}: ${attack}: sent ${sent} -> ${answer}${ok ? '' : '  [UNEXPECTED]'}`);
    if (!ok) failures++;
  };
  const other = domid === 1 ? 2 : 1;
  const claim = async (attack: string, sent: string, asDomid: number, token: string): Promise<void> => {
    let answer: string;
    try {
      const c = await SimXenClient.connect(socket, asDomid, { token });
      await c.close();
      answer = `accepted as dom ${asDomid}`;
      report(attack, sent, answer, false);
      return;
    } catch (e) {
      answer = `refused (${(e as Error).message.slice(0, 60)})`;
    }
    report(attack, sent, answer, true);
  };
  await claim('claim dom0', 'hello domid=0 with our own token', 0, ownToken);
  await claim('claim another guest', `hello domid=${other} with our own token`, other, ownToken);
  await claim('forged credential', `hello domid=${domid} with a random token`, domid, randomBytes(32).toString('hex'));
  await claim('no credential', `hello domid=${domid} with an empty token`, domid, '');
  const privileged = async (attack: string, sent: string, op: () => Promise<unknown>): Promise<void> => {
    try {
      await op();
      report(attack, sent, 'accepted', false);
    } catch (e) {
      report(attack, sent, `refused (${(e as Error).message.slice(0, 60)})`, true);
    }
  };
  await privileged('create a domain', 'dom.create domid=4000 from a domU', () => client.createDomain(4000));
  await privileged('destroy a domain', `dom.destroy domid=${other} from a domU`, () => client.destroyDomain(other));
  await privileged('write dom0 xenstore', 'xs.write /local/domain/0/name', () => client.xenstore.write('/local/domain/0/name', 'owned'));
  return { lines, failures };
}
