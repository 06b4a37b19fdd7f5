/** Process entry of the `vtgt` command (bin/vtgt.js imports the compiled form of this file). */
import { relaunchWithServiceHeap } from '../service/young-generation.js';
import { runCli } from './program.js';

// A reader that goes away (a closed pipe, `| head`) must not crash a running service.
for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);

const code = await runCli(process.argv.slice(2), {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
  prepareService: () => relaunchWithServiceHeap((m) => process.stderr.write(`${m}\n`)),
});
process.exitCode = code;
