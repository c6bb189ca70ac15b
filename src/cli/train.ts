// `alignlab train sft|rm|dpo|ppo|grpo|rloo --config FILE.yaml [--resume RUN_DIR] [--out DIR] [--device wasm|webgpu]`
//
// Validates the config (every default filled in, saved as <run dir>/config.resolved.json), trains, and
// saves the result as an HF model directory <run dir>/final. Ctrl-C / SIGTERM stop after the current update
// with a checkpoint and exit 130 / 143 (a second signal quits at once); `--resume RUN_DIR` continues that run
// with its saved config and ends where an uninterrupted run would. docs/training.md lists every config key.

import { basename, resolve } from 'node:path';
import { Argument, command, parse, positiveInteger, UsageError } from './args.js';
import { interrupts } from './signals.js';
import { DASHBOARD_HINT } from './dashboard.js';
import { ALGORITHMS, loadResolvedConfig, resolveConfig, type Algorithm, type TrainConfig } from '../train/config.js';
import { describeSummary } from '../train/loop.js';
import { formatNumber } from '../train/progress.js';
import { runTraining } from '../train/run.js';
import { resolveDevice } from '../engine/index.js';

export const cli = () =>
  command('train', 'train a model with a TRL-style config; Ctrl-C stops with a checkpoint that --resume continues')
    .addArgument(new Argument('<algorithm>', 'what to train').choices(ALGORITHMS))
    .option('--config <file>', 'YAML or JSON config (docs/training.md)')
    .option('--resume <run_dir>', 'continue the run in this directory from its latest checkpoint, with its saved config')
    .option('--out <dir>', 'run directory (overrides output_dir)')
    .option('--device <device>', 'wasm (CPU, default) | webgpu | cpu (overrides the config and $ALIGNLAB_DEVICE)')
    .option('--stop-after <n>', 'stop with a checkpoint once this many steps are done (resume later); the schedule still spans the whole run', positiveInteger)
    .option('--progress', 'draw the progress bar (default: on a terminal)')
    .option('--no-progress', 'never draw the progress bar')
    .addHelpText('after', `\nExamples:\n  alignlab train dpo --config examples/train/dpo.yaml\n  alignlab train dpo --resume runs/dpo`);

interface Flags {
  config?: string;
  resume?: string;
  out?: string;
  device?: string;
  stopAfter?: number;
  progress?: boolean;
}

/** The metrics worth a line after a run, in this order (TRL names), when the run logged them. */
const SHOWN = [
  'loss', 'eval_loss', 'accuracy', 'eval_accuracy', 'rewards/accuracies', 'eval_rewards/accuracies', 'rewards/margins', 'eval_rewards/margins',
  'objective/rlhf_reward', 'objective/scores', 'objective/kl', 'objective/entropy', 'policy/clipfrac_avg', 'val/clipfrac_avg',
];

export async function main(argv: string[]): Promise<void | number> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<Flags>();
  const algorithm = cmd.args[0]!;
  const stopAfter = f.stopAfter;
  const cfg = configFromFlags(algorithm as Algorithm, f);
  // Device: --device, else $ALIGNLAB_DEVICE, else the config's; recorded in the resolved config.
  const device = f.device ?? process.env.ALIGNLAB_DEVICE;
  if (device !== undefined) cfg.device = resolveDevice(device);

  // The hint is for a run that starts now; a --resume that is refused (a completed run) stays one line.
  if (f.resume === undefined) console.error(DASHBOARD_HINT);
  // Ctrl-C / SIGTERM: the loop finishes the current update, checkpoints and returns 'interrupted'.
  const stop = interrupts((sig) => `${sig}: stopping after this step with a checkpoint (again to quit at once)`);
  let result;
  try {
    result = await runTraining(cfg, { resume: f.resume !== undefined, signal: stop.signal, stopAfter, progress: f.progress ?? 'auto' });
  } finally {
    stop.dispose();
  }
  const { summary: s, finalDir, saved } = result;
  console.log(describeSummary(s));
  const shown = SHOWN.filter((k) => s.finalMetrics[k] !== undefined).map((k) => `  ${k} ${formatNumber(s.finalMetrics[k]!)}`);
  if (shown.length) console.log(shown.join('\n'));
  const resumeHint = `alignlab train ${algorithm} --resume ${s.runDir}`;
  if (finalDir) console.log(`${saved === 'reward_model' ? 'reward model' : 'model'} saved to ${finalDir}`);
  else if (s.status === 'stopped') console.log(`stopped at step ${s.step} (checkpoint ${s.lastCheckpoint}); continue with: ${resumeHint}`);
  if (s.status === 'interrupted') {
    console.error(`alignlab train: interrupted at step ${s.step}; checkpoint ${s.lastCheckpoint}; continue with: ${resumeHint}`);
    return stop.exitCode() ?? 130;
  }
}

/** The run's config: the file's (with --out), or on --resume the run's own saved config. */
function configFromFlags(algorithm: Algorithm, f: { config?: string; resume?: string; out?: string }): TrainConfig {
  if (f.resume !== undefined) {
    if (f.out !== undefined) throw new UsageError('--out and --resume do not go together: a resumed run stays in its directory');
    const c = loadResolvedConfig(f.resume, algorithm);
    if (f.config !== undefined) process.stderr.write(`resuming with the run's saved config (${c.output_dir}/config.resolved.json); --config ${f.config} is not read\n`);
    return c;
  }
  if (f.config === undefined) throw new UsageError(`--config FILE is required (or --resume RUN_DIR); alignlab train --help shows the flags`);
  const c = resolveConfig(f.config, algorithm);
  if (f.out !== undefined) {
    const derived = c.run_name === basename(c.output_dir); // run_name followed output_dir: keep following
    c.output_dir = resolve(f.out);
    if (derived) c.run_name = basename(c.output_dir);
  }
  return c;
}
