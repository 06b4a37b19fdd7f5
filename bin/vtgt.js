#!/usr/bin/env node
// Entry point for `npx vtgt`: the compiled CLI lives in dist/ (built by `npm install` via `prepare`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
const main = join(root, 'dist', 'cli', 'main.js');
if (!existsSync(main)) {
  console.error(`vtgt: ${main} is missing. Run "npm install" (or "npm run build") in ${root} first.`);
  process.exit(1);
}
await import(main);
