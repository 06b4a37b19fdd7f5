/**
 * A small stand-alone iSCSI target for development and integration tests: one core, a few LUNs, one
 * target and one or more portals, configured from argv. Prints one JSON line with the bound ports and
 * serves until SIGTERM/SIGINT. The real service is `vtgt serve`; this exists so src/iscsi can be
 * exercised by real initiators on its own.
 *
 *   node dist/iscsi/dev-target.js --target iqn.2026-11.org.vtgt:dev \
 *     --lun 0=memory:64M --lun 1=memory:16M:removable --lun 2=file:/tmp/x.img:32M:ro \
 *     [--host 127.0.0.1] [--port 0] [--portals 2] [--chap user:secret] [--mutual-chap user:secret]
 *     [--acl iqn...] [--param Key=Value] [--nop-interval s]
 */
import { pino, destination } from 'pino';
import { ScsiCore } from '../vscsi/core.js';
import { ReservationManager } from '../vscsi/pr/index.js';
import { createBackstore, type BackstoreSpec } from '../backstores/index.js';
import type { Backstore } from '../backstores/backstore.js';
import { IscsiServer, type ChapCredentials, type IscsiAcl } from './server.js';

interface DevOptions {
  target: string;
  host: string;
  port: number;
  portals: number;
  luns: Array<{ lun: number; spec: BackstoreSpec }>;
  chap?: ChapCredentials;
  mutualChap?: ChapCredentials;
  acls: string[];
  params: Record<string, string>;
  nopInterval: number;
}

function parseSize(s: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(s);
  if (!m) throw new Error(`bad size "${s}" (use e.g. 64M)`);
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
  return Number(m[1]) * mult;
}

function parseCreds(s: string): ChapCredentials {
  const i = s.indexOf(':');
  if (i <= 0) throw new Error(`credentials "${s}" must be user:secret`);
  return { user: s.slice(0, i), secret: s.slice(i + 1) };
}

/** "N=memory:SIZE[:flags]" or "N=file:PATH:SIZE[:flags]"; flags: ro, removable, 4k. */
function parseLun(arg: string, index: number): { lun: number; spec: BackstoreSpec } {
  const eq = arg.indexOf('=');
  const lun = Number(arg.slice(0, eq));
  if (eq <= 0 || !Number.isInteger(lun)) throw new Error(`--lun "${arg}" must look like 0=memory:64M`);
  const parts = arg.slice(eq + 1).split(':');
  const type = parts.shift();
  const spec: BackstoreSpec = { type: type as BackstoreSpec['type'], name: `dev${index}` };
  if (type === 'file') spec.path = parts.shift()!;
  else if (type !== 'memory' && type !== 'null') throw new Error(`--lun "${arg}": type must be memory, file or null`);
  spec.size = parseSize(parts.shift() ?? '64M');
  for (const f of parts) {
    if (f === 'ro') spec.readOnly = true;
    else if (f === 'removable') spec.removable = true;
    else if (f === '4k') spec.blockSize = 4096;
    else throw new Error(`--lun "${arg}": unknown flag ${f}`);
  }
  return { lun, spec };
}

export function parseDevArgs(argv: string[]): DevOptions {
  const o: DevOptions = { target: 'iqn.2026-11.org.vtgt:dev', host: '127.0.0.1', port: 0, portals: 1, luns: [], acls: [], params: {}, nopInterval: 10 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === '--target') o.target = v();
    else if (a === '--host') o.host = v();
    else if (a === '--port') o.port = Number(v());
    else if (a === '--portals') o.portals = Number(v());
    else if (a === '--lun') o.luns.push(parseLun(v(), o.luns.length));
    else if (a === '--chap') o.chap = parseCreds(v());
    else if (a === '--mutual-chap') o.mutualChap = parseCreds(v());
    else if (a === '--acl') o.acls.push(v());
    else if (a === '--nop-interval') o.nopInterval = Number(v());
    else if (a === '--param') {
      const [k, ...rest] = v().split('=');
      o.params[k!] = rest.join('=');
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!o.luns.length) o.luns.push(parseLun('0=memory:64M', 0));
  return o;
}

export async function startDevTarget(o: DevOptions): Promise<{ server: IscsiServer; core: ScsiCore; ports: number[]; close(): Promise<void> }> {
  const core = new ScsiCore({ reservations: (opts) => ReservationManager.open(opts) });
  const target = core.createTarget({ name: o.target });
  const stores: Backstore[] = [];
  for (const { lun, spec } of o.luns) {
    const store = createBackstore(spec);
    stores.push(store);
    const lu = core.addLogicalUnit({ id: spec.name, backstore: store, serial: `vtgt-${spec.name}` });
    target.luns.set(lun, lu);
  }
  // VTGT_LOG=debug|info|warn sends the server's log to stderr.
  const level = process.env.VTGT_LOG;
  const logger = level ? pino({ level }, destination(2)) : undefined;
  const server = new IscsiServer({ core, nopInterval: o.nopInterval, nopTimeout: o.nopInterval * 2, ...(logger ? { logger } : {}) });
  const acls: IscsiAcl[] = o.acls.map((initiator) => ({ initiator }));
  server.addTarget({
    target,
    tpgt: 1,
    ...(acls.length ? { acls } : {}),
    ...(o.chap ? { chap: o.chap } : {}),
    ...(o.mutualChap ? { mutualChap: o.mutualChap } : {}),
    params: o.params,
  });
  const ports: number[] = [];
  for (let i = 0; i < o.portals; i++) {
    const p = await server.addPortal({ host: o.host, port: i === 0 ? o.port : 0, tpgt: 1 });
    ports.push(p.port);
  }
  return {
    server,
    core,
    ports,
    close: async () => {
      await server.close();
      for (const s of stores) await s.close();
    },
  };
}

async function main(): Promise<void> {
  const o = parseDevArgs(process.argv.slice(2));
  const t = await startDevTarget(o);
  process.stdout.write(JSON.stringify({ host: o.host, ports: t.ports, target: o.target }) + '\n');
  const stop = (): void => {
    void t.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`dev-target: ${(e as Error).message}\n`);
    process.exit(1);
  });
}
