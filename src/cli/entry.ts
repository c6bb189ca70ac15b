// Process entry for the CLI (bin/alignlab.js runs the compiled copy; tests run this file through tsx).
import { run } from './main.js';

// A reader that goes away (`alignlab logits … --json | head -c 10`) is not an error of ours: stop quietly
// instead of dying on an unhandled EPIPE with a stack trace.
for (const s of [process.stdout, process.stderr])
  s.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });

process.exitCode = await run(process.argv.slice(2));
