/**
 * vtgt.yaml schema: reads a YAML text into a `VtgtConfig`, collecting every problem with its position.
 * The allowed keys listed here are the reference; docs/service.md describes them for people.
 */
import { dirname } from 'node:path';
import { isScalar } from 'yaml';
import { fabricSection, fabricSections, unavailableFabrics } from '../fabrics/index.js';
import { resolveSecret } from './secrets.js';
import {
  LUN_MAX,
  MAX_ISCSI_THREADS,
  type AccountConfig,
  type AclConfig,
  type BackstoreConfig,
  type IscsiConfig,
  type LogLevel,
  type LunConfig,
  type MetricsConfig,
  type PerformanceConfig,
  type PortalConfig,
  type SecretSource,
  type TargetConfig,
  type VtgtConfig,
} from './types.js';
import { checkChapSecret, checkChapUser, checkCidr, checkIscsiName, checkObjectName, parseHostPort, parseSize, parseSizeOrZero } from './values.js';
import { YamlReader, type ConfigIssue, type Field } from './yaml-reader.js';

export const TOP_KEYS = ['backstores', 'targets', 'accounts', 'iscsi', 'metrics', 'log', 'performance'] as const;
const BACKSTORE_KEYS = ['name', 'type', 'path', 'size', 'blockSize', 'readOnly', 'cacheMode', 'direct', 'removable', 'engine', 'serial', 'physicalBlockSize', 'maxAtomicWriteBytes', 'deviceWindowBytes'];
const TARGET_KEYS = ['name', 'tpgt', 'luns', 'acls', 'chap', 'mutualChap', 'params'];
const ACL_KEYS = ['initiator', 'addresses', 'luns', 'chap', 'mutualChap'];
const LUN_KEYS = ['lun', 'backstore'];
const ACCOUNT_KEYS = ['name', 'user', 'secret', 'secretFile', 'secretEnv'];
const ISCSI_KEYS = ['portals', 'discoveryChap', 'discoveryMutualChap', 'nopInterval', 'nopTimeout'];
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];
export const DEFAULT_ISCSI_PORT = 3260;

export interface ParseOptions {
  /** Directory relative secret files are resolved against (default: the config file's directory). */
  baseDir?: string;
  env?: NodeJS.ProcessEnv;
}

export type ParseResult = { ok: true; config: VtgtConfig; warnings: string[] } | { ok: false; issues: ConfigIssue[] };

