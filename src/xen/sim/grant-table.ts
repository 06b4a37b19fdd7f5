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
import { Buffer } from 'node:buffer';
import { GRANT_ENTRY_BYTES, GTF_permit_access, GTF_readonly, GTF_type_mask, GuestMemoryFile, SIM_GRANT_ENTRIES, type FrameSpan } from './guest-memory.js';

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
    const early = this.precheck(mem, ref, offset, length);
    if (early < 0) return early;
    let e: { flags: number; domid: number; frame: number };
    try {
      e = mem!.readGrant(ref);
    } catch {
      return GNTST.general_error;
    }
    return this.verdict(mem!, e.flags, e.domid, e.frame, write);
  }

  /** What can be refused before the entry is read: 0 or a GNTST error code. */
  private precheck(mem: GuestMemoryFile | undefined, ref: number, offset: number, length: number): number {
    if (!mem) return GNTST.bad_domain;
    if (!Number.isInteger(ref) || ref < 0 || ref >= SIM_GRANT_ENTRIES) return GNTST.bad_gntref;
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > XEN_PAGE_SIZE) {
      return GNTST.bad_copy_arg;
    }
    return 0;
  }

  /** The entry's answer to an access: its frame or a GNTST error code (< 0). */
  private verdict(mem: GuestMemoryFile, flags: number, domid: number, frame: number, write: boolean): number {
    if ((flags & GTF_type_mask) !== GTF_permit_access) return GNTST.bad_gntref;
    if (domid !== this.selfDomid) return GNTST.permission_denied;
    if (write && (flags & GTF_readonly) !== 0) return GNTST.permission_denied;
    if (frame >= mem.frames) return GNTST.bad_page;
    return frame;
  }

  /**
   * Grant copy between `buf` (from `bufOffset` on, ranges laid end to end) and the guest's granted
   * pages: 'from-guest' reads the guest (data-out), 'to-guest' writes it and needs a writable grant.
   * Returns one GNTST status per range; a refused range still advances the buffer position so the
   * ranges after it land where the caller expects. Like GNTTABOP_copy, the batch is one operation:
   * the entries are read together and each run of accepted ranges is copied in one access.
   */
  copy(direction: 'from-guest' | 'to-guest', domid: number, ranges: readonly GrantRange[], buf: Buffer, bufOffset: number): number[] {
    const mem = this.memory(domid);
    const toGuest = direction === 'to-guest';
    const n = ranges.length;
    const status: number[] = new Array(n);
    const refs: number[] = [];
    let at = bufOffset;
    for (let i = 0; i < n; i++) {
      const r = ranges[i]!;
      const early = at + r.length > buf.length ? GNTST.bad_copy_arg : this.precheck(mem, r.ref, r.offset, r.length);
      at += Math.max(0, r.length);
      status[i] = early;
      if (early === 0) refs.push(r.ref);
    }
    let entries: Buffer | undefined;
    if (refs.length > 0) {
      entries = Buffer.allocUnsafe(refs.length * GRANT_ENTRY_BYTES);
      try {
        mem!.readGrants(refs, entries);
      } catch {
        entries = undefined;
      }
    }
    let run: FrameSpan[] = [];
    let runFirst = 0;
    let runAt = bufOffset;
    const flush = (): void => {
      if (run.length === 0) return;
      let ok = true;
      try {
        if (toGuest) mem!.writeFrames(run, buf, runAt);
        else mem!.readFrames(run, buf, runAt);
      } catch {
        // The guest shrank or removed its memory file under us: a refused access, not a crash.
        ok = false;
      }
      for (let k = 0; k < run.length; k++) {
        if (ok) {
          this.stats.copies++;
          this.stats.bytes += run[k]!.length;
          status[runFirst + k] = GNTST.okay;
        } else {
          this.stats.refused++;
          status[runFirst + k] = GNTST.general_error;
        }
      }
      run = [];
    };
    at = bufOffset;
    let e = 0;
    for (let i = 0; i < n; i++) {
      const r = ranges[i]!;
      let frame = status[i]!;
      if (frame === 0) {
        const o = e++ * GRANT_ENTRY_BYTES;
        frame = entries ? this.verdict(mem!, entries.readUInt16LE(o), entries.readUInt16LE(o + 2), entries.readUInt32LE(o + 4), toGuest) : GNTST.general_error;
      }
      if (frame < 0) {
        flush();
        this.stats.refused++;
        status[i] = frame;
      } else {
        if (run.length === 0) {
          runFirst = i;
          runAt = at;
        }
        run.push({ frame, offset: r.offset, length: r.length });
      }
      at += Math.max(0, r.length);
    }
    flush();
    return status;
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
