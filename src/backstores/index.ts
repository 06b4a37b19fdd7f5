/**
 * createBackstore: from a config-like spec to an open Backstore, with validation errors that name the
 * backstore and the field. Synchronous: files and devices are opened at configuration time.
 */
import type { Logger } from 'pino';
import type { Backstore, CacheMode } from './backstore.js';
import { BlockBackstore } from './block.js';
import { FileBackstore } from './file.js';
import { MemoryBackstore } from './memory.js';
import { NullBackstore } from './null.js';
import type { BackstoreBaseOptions, FdBackstoreOptions, FileIoEngine } from './options.js';

export * from './backstore.js';
export { BlockBackstore } from './block.js';
export { FileBackstore } from './file.js';
export { MemoryBackstore } from './memory.js';
export { NullBackstore } from './null.js';
export type { BackstoreBaseOptions, FdBackstoreOptions, FileIoEngine } from './options.js';

export type BackstoreType = 'file' | 'block' | 'memory' | 'null';

/** The config-level description of any backstore: the union of the per-type options, minus the logger. */
export interface BackstoreSpec extends BackstoreBaseOptions, Partial<Pick<FdBackstoreOptions, 'path' | 'cacheMode' | 'direct' | 'deviceWindowBytes'>> {
  type: BackstoreType;
  /** Bytes. Required for memory and null, and for file when the file does not exist yet. */
  size?: number;
  /** file only: how reads and writes reach the file (default 'native'; see bench/IO-ENGINE.md). */
  engine?: FileIoEngine;
}

export interface CreateBackstoreOptions {
  logger?: Logger;
}

/** A spec that cannot be turned into a backstore; the message names the backstore and the field. */
export class BackstoreSpecError extends Error {
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
    this.name = 'BackstoreSpecError';
  }
}

const TYPES: readonly string[] = ['file', 'block', 'memory', 'null'];
// Typed against BackstoreSpec, so a field added there must be added here (and vice versa) to compile.
const SPEC_FIELDS: Record<keyof BackstoreSpec, true> = {
  type: true,
  name: true,
  path: true,
  size: true,
  blockSize: true,
  readOnly: true,
  cacheMode: true,
  direct: true,
  deviceWindowBytes: true,
  removable: true,
  engine: true,
};
const KNOWN_FIELDS = new Set(Object.keys(SPEC_FIELDS));
/** Largest LUN: LBAs must fit READ CAPACITY 16 and byte offsets must stay exact in a JS number. */
const MAX_SIZE = Number.MAX_SAFE_INTEGER - (Number.MAX_SAFE_INTEGER % 4096);

