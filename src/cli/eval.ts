// alignlab eval --config eval.yaml [--out DIR] [--no-cache] [--db FILE] [--limit N]
// Runs every provider on every task (resuming from the response cache), then writes the per-sample logs,
// results.json, and the leaderboard in Markdown and HTML.
import { dirname, resolve } from 'node:path';
import { need, parseFlags, UsageError } from './args.js';
import { openStore } from '../store/db.js';
import { loadEvalConfig, runEval } from '../eval/runner.js';
import { writeLeaderboard } from '../eval/leaderboard.js';

const FLAGS = {
  config: { type: 'string', help: 'evaluation config (YAML): providers, tasks, judge, reference' },
  out: { type: 'string', help: 'output folder (default: config `out`, else runs/eval-<name>)' },
  cache: { type: 'boolean', default: true, help: '--no-cache asks every provider again (fresh answers are still stored)' },
  db: { type: 'string', help: 'SQLite store (default $ALIGNLAB_DB or .alignlab/alignlab.db)' },
  limit: { type: 'number', help: 'evaluate only the first N rows of each task' },
} as const;

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv, FLAGS);
  if (f._.length) throw new UsageError(`unexpected argument "${f._[0]}" (usage: alignlab eval --config eval.yaml [--out DIR] [--no-cache])`);
  const file = resolve(need(f.config, 'config'));
  const cfg = loadEvalConfig(file);
  if (f.limit !== undefined) {
    if (!Number.isInteger(f.limit) || f.limit < 1) throw new UsageError(`--limit must be a positive integer, got ${f.limit}`);
    cfg.limit = f.limit;
  }
  const baseDir = dirname(file);
  const out = f.out ? resolve(f.out) : cfg.out ? resolve(baseDir, cfg.out) : resolve('runs', `eval-${cfg.name}`);
  const result = await runEval(cfg, { baseDir, out, noCache: !f.cache, db: f.db ? openStore(resolve(f.db)) : undefined });
  const files = writeLeaderboard(result, out);
  process.stdout.write(`leaderboard: ${files.markdown}\n            ${files.html}\n`);
}
