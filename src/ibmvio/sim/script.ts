/**
 * Scripted client partition: runs a fixed list of SCSI operations through the VIO client (used by
 * the unified-export test to move known bytes in and out of a LUN the iSCSI side also sees).
 */
import { Buffer } from 'node:buffer';
import { readFile, writeFile } from 'node:fs/promises';
import { encodeVioLun } from '../lun.js';
import { type CommandOutcome, Layout, type VioClient } from './client.js';
import { parseSense, SenseKey, senseKeyOf } from '../../vscsi/sense.js';

export type ScriptStep =
  /** Write the contents of `file` at `lba` (512-byte blocks). */
  | { op: 'write'; lun: number; lba: number; file: string }
  /** Read `blocks` blocks at `lba` into `file`. */
  | { op: 'read'; lun: number; lba: number; blocks: number; file: string }
  /** Any CDB (hex) with optional data-out (hex); data-in of `len` bytes returned as hex. */
  | { op: 'cdb'; lun: number; cdb: string; dir: 'none' | 'read' | 'write'; data?: string; len?: number };

export interface ScriptStepResult {
  status: number;
  senseKey?: number;
  asc?: number;
  data?: string;
  error?: string;
}

const CHUNK_BLOCKS = Layout.MAX_XFER / 512;

async function exec(client: VioClient, lun: Buffer, cdb: Buffer, dir: 'none' | 'read' | 'write', len: number): Promise<CommandOutcome> {
  const segs = dir === 'none' ? [] : [{ va: BigInt(Layout.DATA_BASE), key: 0, len }];
  for (let i = 0; i < 10; i++) {
    const o = await client.command(lun, cdb, dir, segs);
    if (o.kind === 'reset') {
      await client.waitUp(20_000);
      continue;
    }
    if (o.kind === 'done' && o.status === 2 && o.sense && senseKeyOf(o.sense) === SenseKey.UNIT_ATTENTION) continue;
    return o;
  }
  return { kind: 'error', message: 'retries exhausted' };
}

function result(o: CommandOutcome): ScriptStepResult {
  if (o.kind !== 'done') return { status: -1, error: o.kind === 'error' ? o.message : o.kind };
  const r: ScriptStepResult = { status: o.status };
  const sense = o.sense ? parseSense(o.sense) : undefined;
  if (sense) {
    r.senseKey = sense.key;
    r.asc = sense.asc;
  }
  return r;
}

export async function runScript(client: VioClient, steps: ScriptStep[], aix: boolean): Promise<ScriptStepResult[]> {
  const out: ScriptStepResult[] = [];
  const rw = (op: number, lba: number, blocks: number) => {
    const c = Buffer.alloc(16);
    c[0] = op;
    c.writeUInt32BE(lba, 2);
    c.writeUInt16BE(blocks, 7);
    return c;
  };
  for (const s of steps) {
    const lun = encodeVioLun(s.lun, aix ? 'aix' : 'linux');
    if (s.op === 'write') {
      const data = await readFile(s.file);
      let r: ScriptStepResult = { status: 0 };
      for (let off = 0; off < data.length && r.status === 0; off += Layout.MAX_XFER) {
        const part = data.subarray(off, Math.min(data.length, off + Layout.MAX_XFER));
        client.part.mem.write(Layout.DATA_BASE, part);
        r = result(await exec(client, lun, rw(0x2a, s.lba + off / 512, part.length / 512), 'write', part.length));
      }
      out.push(r);
    } else if (s.op === 'read') {
      const chunks: Buffer[] = [];
      let r: ScriptStepResult = { status: 0 };
      for (let b = 0; b < s.blocks && r.status === 0; b += CHUNK_BLOCKS) {
        const n = Math.min(CHUNK_BLOCKS, s.blocks - b);
        r = result(await exec(client, lun, rw(0x28, s.lba + b, n), 'read', n * 512));
        const buf = Buffer.alloc(n * 512);
        client.part.mem.read(Layout.DATA_BASE, buf);
        chunks.push(buf);
      }
      await writeFile(s.file, Buffer.concat(chunks));
      out.push(r);
    } else {
      const len = s.dir === 'write' ? Buffer.from(s.data ?? '', 'hex').length : (s.len ?? 0);
      if (s.dir === 'write') client.part.mem.write(Layout.DATA_BASE, Buffer.from(s.data ?? '', 'hex'));
      const r = result(await exec(client, lun, Buffer.from(s.cdb, 'hex'), s.dir, len));
      if (s.dir === 'read' && r.status === 0) {
        const buf = Buffer.alloc(len);
        client.part.mem.read(Layout.DATA_BASE, buf);
        r.data = buf.toString('hex');
      }
      out.push(r);
    }
  }
  return out;
}
