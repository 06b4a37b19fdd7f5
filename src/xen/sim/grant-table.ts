/**
 * The simulated hypervisor's grant checks: the only path by which the backend process touches a
 * simulated guest's memory. Each access reads the guest's grant entry and enforces what Xen enforces
 * (grant_table.h): the entry permits access, names our domain, is writable for writes, points at an
 * existing frame, and the range stays inside the page. Refusals return GNTST codes, never throw.
 */
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { XEN_PAGE_SIZE } from '../ring.js';
import { ForeignPage, GNTST, GrantError, GrantRange } from '../hypervisor.js';
import { GTF_permit_access, GTF_readonly, GTF_type_mask, GuestMemoryFile, SIM_GRANT_ENTRIES } from './guest-memory.js';

export const memoryFileName = (domid: number): string => `dom${domid}.mem`;

export interface GrantAccessStats {
  copies: number;
  bytes: number;
  refused: number;
  maps: number;
}

export class SimGrantAccess {
  private readonly domains = new Map<number, GuestMemoryFile>();
  readonly stats: GrantAccessStats = { copies: 0, bytes: 0, refused: 0, maps: 0 };

  constructor(
    private readonly dir: string,
    private readonly selfDomid: number,
  ) {}

  private memory(domid: number): GuestMemoryFile | undefined {
    let m = this.domains.get(domid);
    if (m) return m;
    const path = join(this.dir, memoryFileName(domid));
    if (!Number.isInteger(domid) || domid < 0 || !existsSync(path)) return undefined;
    m = GuestMemoryFile.open(path);
    this.domains.set(domid, m);
    return m;
  }

  /** Check grant `ref` of `domid` for an access; returns the frame or a GNTST error code (< 0). */
  private check(mem: GuestMemoryFile | undefined, ref: number, write: boolean, offset: number, length: number): number {
    if (!mem) return GNTST.bad_domain;
    if (!Number.isInteger(ref) || ref < 0 || ref >= SIM_GRANT_ENTRIES) return GNTST.bad_gntref;
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > XEN_PAGE_SIZE) {
      return GNTST.bad_copy_arg;
    }
    let e: { flags: number; domid: number; frame: number };
    try {
      e = mem.readGrant(ref);
    } catch {
      return GNTST.general_error;
    }
    if ((e.flags & GTF_type_mask) !== GTF_permit_access) return GNTST.bad_gntref;
    if (e.domid !== this.selfDomid) return GNTST.permission_denied;
    if (write && (e.flags & GTF_readonly) !== 0) return GNTST.permission_denied;
    if (e.frame >= mem.frames) return GNTST.bad_page;
    return e.frame;
  }

  /**
   * Grant copy between `buf` (from `bufOffset` on, ranges laid end to end) and the guest's granted
   * pages: 'from-guest' reads the guest (data-out), 'to-guest' writes it and needs a writable grant.
   * Returns one GNTST status per range; a refused range still advances the buffer position so the
   * ranges after it land where the caller expects.
   */
  copy(direction: 'from-guest' | 'to-guest', domid: number, ranges: readonly GrantRange[], buf: Buffer, bufOffset: number): number[] {
    const mem = this.memory(domid);
    const toGuest = direction === 'to-guest';
    let at = bufOffset;
    return ranges.map((r) => {
      const frame = at + r.length > buf.length ? GNTST.bad_copy_arg : this.check(mem, r.ref, toGuest, r.offset, r.length);
      const from = at;
      at += Math.max(0, r.length);
      if (frame < 0) {
        this.stats.refused++;
        return frame;
      }
      try {
        if (toGuest) mem!.writeFrame(frame, r.offset, buf, from, r.length);
        else mem!.readFrame(frame, r.offset, buf, from, r.length);
      } catch {
        // The guest shrank or removed its memory file under us: a refused access, not a crash.
        this.stats.refused++;
        return GNTST.general_error;
      }
      this.stats.copies++;
      this.stats.bytes += r.length;
      return GNTST.okay;
    });
  }

  /**
   * Map a whole granted page. As in Xen, the guest cannot take the page back while it is mapped, so
   * the check happens once here.
   */
  map(domid: number, ref: number, writable: boolean): ForeignPage {
    const mem = this.memory(domid);
    const frame = this.check(mem, ref, writable, 0, XEN_PAGE_SIZE);
    if (frame < 0) {
      this.stats.refused++;
      throw new GrantError(frame, `grant ${ref} of dom ${domid} refused (GNTST ${frame})`);
    }
    this.stats.maps++;
    let live = true;
    const m = mem!;
    const alive = (): void => {
      if (!live) throw new Error(`grant ${ref} of dom ${domid} is no longer mapped`);
    };
    return {
      read: (offset, dst, dstOffset = 0, length = dst.length - dstOffset) => {
        alive();
        m.readFrame(frame, offset, dst, dstOffset, length);
      },
      write: (offset, src) => {
        alive();
        if (!writable) throw new Error('read-only mapping');
        m.writeFrame(frame, offset, src, 0, src.length);
      },
      load32: (offset) => {
        alive();
        return m.load32(frame, offset);
      },
      store32: (offset, v) => {
        alive();
        m.store32(frame, offset, v);
      },
      // Every access is a pread/pwrite system call, which already orders memory accesses.
      fence: () => undefined,
      unmap: () => {
        live = false;
      },
    };
  }

  /** Forget a domain's memory file (the domain was destroyed). */
  forget(domid: number): void {
    this.domains.get(domid)?.close();
    this.domains.delete(domid);
  }

  close(): void {
    for (const m of this.domains.values()) m.close();
    this.domains.clear();
  }
}
