// Lets a child process run this folder's TypeScript sources directly (tests run from src/, where
// no compiled JavaScript exists): resolves "./x.js" to "./x.ts" and strips types with the
// TypeScript compiler already in devDependencies. The built service (dist/) never needs it.
import { register } from 'node:module';

register('./ts-hooks.mjs', import.meta.url);