export function parseConfig(file: string, text: string, opts: ParseOptions = {}): ParseResult {
  const r = new YamlReader(file, text);
  if (r.issues.length > 0) return { ok: false, issues: r.issues };
  const warnings: string[] = [];
  const ctx = { r, baseDir: opts.baseDir ?? dirname(file), env: opts.env ?? process.env, warnings };
  const root = r.root();
  const fabricKeys = fabricSections().map((m) => m.key);
  const broken = unavailableFabrics();
  const top = r.present(root) ? r.mapping(root, [...TOP_KEYS, ...fabricKeys, ...broken.keys()], 'the vtgt configuration mapping') : new Map<string, Field>();
  for (const [key, why] of broken) {
    const f = top?.get(key);
    if (f) r.problemAtKey(f, `the ${key} fabric is not available in this build (${why}); remove the section or rebuild with "npm run build"`);
  }
  const get = (k: string) => r.child(top, root, k);

  const accounts = readList(r, get('accounts'), 'accounts (name, user, secret|secretFile|secretEnv)', (f) => readAccount(ctx, f));
  const backstores = readList(r, get('backstores'), 'backstores (name, type, path, size ...)', (f) => readBackstore(r, f));
  const targets = readList(r, get('targets'), 'targets (name, luns, acls ...)', (f) => readTarget(r, f));
  const iscsi = readIscsi(r, get('iscsi'));
  const metrics = readMetrics(r, get('metrics'));
  const log = readLog(r, get('log'));
  const performance = readPerformance(r, get('performance'));

  unique(r, accounts, (a) => a.v.name, 'account');
  unique(r, backstores, (b) => b.v.name, 'backstore');
  unique(r, targets, (t) => t.v.name, 'target');
  const accountNames = new Set(accounts.map((a) => a.v.name));
  const backstoreNames = new Set(backstores.map((b) => b.v.name));
  const refAccount = (f: Field | undefined, name: string | undefined) => {
    if (f && name !== undefined && !accountNames.has(name)) {
      r.problem(f, `no account named "${name}"; defined accounts: ${[...accountNames].join(', ') || '(none)'}`);
    }
  };
  for (const t of targets) {
    refAccount(t.fields.chap, t.v.chap);
    refAccount(t.fields.mutualChap, t.v.mutualChap);
    checkLuns(r, t.lunFields, backstoreNames);
    for (const a of t.acls) {
      refAccount(a.fields.chap, a.v.chap);
      refAccount(a.fields.mutualChap, a.v.mutualChap);
      if (a.lunFields) checkLuns(r, a.lunFields, backstoreNames);
    }
    unique(r, t.acls, (a) => a.v.initiator, 'ACL for initiator');
  }
  if (iscsi) {
    refAccount(iscsi.fields.discoveryChap, iscsi.v.discoveryChap);
    refAccount(iscsi.fields.discoveryMutualChap, iscsi.v.discoveryMutualChap);
    unique(r, iscsi.portals.filter((p) => p.v.port !== 0), (p) => `${p.v.host}:${p.v.port}`, 'portal'); // port 0: each gets its own
  }

  const common = {
    backstores: backstores.map((b) => b.v),
    targets: targets.map((t) => t.v),
    accounts: accounts.map((a) => a.v),
    iscsi: iscsi?.v ?? { portals: [] },
    metrics,
    log,
    ...(performance ? { performance } : {}),
  };
  const fabrics: Record<string, unknown> = {};
  for (const key of fabricKeys) {
    const f = get(key);
    if (!r.present(f)) continue;
    const v = fabricSection(key)!.parse(r, f, common);
    if (v !== undefined) fabrics[key] = v;
  }
  if (r.issues.length > 0) return { ok: false, issues: r.issues };
  return { ok: true, config: { ...common, fabrics }, warnings };
}

interface Read<T> {
  v: T;
  field: Field;
  fields: Record<string, Field | undefined>;
}

function readList<T>(r: YamlReader, f: Field, what: string, each: (f: Field) => T | undefined): T[] {
  const items = r.sequence(f, what) ?? [];
  const out: T[] = [];
  for (const item of items) {
    const v = each(item);
    if (v !== undefined) out.push(v);
  }
  return out;
}

function unique<T>(r: YamlReader, items: T[], key: (t: T) => string, what: string): void {
  const seen = new Set<string>();
  for (const it of items) {
    const k = key(it);
    if (seen.has(k)) r.problem((it as { field: Field }).field, `duplicate ${what} "${k}"; each must appear once`);
    seen.add(k);
  }
}

function readAccount(ctx: { r: YamlReader; baseDir: string; env: NodeJS.ProcessEnv; warnings: string[] }, f: Field): Read<AccountConfig> | undefined {
  const { r } = ctx;
  const m = r.mapping(f, ACCOUNT_KEYS, 'an account');
  if (!m) return undefined;
  const c = (k: string) => r.child(m, f, k);
  const name = r.required(c('name'), 'account name') ? r.string(c('name'), 'a name', checkObjectName) : undefined;
  const user = r.required(c('user'), 'CHAP user name') ? r.string(c('user'), 'a CHAP user name', checkChapUser) : undefined;
  const given = ['secret', 'secretFile', 'secretEnv'].filter((k) => r.present(c(k)));
  if (given.length !== 1) {
    r.problem(given.length ? c(given[1]!) : f, given.length
      ? `give only one of secret, secretFile, secretEnv (found ${given.join(', ')})`
      : 'missing the CHAP secret: give one of secret, secretFile (path to a 0600 file) or secretEnv (variable name)');
    return undefined;
  }
  let secret: SecretSource | undefined;
  const sf = c(given[0]!);
  if (given[0] === 'secret') {
    const v = r.string(sf, 'a secret string', checkChapSecret);
    if (v !== undefined) secret = { kind: 'inline', value: v };
  } else if (given[0] === 'secretFile') {
    const v = r.string(sf, 'a file path');
    if (v !== undefined) secret = { kind: 'file', path: v };
  } else {
    const v = r.string(sf, 'an environment variable name', (s) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(s) ? undefined : `"${s}" is not a variable name`));
    if (v !== undefined) secret = { kind: 'env', name: v };
  }
  if (secret && secret.kind !== 'inline') {
    const res = resolveSecret(secret, ctx.baseDir, ctx.env);
    if (!res.ok) r.problem(sf, res.error);
    else {
      const bad = checkChapSecret(res.value);
      if (bad) r.problem(sf, bad);
      if (res.warning) ctx.warnings.push(res.warning);
    }
  }
  if (name === undefined || user === undefined || secret === undefined) return undefined;
  return { v: { name, user, secret }, field: f, fields: {} };
}

