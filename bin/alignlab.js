#!/usr/bin/env node
// Entry point: runs the compiled CLI (dist/, built by `npm ci` through the prepare script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const compiled = fileURLToPath(new URL('../dist/cli/entry.js', import.meta.url));
if (!existsSync(compiled)) {
  console.error('alignlab: dist/ is missing; run `npm run build` (npm ci does it for you)');
  process.exit(1);
}
await import(compiled);
