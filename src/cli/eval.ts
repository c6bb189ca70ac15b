// alignlab eval --config eval.yaml [--out DIR] [--no-cache] [--db FILE] [--limit N]
// Runs every provider on every task (resuming from the response cache), then writes the per-sample logs,
// results.json, and the leaderboard in Markdown and HTML. Ctrl-C / SIGTERM stop it at once with exit
// 130 / 143: every answer received so far is already in the cache, so the same command continues.
import { dirname, resolve } from 'node:path';
import { command, parse, positiveInteger } from './args.js';
import { interrupts } from './signals.js';
import { openStore } from '../store/db.js';
import { loadEvalConfig, runEval } from '../eval/runner.js';
import { writeLeaderboard } from '../report/leaderboard.js';

export const cli = () =>
  command('eval', 'evaluate providers on tasks and write a leaderboard (resumes from the response cache)')
    .requiredOption('--config <file>', 'evaluation config (YAML): providers, tasks, judge, reference')
    .option('--out <dir>', 'output folder (default: config `out`, else runs/eval-<name>)')
    .option('--no-cache', 'ask every provider again (fresh answers are still stored)')
    .option('--db <file>', 'SQLite store (default $ALIGNLAB_DB or .alignlab/alignlab.db)')
    .option('--limit <n>', 'evaluate only the first N rows of each task', positiveInteger);

interface Flags {
  config: string;
  out?: string;
  cache: boolean;
  db?: string;
  limit?: number;
}

export async function main(argv: string[]): Promise<void> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<Flags>();
  const file = resolve(f.config);
  const cfg = loadEvalConfig(file);
  if (f.limit !== undefined) cfg.limit = f.limit;
  const baseDir = dirname(file);
  const out = f.out ? resolve(f.out) : cfg.out ? resolve(baseDir, cfg.out) : resolve('runs', `eval-${cfg.name}`);
  const stop = interrupts((sig) => `${sig}: stopping; the answers received so far are cached, run the same command to continue`, { exitAtOnce: true });
  try {
    const result = await runEval(cfg, { baseDir, out, noCache: !f.cache, db: f.db ? openStore(resolve(f.db)) : undefined });
    const files = writeLeaderboard(result, out);
    process.stdout.write(`leaderboard: ${files.markdown}\n            ${files.html}\n`);
  } finally {
    stop.dispose();
  }
}