/** Validate a spec without opening anything. Returns it typed, or throws BackstoreSpecError. */
export function validateBackstoreSpec(input: unknown): BackstoreSpec {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new BackstoreSpecError('backstore spec must be an object');
  }
  const s = input as Record<string, unknown>;
  const name = s.name;
  if (typeof name !== 'string' || name.length === 0 || name.length > 128 || !/^[A-Za-z0-9._:-]+$/.test(name)) {
    throw new BackstoreSpecError(
      `backstore name ${JSON.stringify(name)} is invalid: use 1-128 letters, digits, '.', '_', ':' or '-'`,
      'name',
    );
  }
  const where = `backstore ${name}`;
  for (const k of Object.keys(s)) {
    if (!KNOWN_FIELDS.has(k)) {
      throw new BackstoreSpecError(`${where}: unknown field "${k}" (known: ${[...KNOWN_FIELDS].join(', ')})`, k);
    }
  }
  if (typeof s.type !== 'string' || !TYPES.includes(s.type)) {
    throw new BackstoreSpecError(`${where}: type must be one of ${TYPES.join(', ')}, got ${JSON.stringify(s.type)}`, 'type');
  }
  const type = s.type as BackstoreType;
  const bool = (k: string): boolean | undefined => {
    if (s[k] === undefined) return undefined;
    if (typeof s[k] !== 'boolean') throw new BackstoreSpecError(`${where}: ${k} must be true or false`, k);
    return s[k] as boolean;
  };
  const blockSize = s.blockSize;
  if (blockSize !== undefined && blockSize !== 512 && blockSize !== 4096) {
    throw new BackstoreSpecError(`${where}: blockSize must be 512 or 4096, got ${JSON.stringify(blockSize)}`, 'blockSize');
  }
  const size = s.size;
  if (size !== undefined) {
    if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0 || size > MAX_SIZE) {
      throw new BackstoreSpecError(`${where}: size must be a positive whole number of bytes, got ${JSON.stringify(size)}`, 'size');
    }
    const bs = (blockSize as number | undefined) ?? 512;
    if (size % bs !== 0) {
      throw new BackstoreSpecError(`${where}: size ${size} is not a multiple of the ${bs}-byte block size`, 'size');
    }
  }
  if (s.cacheMode !== undefined && s.cacheMode !== 'writeback' && s.cacheMode !== 'writethrough') {
    throw new BackstoreSpecError(`${where}: cacheMode must be "writeback" or "writethrough"`, 'cacheMode');
  }
  if (s.engine !== undefined) {
    if (type !== 'file') throw new BackstoreSpecError(`${where}: engine applies to file backstores only`, 'engine');
    if (s.engine !== 'native' && s.engine !== 'native-threadpool' && s.engine !== 'fs') {
      throw new BackstoreSpecError(`${where}: engine must be "native", "native-threadpool" or "fs"`, 'engine');
    }
  }
  const window = s.deviceWindowBytes;
  if (window !== undefined) {
    if (typeof window !== 'number' || !Number.isSafeInteger(window) || window < 0) {
      throw new BackstoreSpecError(`${where}: deviceWindowBytes must be a whole number of bytes (0 turns the window off)`, 'deviceWindowBytes');
    }
    if (s.direct !== true) throw new BackstoreSpecError(`${where}: deviceWindowBytes applies to O_DIRECT stores only (direct: true)`, 'deviceWindowBytes');
  }
  const path = s.path;
  if (type === 'file' || type === 'block') {
    if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
      throw new BackstoreSpecError(`${where}: path is required for a ${type} backstore`, 'path');
    }
    if (type === 'block' && size !== undefined) {
      throw new BackstoreSpecError(`${where}: size comes from the device; remove it`, 'size');
    }
  } else {
    if (path !== undefined) throw new BackstoreSpecError(`${where}: a ${type} backstore takes no path`, 'path');
    if (size === undefined) throw new BackstoreSpecError(`${where}: size is required for a ${type} backstore`, 'size');
    if (s.direct !== undefined) throw new BackstoreSpecError(`${where}: direct applies to file and block only`, 'direct');
    if (s.cacheMode === 'writeback') {
      throw new BackstoreSpecError(`${where}: a ${type} backstore has no write cache; cacheMode can only be "writethrough"`, 'cacheMode');
    }
  }
  const spec: BackstoreSpec = { type, name };
  if (path !== undefined) spec.path = path as string;
  if (size !== undefined) spec.size = size as number;
  if (blockSize !== undefined) spec.blockSize = blockSize as 512 | 4096;
  const readOnly = bool('readOnly');
  if (readOnly !== undefined) spec.readOnly = readOnly;
  if (s.cacheMode !== undefined) spec.cacheMode = s.cacheMode as CacheMode;
  const direct = bool('direct');
  if (direct !== undefined) spec.direct = direct;
  if (window !== undefined) spec.deviceWindowBytes = window as number;
  const removable = bool('removable');
  if (removable !== undefined) spec.removable = removable;
  if (s.engine !== undefined) spec.engine = s.engine as FileIoEngine;
  return spec;
}

/**
 * Validate `spec` and open the backstore. Throws BackstoreSpecError for a bad spec and BackstoreError
 * (kind + errno, message naming the file and what to do) when the file or device cannot be used.
 */
export function createBackstore(spec: BackstoreSpec, opts: CreateBackstoreOptions = {}): Backstore {
  const s = validateBackstoreSpec(spec);
  // Backstores log their name under the "backstore" key themselves: the logger is passed as is.
  const logger = opts.logger;
  // validateBackstoreSpec refused whatever does not apply to the type (path on memory, size on block, ...).
  const common = { name: s.name, blockSize: s.blockSize, readOnly: s.readOnly, removable: s.removable };
  switch (s.type) {
    case 'memory':
      return new MemoryBackstore({ ...common, size: s.size as number });
    case 'null':
      return new NullBackstore({ ...common, size: s.size as number });
    case 'file':
      return FileBackstore.open({
        ...common,
        path: s.path as string,
        size: s.size,
        cacheMode: s.cacheMode,
        direct: s.direct,
        deviceWindowBytes: s.deviceWindowBytes,
        engine: s.engine,
        logger,
      });
    case 'block':
      return BlockBackstore.open({
        ...common,
        path: s.path as string,
        cacheMode: s.cacheMode,
        direct: s.direct,
        deviceWindowBytes: s.deviceWindowBytes,
        logger,
      });
  }
}
