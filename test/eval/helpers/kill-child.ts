// Child process for the SIGKILL test: runs an evaluation with slow rule-based providers until the
// parent kills it. Usage: node --import tsx kill-child.ts <eval.yaml> <store.db>
import { registerProvider } from '../../../src/eval/registry.js';
import { runEvalFile } from '../../../src/eval/runner.js';
import { openStore } from '../../../src/store/db.js';
import { ruleFactory } from './rule-provider.js';

registerProvider('rule', ruleFactory);
const [cfg, db] = process.argv.slice(2);
await runEvalFile(cfg!, { db: openStore(db!), log: () => {} });
process.stdout.write('finished\n');