function readBackstore(r: YamlReader, f: Field): Read<BackstoreConfig> | undefined {
  const m = r.mapping(f, BACKSTORE_KEYS, 'a backstore');
  if (!m) return undefined;
  const c = (k: string) => r.child(m, f, k);
  const name = r.required(c('name'), 'backstore name') ? r.string(c('name'), 'a name', checkObjectName) : undefined;
  // `type: null` parses as a YAML null; the administrator meant the null backstore.
  const typeNode = c('type').node;
  const writtenNull = isScalar(typeNode) && typeNode.value === null && typeNode.source === 'null';
  const type = writtenNull
    ? 'null'
    : r.required(c('type'), 'file, block, memory or null')
      ? r.oneOf(c('type'), ['file', 'block', 'memory', 'null'] as const)
      : undefined;
  const path = r.string(c('path'), 'a path', (s) => (s.length === 0 || s.includes('\0') ? 'the path is empty or contains NUL' : undefined));
  let size: number | undefined;
  if (r.present(c('size'))) {
    const raw = r.value(c('size'));
    const s = typeof raw === 'string' || typeof raw === 'number' ? parseSize(raw) : 'expected a size such as 1GiB';
    if (typeof s === 'string') r.problem(c('size'), s);
    else size = s;
  }
  const bs = r.integer(c('blockSize'), 512, 4096, 'a block size');
  if (bs !== undefined && bs !== 512 && bs !== 4096) r.problem(c('blockSize'), `block size ${bs} is not supported; allowed: 512, 4096`);
  const blockSize = bs === 512 || bs === 4096 ? bs : undefined;
  const readOnly = r.boolean(c('readOnly'));
  const cacheMode = r.oneOf(c('cacheMode'), ['writeback', 'writethrough'] as const);
  const direct = r.boolean(c('direct'));
  const removable = r.boolean(c('removable'));
  const engine = r.oneOf(c('engine'), ['native', 'native-threadpool', 'fs'] as const);
  // SPC-4 7.8.16: PRODUCT SERIAL NUMBER is printable ASCII; keep it short enough for every initiator.
  const serial = r.string(c('serial'), 'a serial number', (v) => (/^[\x21-\x7e]{1,32}$/.test(v) ? undefined : 'a serial number is 1-32 printable ASCII characters without spaces'));
  if (name === undefined || type === undefined) return undefined;
  if (size === undefined && r.present(c('size'))) return undefined;
  if ((type === 'file' || type === 'block') && path === undefined) {
    r.problem(c('path'), `missing (required for a ${type} backstore: ${type === 'file' ? 'the image file, relative to the data directory' : 'the block device, e.g. /dev/sdb'})`);
    return undefined;
  }
  if ((type === 'memory' || type === 'null') && size === undefined && !r.present(c('size'))) {
    r.problem(c('size'), `missing (required for a ${type} backstore, e.g. size: 1GiB)`);
    return undefined;
  }
  if ((type === 'memory' || type === 'null') && path !== undefined) {
    r.problem(c('path'), `a ${type} backstore has no path; remove it or use type: file`);
  }
  if ((type === 'memory' || type === 'null') && cacheMode === 'writeback') {
    r.problem(c('cacheMode'), `a ${type} backstore has no write cache; remove cacheMode or use writethrough`);
  }
  if (engine !== undefined && type !== 'file') r.problem(c('engine'), `engine applies to file backstores only, not ${type}`);
  if (size !== undefined && size % (blockSize ?? 512) !== 0) {
    r.problem(c('size'), `size ${size} is not a multiple of the block size ${blockSize ?? 512}`);
    return undefined;
  }
  const v: BackstoreConfig = { name, type };
  if (path !== undefined) v.path = path;
  if (size !== undefined) v.size = size;
  if (blockSize !== undefined) v.blockSize = blockSize;
  if (readOnly !== undefined) v.readOnly = readOnly;
  if (cacheMode !== undefined) v.cacheMode = cacheMode;
  if (direct !== undefined) v.direct = direct;
  if (removable !== undefined) v.removable = removable;
  const pbsF = c('physicalBlockSize');
  const pbs = r.integer(pbsF, 512, (blockSize ?? 512) * 32768, 'a physical block size in bytes');
  if (pbs !== undefined) {
    const ratio = pbs / (blockSize ?? 512);
    if (!Number.isInteger(ratio) || (ratio & (ratio - 1)) !== 0) {
      r.problem(pbsF, `physical block size ${pbs} must be the block size (${blockSize ?? 512}) times a power of two, e.g. 4096`);
    } else v.physicalBlockSize = pbs;
  }
  if (r.present(c('maxAtomicWriteBytes'))) {
    const raw = r.value(c('maxAtomicWriteBytes'));
    const m = typeof raw === 'string' || typeof raw === 'number' ? parseSize(raw) : 'expected a size such as 1MiB';
    if (typeof m === 'string') r.problem(c('maxAtomicWriteBytes'), m);
    else if (m % (blockSize ?? 512) !== 0 || m > 32 * 1024 * 1024) {
      r.problem(c('maxAtomicWriteBytes'), `maxAtomicWriteBytes must be a multiple of the block size (${blockSize ?? 512}) and at most 32MiB`);
    } else v.maxAtomicWriteBytes = m;
  }
  if (r.present(c('deviceWindowBytes'))) {
    const raw = r.value(c('deviceWindowBytes'));
    const w = typeof raw === 'string' || typeof raw === 'number' ? parseSizeOrZero(raw) : 'expected a size such as 2MiB, or 0';
    if (typeof w === 'string') r.problem(c('deviceWindowBytes'), w);
    else if (direct !== true) r.problem(c('deviceWindowBytes'), 'deviceWindowBytes applies to O_DIRECT stores only; set direct: true or remove it');
    else v.deviceWindowBytes = w;
  }
  if (engine !== undefined) v.engine = engine;
  if (serial !== undefined) v.serial = serial;
  return { v, field: f, fields: {} };
}

