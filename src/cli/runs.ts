// `alignlab runs`: the training runs recorded in SQLite, newest first, with their final metrics.
//
//   alignlab runs [--kind dpo] [--status completed] [--limit 20] [--metrics loss,eval_loss] [--json] [--db FILE]

import { command, Option, parse, positiveInteger } from './args.js';
import { openStore, defaultDbPath } from '../store/db.js';
import { listRuns, type RunRow, type RunStatus } from '../store/runs.js';
import { formatDuration, formatNumber } from '../train/progress.js';

/** Every status a run can have (the type is the store's; `satisfies` keeps the two lists together). */
const STATUSES = ['running', 'completed', 'stopped', 'interrupted', 'failed'] as const satisfies readonly RunStatus[];
type Missing = Exclude<RunStatus, (typeof STATUSES)[number]>;
const _allStatuses: Missing extends never ? true : never = true;
void _allStatuses;

export const cli = () =>
  command('runs', 'list training runs recorded in SQLite, newest first, with their final metrics')
    .option('--kind <kind>', 'only runs of this kind (sft, rm, dpo, ppo, grpo, rloo, …)')
    .addOption(new Option('--status <status>', 'only runs with this status').choices(STATUSES))
    .option('--limit <n>', 'at most this many runs', positiveInteger)
    .option('--metrics <names>', 'comma-separated metric names to show (default: a few common ones present)')
    .option('--json', 'print the rows as JSON')
    .option('--db <file>', 'SQLite store (default $ALIGNLAB_DB or .alignlab/alignlab.db)');

interface Flags {
  kind?: string;
  status?: RunStatus;
  limit?: number;
  metrics?: string;
  json?: boolean;
  db?: string;
}

// Shown by default when present, in this order (TRL names).
const DEFAULT_METRICS = ['loss', 'eval_loss', 'rewards/accuracies', 'eval_rewards/accuracies', 'rewards/margins', 'objective/rlhf_reward', 'objective/kl', 'accuracy', 'eval_accuracy'];

/** A plain text table: columns padded to their widest cell. */
export function table(header: string[], rows: string[][]): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => (c ?? '').padEnd(w[i]!)).join('  ').trimEnd();
  return [fmt(header), fmt(w.map((n) => '-'.repeat(n))), ...rows.map(fmt)].join('\n');
}

export function formatRuns(runs: RunRow[], metricNames?: string[]): string {
  if (runs.length === 0) return 'no runs recorded';
  const present = new Set(runs.flatMap((r) => Object.keys(r.finalMetrics ?? {})));
  const cols = metricNames ?? DEFAULT_METRICS.filter((m) => present.has(m)).slice(0, 5);
  const header = ['id', 'kind', 'status', 'step', 'started', 'time', ...cols];
  const rows = runs.map((r) => {
    const m = r.finalMetrics ?? {};
    const secs = r.finished ? (Date.parse(r.finished) - Date.parse(r.started)) / 1000 : NaN;
    const stepRow = (m as Record<string, number>).step;
    return [
      r.id,
      r.kind,
      r.status,
      stepRow !== undefined ? String(stepRow) : '',
      r.started.replace('T', ' ').slice(0, 19),
      r.finished ? formatDuration(secs) : '',
      ...cols.map((c) => (m[c] === undefined || m[c] === null ? '' : formatNumber(m[c]!))),
    ];
  });
  const failed = runs.filter((r) => r.status === 'failed' && r.error).map((r) => `${r.id}: ${r.error}`);
  return table(header, rows) + (failed.length ? '\n\nfailures:\n' + failed.join('\n') : '');
}

export async function main(argv: string[]): Promise<void> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<Flags>();
  const db = openStore(f.db ?? defaultDbPath());
  const runs = listRuns(db, { kind: f.kind, status: f.status, limit: f.limit });
  if (f.json) {
    console.log(JSON.stringify(runs, null, 2));
    return;
  }
  console.log(formatRuns(runs, f.metrics ? f.metrics.split(',').map((s) => s.trim()).filter(Boolean) : undefined));
}
