/**
 * Loader for the native addon (native/, built by cmake-js into build/Release).
 * Everything that crosses into C++ goes through the typed wrappers in this folder, which validate
 * arguments first so a bad call fails with a JS stack instead of inside the addon.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface NativeAddon {
  crc32c(data: Uint8Array, seed?: number): number;
  crc32cHardware(): boolean;
  [name: string]: unknown;
}

const here = dirname(fileURLToPath(import.meta.url));
// src/native and dist/native are both two levels below the package root.
const packageRoot = join(here, '..', '..');

function addonPath(): string {
  const override = process.env.VTGT_NATIVE_ADDON;
  if (override) return override;
  return join(packageRoot, 'build', 'Release', 'vtgt_native.node');
}

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = addonPath();
  if (!existsSync(path)) {
    throw new Error(
      `vtgt native addon not found at ${path}. Build it with "npm run build:native" ` +
        `(needs cmake and a C++ compiler; "npm install" does this automatically).`,
    );
  }
  const require = createRequire(import.meta.url);
  cached = require(path) as NativeAddon;
  return cached;
}