function readLuns(r: YamlReader, f: Field): { luns: LunConfig[]; fields: Array<{ v: LunConfig; field: Field; bf: Field }> } | undefined {
  const items = r.sequence(f, 'LUNs ({lun: N, backstore: NAME})');
  if (!items) return undefined;
  const out: Array<{ v: LunConfig; field: Field; bf: Field }> = [];
  for (const it of items) {
    const m = r.mapping(it, LUN_KEYS, 'a LUN mapping');
    if (!m) continue;
    const lf = r.child(m, it, 'lun');
    const bf = r.child(m, it, 'backstore');
    const lun = r.required(lf, `LUN number 0-${LUN_MAX}`) ? r.integer(lf, 0, LUN_MAX, 'a LUN number') : undefined;
    const backstore = r.required(bf, 'backstore name') ? r.string(bf, 'a backstore name') : undefined;
    if (lun !== undefined && backstore !== undefined) out.push({ v: { lun, backstore }, field: it, bf });
  }
  unique(r, out, (l) => String(l.v.lun), 'LUN');
  return { luns: out.map((l) => l.v), fields: out };
}

function checkLuns(r: YamlReader, luns: Array<{ v: LunConfig; bf: Field }>, backstores: Set<string>): void {
  for (const l of luns) {
    if (!backstores.has(l.v.backstore)) {
      r.problem(l.bf, `no backstore named "${l.v.backstore}"; defined backstores: ${[...backstores].join(', ') || '(none)'}`);
    }
  }
}

