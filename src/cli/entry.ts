// Process entry for the CLI (bin/alignlab.js runs the compiled copy; tests run this file through tsx).
import { run } from './main.js';

process.exitCode = await run(process.argv.slice(2));
