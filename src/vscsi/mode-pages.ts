/**
 * Mode pages of a direct-access logical unit (SPC-4 7.5, SBC-3 6.4): their current, changeable and
 * default values and the MODE SELECT parameter-list parser. Saved values are not supported (nothing
 * survives a restart except what the configuration says), so PC=11b and SP=1 are rejected.
 */
import { Buffer } from 'node:buffer';
import type { Backstore } from '../backstores/backstore.js';
import { failure, invalidParamField, type ScsiFailure } from './sense.js';

/** SPC-4 7.5.3 page codes we implement. */
export const ModePage = {
  READ_WRITE_ERROR_RECOVERY: 0x01, // SBC-3 6.4.9
  CACHING: 0x08, // SBC-3 6.4.5
  CONTROL: 0x0a, // SPC-4 7.5.8
  INFORMATIONAL_EXCEPTIONS_CONTROL: 0x1c, // SPC-4 7.5.14
  ALL_PAGES: 0x3f,
} as const;

export const ALL_SUBPAGES = 0xff;

/** SPC-4 7.5.2 page control field. */
export const PageControl = { CURRENT: 0, CHANGEABLE: 1, DEFAULT: 2, SAVED: 3 } as const;

/** The settable state of the mode pages of one LU. */
export interface ModeState {
  /** Control page D_SENSE: report descriptor format sense. */
  dSense: boolean;
  /** Control page SWP: software write protect. */
  swp: boolean;
  /** Control page TAS: tasks aborted for another nexus complete with TASK ABORTED status. */
  tas: boolean;
  /** Informational exceptions control DEXCPT. */
  dexcpt: boolean;
  /** Informational exceptions MRIE (method of reporting). */
  mrie: number;
}

export const defaultModeState = (): ModeState => ({ dSense: false, swp: false, tas: true, dexcpt: true, mrie: 0 });

interface PageDef {
  code: number;
  /** Total page length in bytes including the 2-byte header. */
  length: number;
  build(state: ModeState, backstore: Backstore): Buffer;
  changeable(): Buffer;
  apply(state: ModeState, page: Buffer): void;
}

function page(code: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  b[0] = code;
  b[1] = length - 2;
  return b;
}

const PAGES: readonly PageDef[] = [
  {
    code: ModePage.READ_WRITE_ERROR_RECOVERY,
    length: 12,
    build: () => page(ModePage.READ_WRITE_ERROR_RECOVERY, 12),
    changeable: () => page(ModePage.READ_WRITE_ERROR_RECOVERY, 12),
    apply: () => {},
  },
  {
    code: ModePage.CACHING,
    length: 20,
    build: (_s, bs) => {
      const b = page(ModePage.CACHING, 20);
      // WCE (byte 2 bit 2) tells the initiator whether it must SYNCHRONIZE CACHE: it must be the truth.
      if (bs.cacheMode === 'writeback') b[2]! |= 0x04;
      return b;
    },
    // WCE is fixed by the backstore's cache mode, so nothing here is changeable.
    changeable: () => page(ModePage.CACHING, 20),
    apply: () => {},
  },
  {
    code: ModePage.CONTROL,
    length: 12,
    build: (s) => {
      const b = page(ModePage.CONTROL, 12);
      if (s.dSense) b[2]! |= 0x04;
      b[3] = 0x10; // QUEUE ALGORITHM MODIFIER 1: unrestricted reordering of SIMPLE tasks
      if (s.swp) b[4]! |= 0x08;
      if (s.tas) b[5]! |= 0x40;
      return b;
    },
    changeable: () => {
      const b = page(ModePage.CONTROL, 12);
      b[2] = 0x04; // D_SENSE
      b[4] = 0x08; // SWP
      b[5] = 0x40; // TAS
      return b;
    },
    apply: (s, p) => {
      s.dSense = (p[2]! & 0x04) !== 0;
      s.swp = (p[4]! & 0x08) !== 0;
      s.tas = (p[5]! & 0x40) !== 0;
    },
  },
  {
    code: ModePage.INFORMATIONAL_EXCEPTIONS_CONTROL,
    length: 12,
    build: (s) => {
      const b = page(ModePage.INFORMATIONAL_EXCEPTIONS_CONTROL, 12);
      if (s.dexcpt) b[2]! |= 0x08;
      b[3] = s.mrie & 0x0f;
      return b;
    },
    changeable: () => {
      const b = page(ModePage.INFORMATIONAL_EXCEPTIONS_CONTROL, 12);
      b[2] = 0x08; // DEXCPT
      b[3] = 0x0f; // MRIE
      return b;
    },
    apply: (s, p) => {
      s.dexcpt = (p[2]! & 0x08) !== 0;
      s.mrie = p[3]! & 0x0f;
    },
  },
];

export const supportedPageCodes = (): number[] => PAGES.map((p) => p.code);

/**
 * The pages selected by page code / subpage code for a page control, or undefined when the selection
 * names no page we have (the caller reports INVALID FIELD IN CDB).
 */
export function selectPages(
  pageCode: number,
  subpage: number,
  pc: number,
  state: ModeState,
  backstore: Backstore,
): Buffer[] | undefined {
  if (subpage !== 0 && subpage !== ALL_SUBPAGES) return undefined;
  const defs = pageCode === ModePage.ALL_PAGES ? PAGES : PAGES.filter((p) => p.code === pageCode);
  if (defs.length === 0) return undefined;
  return defs.map((d) => {
    if (pc === PageControl.CHANGEABLE) return d.changeable();
    if (pc === PageControl.DEFAULT) return d.build(defaultModeState(), backstore);
    return d.build(state, backstore);
  });
}

/**
 * Parse and validate the mode pages of a MODE SELECT parameter list starting at `offset` (after the
 * header and block descriptors), and return the new state. Nothing is applied on error.
 */
export function parseModeSelectPages(
  params: Buffer,
  offset: number,
  state: ModeState,
  backstore: Backstore,
): { state: ModeState; changed: boolean } | ScsiFailure {
  const next: ModeState = { ...state };
  let pos = offset;
  while (pos < params.length) {
    if (pos + 2 > params.length) return failure('PARAMETER_LIST_LENGTH_ERROR');
    const b0 = params[pos]!;
    if (b0 & 0x80) return invalidParamField(pos, 7); // PS is reserved in MODE SELECT
    if (b0 & 0x40) return invalidParamField(pos, 6); // no subpages implemented
    const code = b0 & 0x3f;
    const def = PAGES.find((p) => p.code === code);
    if (!def) return invalidParamField(pos, 5);
    const len = params[pos + 1]! + 2;
    if (len !== def.length) return invalidParamField(pos + 1);
    if (pos + len > params.length) return failure('PARAMETER_LIST_LENGTH_ERROR');
    const given = params.subarray(pos, pos + len);
    const current = def.build(next, backstore);
    const mask = def.changeable();
    for (let i = 2; i < len; i++) {
      const diff = (given[i]! ^ current[i]!) & ~mask[i]! & 0xff;
      if (diff) return invalidParamField(pos + i, 31 - Math.clz32(diff));
    }
    def.apply(next, given);
    pos += len;
  }
  const changed = (Object.keys(next) as Array<keyof ModeState>).some((k) => next[k] !== state[k]);
  return { state: next, changed };
}