type TargetRead = Read<TargetConfig> & { lunFields: Array<{ v: LunConfig; bf: Field }>; acls: Array<Read<AclConfig> & { lunFields?: Array<{ v: LunConfig; bf: Field }> }> };

function readTarget(r: YamlReader, f: Field): TargetRead | undefined {
  const m = r.mapping(f, TARGET_KEYS, 'a target');
  if (!m) return undefined;
  const c = (k: string) => r.child(m, f, k);
  const name = r.required(c('name'), 'target IQN') ? r.string(c('name'), 'an iSCSI name', checkIscsiName) : undefined;
  const tpgt = r.integer(c('tpgt'), 1, 65535, 'a target portal group tag');
  const luns = readLuns(r, c('luns'));
  const aclItems = r.sequence(c('acls'), 'ACLs ({initiator: IQN, ...})') ?? [];
  const acls: TargetRead['acls'] = [];
  for (const af of aclItems) {
    const am = r.mapping(af, ACL_KEYS, 'an ACL');
    if (!am) continue;
    const ac = (k: string) => r.child(am, af, k);
    const initiator = r.required(ac('initiator'), 'initiator IQN') ? r.string(ac('initiator'), 'an iSCSI name', checkIscsiName) : undefined;
    const addrItems = r.sequence(ac('addresses'), 'IP addresses');
    const addresses = addrItems?.map((a) => r.string(a, 'an IP address or CIDR', checkCidr)).filter((a): a is string => a !== undefined);
    const aclLuns = r.present(ac('luns')) ? readLuns(r, ac('luns')) : undefined;
    const chap = r.string(ac('chap'), 'an account name');
    const mutualChap = r.string(ac('mutualChap'), 'an account name');
    if (mutualChap !== undefined && chap === undefined) r.problem(ac('mutualChap'), 'mutualChap needs chap as well (the initiator authenticates first)');
    if (initiator === undefined) continue;
    const v: AclConfig = { initiator };
    if (addresses && addresses.length) v.addresses = addresses;
    if (aclLuns) v.luns = aclLuns.luns;
    if (chap !== undefined) v.chap = chap;
    if (mutualChap !== undefined) v.mutualChap = mutualChap;
    const entry: TargetRead['acls'][number] = { v, field: af, fields: { chap: ac('chap'), mutualChap: ac('mutualChap') } };
    if (aclLuns) entry.lunFields = aclLuns.fields;
    acls.push(entry);
  }
  const chap = r.string(c('chap'), 'an account name');
  const mutualChap = r.string(c('mutualChap'), 'an account name');
  if (mutualChap !== undefined && chap === undefined) r.problem(c('mutualChap'), 'mutualChap needs chap as well (the initiator authenticates first)');
  let params: Record<string, string> | undefined;
  const pm = r.present(c('params')) ? r.mapping(c('params'), [...ISCSI_PARAM_KEYS], 'iSCSI login parameters') : undefined;
  if (pm) {
    params = {};
    for (const [k, pf] of pm) {
      const v = r.value(pf);
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') params[k] = typeof v === 'boolean' ? (v ? 'Yes' : 'No') : String(v);
      else r.problem(pf, 'expected a value (number, Yes/No or text)');
    }
  }
  if (name === undefined || !luns) return undefined;
  const v: TargetConfig = { name, luns: luns.luns, acls: acls.map((a) => a.v) };
  if (tpgt !== undefined) v.tpgt = tpgt;
  if (chap !== undefined) v.chap = chap;
  if (mutualChap !== undefined) v.mutualChap = mutualChap;
  if (params) v.params = params;
  return { v, field: f, fields: { chap: c('chap'), mutualChap: c('mutualChap') }, lunFields: luns.fields, acls };
}

