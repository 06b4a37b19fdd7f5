/** Simulated Xen domain identities over the shared credential store (`src/sim/credentials.ts`). */
import { credentialFile } from '../../sim/credentials.js';

/** Largest domid a guest can have (DOMID_FIRST_RESERVED - 1, xen/include/public/xen.h). */
export const SIM_MAX_DOMID = 0x7fef;

export const isDomid = (d: unknown): d is number => typeof d === 'number' && Number.isInteger(d) && d >= 0 && d <= SIM_MAX_DOMID;
export const domainCredentialName = (domid: number): string => `dom${domid}`;
/** Token file of `domid` for the simulated Xen daemon listening at `socketPath`. */
export const credentialPath = (socketPath: string, domid: number): string => credentialFile(socketPath, domainCredentialName(domid));
