/**
 * Plug-in point for fabric configuration sections other than iSCSI (`ibmvio:`, `xen:` ...). A fabric
 * helper adds one small module to `src/service/fabrics/` and registers it in `./index.ts`; the config
 * loader then accepts its top-level key, and the service starts/reconciles/stops it with the rest.
 */
import type { Logger } from 'pino';
import type { Field, YamlReader } from '../config/yaml-reader.js';
import type { VtgtConfig } from '../config/types.js';

/** What a fabric gets from the running service. Kept structural so fabrics do not import service internals. */
export interface FabricRuntimeContext {
  /** The SCSI core (a `ScsiCore` from src/vscsi/core.ts). */
  core: unknown;
  logger: Logger;
  dataDir: string;
  /** The logical unit backing a configured backstore name, as registered with the core. */
  logicalUnit(backstoreName: string): unknown;
}

export interface FabricSectionModule<T = unknown> {
  /** Top-level key in vtgt.yaml. */
  readonly key: string;
  /** One line for `vtgt --help`/docs: what the section configures. */
  readonly summary: string;
  /**
   * Validate the section, reporting problems through `reader.problem(field, ...)` (never throw).
   * `config` holds the already parsed common sections (backstores, targets) for cross references.
   */
  parse(reader: YamlReader, field: Field, config: Omit<VtgtConfig, 'fabrics'>): T | undefined;
  /** Serialise back for `config save` (plain JSON-able object). */
  toYaml(value: T): unknown;
  /** Bring the running fabric from `prev` to `next` (either may be undefined: start / stop). */
  apply(ctx: FabricRuntimeContext, prev: T | undefined, next: T | undefined): Promise<void>;
  /**
   * Backstores were reopened (config change) while this section stayed the same: their old logical
   * units were drained and removed from every core LUN map; map `ctx.logicalUnit(name)` again where
   * the fabric keeps its own references. Called after the new LUs exist.
   */
  backstoresReplaced?(ctx: FabricRuntimeContext, value: T, names: string[]): Promise<void>;
  /** Lines for `vtgt show` (children of a node named after the key). */
  show?(value: T): ShowNode[];
  /** Graceful shutdown: stop accepting, let guests finish, release resources. */
  shutdown?(ctx: FabricRuntimeContext, value: T): Promise<void>;
}

export interface ShowNode {
  label: string;
  children?: ShowNode[];
}

const modules = new Map<string, FabricSectionModule>();

export function registerFabricSection(mod: FabricSectionModule<any>): void {
  if (modules.has(mod.key)) throw new Error(`fabric section "${mod.key}" registered twice`);
  modules.set(mod.key, mod);
}

export function fabricSections(): FabricSectionModule[] {
  return [...modules.values()];
}

export function fabricSection(key: string): FabricSectionModule | undefined {
  return modules.get(key);
}

const unavailable = new Map<string, string>();

/** A fabric whose module could not be loaded: its section is refused with this reason. */
export function markFabricUnavailable(key: string, reason: string): void {
  unavailable.set(key, reason);
}

export function unavailableFabrics(): ReadonlyMap<string, string> {
  return unavailable;
}