/** RFC 7143 section 13 operational keys a target may set a preference for. */
export const ISCSI_PARAM_KEYS = [
  'HeaderDigest',
  'DataDigest',
  'MaxConnections',
  'InitialR2T',
  'ImmediateData',
  'MaxRecvDataSegmentLength',
  'MaxBurstLength',
  'FirstBurstLength',
  'DefaultTime2Wait',
  'DefaultTime2Retain',
  'MaxOutstandingR2T',
  'DataPDUInOrder',
  'DataSequenceInOrder',
  'ErrorRecoveryLevel',
] as const;

function readIscsi(r: YamlReader, f: Field): { v: IscsiConfig; fields: Record<string, Field>; portals: Array<{ v: PortalConfig; field: Field }> } | undefined {
  const m = r.mapping(f, ISCSI_KEYS, 'the iscsi section');
  if (!m) return undefined;
  const c = (k: string) => r.child(m, f, k);
  const portals: Array<{ v: PortalConfig; field: Field }> = [];
  for (const pf of r.sequence(c('portals'), 'portals ("ADDRESS:PORT" or {address, tpgt})') ?? []) {
    let addr: string | undefined;
    let tpgt: number | undefined;
    let addrField = pf;
    if (r.present(pf) && r.value(pf) !== null && typeof r.value(pf) === 'object') {
      const pm = r.mapping(pf, ['address', 'tpgt'], 'a portal');
      addrField = r.child(pm, pf, 'address');
      addr = r.required(addrField, 'ADDRESS:PORT') ? r.string(addrField, 'ADDRESS:PORT') : undefined;
      tpgt = r.integer(r.child(pm, pf, 'tpgt'), 1, 65535, 'a target portal group tag');
    } else {
      addr = r.string(pf, 'ADDRESS:PORT');
    }
    if (addr === undefined) continue;
    const hp = parseHostPort(addr, DEFAULT_ISCSI_PORT);
    if (typeof hp === 'string') {
      r.problem(addrField, hp);
      continue;
    }
    portals.push({ v: tpgt === undefined ? hp : { ...hp, tpgt }, field: pf });
  }
  const v: IscsiConfig = { portals: portals.map((p) => p.v) };
  const dc = r.string(c('discoveryChap'), 'an account name');
  const dm = r.string(c('discoveryMutualChap'), 'an account name');
  const ni = r.integer(c('nopInterval'), 0, 3600, 'seconds');
  const nt = r.integer(c('nopTimeout'), 1, 3600, 'seconds');
  if (dc !== undefined) v.discoveryChap = dc;
  if (dm !== undefined) v.discoveryMutualChap = dm;
  if (ni !== undefined) v.nopInterval = ni;
  if (nt !== undefined) v.nopTimeout = nt;
  return { v, fields: { discoveryChap: c('discoveryChap'), discoveryMutualChap: c('discoveryMutualChap') }, portals };
}

function readMetrics(r: YamlReader, f: Field): MetricsConfig {
  const m = r.mapping(f, ['listen'], 'the metrics section');
  const lf = r.child(m, f, 'listen');
  const s = r.string(lf, 'ADDRESS:PORT');
  if (s === undefined) return {};
  const hp = parseHostPort(s, 9470);
  if (typeof hp === 'string') {
    r.problem(lf, hp);
    return {};
  }
  return { listen: hp };
}

function readLog(r: YamlReader, f: Field): { level: LogLevel } {
  const m = r.mapping(f, ['level'], 'the log section');
  return { level: r.oneOf(r.child(m, f, 'level'), LOG_LEVELS) ?? 'info' };
}

function readPerformance(r: YamlReader, f: Field): PerformanceConfig | undefined {
  if (!r.present(f)) return undefined;
  const m = r.mapping(f, ['busyPollMicros', 'iscsiThreads'], 'the performance section');
  const us = r.integer(r.child(m, f, 'busyPollMicros'), 0, 1000, 'microseconds (0 = off)');
  const threads = r.integer(r.child(m, f, 'iscsiThreads'), 0, MAX_ISCSI_THREADS, 'connection threads (0 = none)');
  if (us === undefined && threads === undefined) return undefined;
  return { ...(us === undefined ? {} : { busyPollMicros: us }), ...(threads === undefined ? {} : { iscsiThreads: threads }) };
}
