// `alignlab study`: the DPO-vs-PPO study on its embedded default (SOTU corpus, VADER gold reward).
// Ctrl-C / SIGTERM stop it at once with exit 130 / 143: each finished run is already written (atomically)
// under <out>/runs, and running the same command again keeps those runs and continues.
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { cpSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { resolveStudyConfig } from '../study/config.js';
import { PREFS_PROVENANCE, runStudy } from '../study/runner.js';
import { writeReport } from './study-report.js';
import { LONG_PRETRAIN, pretrainBase } from '../study/pretrain.js';
import { command, Option, parse, positiveInteger, UsageError } from './args.js';
import { interrupts } from './signals.js';
import { DASHBOARD_HINT } from './dashboard.js';

/** One process per core, each single-threaded: a study's runs are independent, so processes keep every core busy
 *  without splitting a small kernel between threads. */
const DEFAULT_WORKERS = Math.max(1, Math.min(availableParallelism(), 8));

export const cli = () =>
  command('study', 'run the DPO-vs-PPO study and write its report (finished runs are kept; run again to continue)')
    .option('--config <file>', 'YAML/JSON overriding study defaults')
    .option('--quick', 'about 3 minutes on 2 cores: one seed, fewer settings, shorter runs')
    .option('--device <device>', 'wasm (default) or webgpu')
    .option('--out <dir>', 'output directory (default runs/study, or runs/study-quick with --quick)')
    .option('--cache <dir>', 'cache for the processed corpus and base models (default .alignlab/cache)')
    .option('--workers <n>', `processes sharing the runs, one per core (default: this machine's ${DEFAULT_WORKERS})`, positiveInteger)
    // Internal: a helper process started by the main one (index/count).
    .addOption(new Option('--worker <i/n>').hideHelp())
    .addHelpText('after', '\nalignlab study pretrain [flags]: pretrain the base policy again (what assets/base ships); --help for its flags.\nalignlab study prefs [flags]: sample the preference pairs and train the reward model --quick uses (what assets/prefs ships).');

interface Flags {
  config?: string;
  quick?: boolean;
  workers?: number;
  worker?: string;
  device?: string;
  out?: string;
  cache?: string;
}

export const pretrainCli = () =>
  command('pretrain', 'pretrain the study base once, longer, and write it with PROVENANCE.json (what assets/base ships)')
    .option('--out <dir>', 'model directory to write (refused if it holds a model)', 'runs/study-base')
    .option('--config <file>', 'YAML/JSON overriding study defaults (corpus, model)')
    .option('--steps <n>', 'optimizer updates', String(LONG_PRETRAIN.steps))
    .option('--batch-size <n>', 'blocks of model.context tokens per update', String(LONG_PRETRAIN.batchSize))
    .option('--lr <x>', 'peak learning rate (cosine to 10%)', String(LONG_PRETRAIN.lr))
    .option('--warmup <n>', 'warmup updates', String(LONG_PRETRAIN.warmup))
    .option('--init <dir>', 'start from an earlier `study pretrain` output (same model and vocabulary) with a new schedule')
    .option('--until <time>', 'stop at this ISO time with the weights so far (e.g. 2026-12-06T23:45:00Z)')
    .option('--device <device>', 'wasm (default) or webgpu')
    .option('--cache <dir>', 'cache for the processed corpus (default .alignlab/cache)')
    .name('study pretrain'); // so the usage line reads "alignlab study pretrain [options]"

async function pretrainMain(argv: string[]): Promise<number | void> {
  const cmd = pretrainCli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<{ out: string; config?: string; steps: string; batchSize: string; lr: string; warmup: string; until?: string; init?: string; device?: string; cache?: string }>();
  const num = (v: string, flag: string) => {
    const x = Number(v);
    if (!(x > 0)) throw new UsageError(`--${flag}: expected a positive number, got ${v}`);
    return x;
  };
  const until = f.until === undefined ? undefined : new Date(f.until);
  if (until && Number.isNaN(until.getTime())) throw new UsageError(`--until: not a date/time: ${f.until}`);
  const stop = interrupts((sig) => `${sig}: stopping after this step with a checkpoint; run the same command to continue`);
  try {
    await pretrainBase({
      config: resolveStudyConfig({ file: f.config }), out: f.out, cacheDir: resolve(f.cache ?? '.alignlab/cache'), device: f.device,
      steps: num(f.steps, 'steps'), batchSize: num(f.batchSize, 'batch-size'), lr: num(f.lr, 'lr'), warmup: Number(f.warmup), until, init: f.init,
      signal: stop.signal, command: ['alignlab', 'study', 'pretrain', ...argv].join(' '),
    });
    return stop.exitCode(); // 130 / 143 when a signal stopped it (the checkpoint is written)
  } finally {
    stop.dispose();
  }
}

/** A helper process: takes tasks until none is left; a signal ends it at once (its finished work is on disk). */
async function helperMain(spec: string, o: { config: ReturnType<typeof resolveStudyConfig>; out: string; cacheDir: string; device?: string }): Promise<void> {
  const m = /^(\d+)\/(\d+)$/.exec(spec);
  if (!m) throw new UsageError(`--worker: expected i/n, got ${spec}`);
  const stop = interrupts(() => '', { exitAtOnce: true, quiet: true });
  // The channel to the main process closes when it dies, even by SIGKILL: a helper never outlives its study.
  process.on('disconnect', () => process.exit(143));
  process.channel?.unref(); // …but does not keep the helper alive once its work is done
  try {
    await runStudy({ ...o, worker: { index: Number(m[1]), count: Number(m[2]) } });
  } finally {
    stop.dispose();
  }
}

/** `study prefs` overrides: it samples (the study's default sizes, 1,024 prompts × 8 and 480 reward-model steps, are
 *  the recipe) one draw, and ships it for every study to adopt. */
export const SHIP_PREFS: Record<string, unknown> = {
  prefs: { perSeed: false, source: 'sample' },
};

export const prefsCli = () =>
  command('prefs', 'sample the preference pairs and train the reward model once, from the shipped base, and write them with PROVENANCE.json (what assets/prefs ships for --quick)')
    .option('--out <dir>', 'directory to write (refused if it holds pairs)', 'runs/study-prefs')
    .option('--config <file>', `YAML/JSON overriding the study defaults and these: ${JSON.stringify(SHIP_PREFS)}`)
    .option('--cache <dir>', 'cache for the processed corpus (default .alignlab/cache)')
    .option('--device <device>', 'wasm (default) or webgpu')
    .name('study prefs');

async function prefsMain(argv: string[]): Promise<number | void> {
  const cmd = prefsCli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<{ out: string; config?: string; cache?: string; device?: string }>();
  const out = resolve(f.out);
  if (existsSync(join(out, PREFS_PROVENANCE))) throw new UsageError(`${out}: already holds preference pairs; choose another --out or move it away first`);
  const config = resolveStudyConfig({ file: f.config, defaults: SHIP_PREFS });
  const work = `${out}-work`; // the study's working files (checkpoints, logs); only the results move to --out
  const stop = interrupts((sig) => `${sig}: stopping; run the same command to continue`, { exitAtOnce: true });
  try {
    const { prefs } = await runStudy({ config, out: work, cacheDir: resolve(f.cache ?? '.alignlab/cache'), device: f.device, prerequisitesOnly: true, command: ['alignlab', 'study', 'prefs', ...argv].join(' ') });
    mkdirSync(out, { recursive: true });
    for (const x of ['preferences.jsonl', 'preferences-cost.json', 'reward-model']) cpSync(join(work, x), join(out, x), { recursive: true });
    writeFileSync(join(out, PREFS_PROVENANCE), JSON.stringify(prefs, null, 2) + '\n');
    console.error(`study prefs: ${prefs!.pairs} pairs, reward model held-out accuracy ${prefs!.rewardModel.heldOutAccuracy.toFixed(3)} on ${prefs!.rewardModel.n} pairs → ${out}`);
  } finally {
    stop.dispose();
  }
}

export async function main(argv: string[]): Promise<number | void> {
  if (argv[0] === 'pretrain') return pretrainMain(argv.slice(1));
  if (argv[0] === 'prefs') return prefsMain(argv.slice(1));
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<Flags>();
  const config = resolveStudyConfig({ file: f.config, quick: f.quick });
  const out = resolve(f.out ?? (f.quick ? 'runs/study-quick' : 'runs/study'));
  const cacheDir = resolve(f.cache ?? '.alignlab/cache');
  if (f.worker !== undefined) return helperMain(f.worker, { config, out, cacheDir, device: f.device });
  const t = performance.now();
  console.error(DASHBOARD_HINT);
  const stop = interrupts((sig) => `${sig}: stopping; finished runs are kept in ${out}/runs, run the same command to continue`, { exitAtOnce: true });
  try {
    const { study } = await runStudy({
      config,
      out,
      cacheDir,
      device: f.device,
      command: ['alignlab', 'study', ...argv].join(' '),
      workers: f.workers ?? DEFAULT_WORKERS,
      // The same program, the same flags, plus --worker i/n: a helper reads the same config and output directory.
      spawnWorker: (i, n) => spawn(process.execPath, [...process.execArgv, process.argv[1]!, 'study', ...argv, '--worker', `${i}/${n}`], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] }),
    });
    // The study runs and records; the analysis and the report are written here, above both study/ and report/.
    const report = await writeReport(study, out);
    const minutes = (performance.now() - t) / 60000;
    console.log('');
    if (report.recommendation) console.log(report.recommendation.paragraph);
    console.log(`\n${study.runs.length} runs in ${minutes.toFixed(1)} min → ${out}/report.html, ${out}/report.md`);
  } finally {
    stop.dispose();
  }
}
