/** Runs a backstore's startRead / startWrite as a promise of how it ended (test/backstore-*.test.ts). */
import type { Buffer } from 'node:buffer';
import type { Backstore, BackstoreCompletion } from '../../src/backstores/backstore.js';

export interface Told {
  /** Finished before returning. */
  now: boolean;
  error: unknown;
}

/** Runs one start call and resolves with how it ended; fails the test if the completion comes early or twice. */
export function started(start: (done: BackstoreCompletion) => boolean): Promise<Told> {
  return new Promise((resolve, reject) => {
    let returned = false;
    let tells = 0;
    const done: BackstoreCompletion = {
      backstoreDone(error) {
        tells++;
        if (!returned) reject(new Error('completion told before the start call returned'));
        else if (tells > 1) reject(new Error('completion told twice'));
        else resolve({ now: false, error });
      },
    };
    let now: boolean;
    try {
      now = start(done);
    } catch (e) {
      returned = true;
      resolve({ now: true, error: e });
      return;
    }
    returned = true;
    if (now) resolve({ now: true, error: undefined });
  });
}

export const startWrite = (s: Backstore, offset: number, data: Buffer, fua = false) => started((done) => s.startWrite!(offset, data, fua, done));
export const startRead = (s: Backstore, offset: number, into: Buffer) => started((done) => s.startRead!(offset, into.length, into, done));

