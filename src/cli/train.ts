// `alignlab train sft|rm|dpo|ppo|grpo|rloo --config FILE.yaml [--resume RUN_DIR] [--out DIR] [--device wasm|webgpu]`
//
// Validates the config (every default filled in, saved as <run dir>/config.resolved.json), trains, and
// saves the result as an HF model directory <run dir>/final. Ctrl-C stops after the current update with
// a checkpoint (a second Ctrl-C quits at once); `--resume RUN_DIR` continues that run with its saved
// config and ends where an uninterrupted run would. docs/training.md lists every config key.

import { basename, resolve } from 'node:path';
import { parseFlags, UsageError } from './args.js';
import { ALGORITHMS, loadResolvedConfig, resolveConfig, type Algorithm, type TrainConfig } from '../train/config.js';
import { describeSummary } from '../train/loop.js';
import { formatNumber } from '../train/progress.js';
import { runTraining } from '../train/run.js';
import { resolveDevice } from '../engine/index.js';

const SPEC = {
  config: { type: 'string', help: 'YAML or JSON config (docs/training.md)' },
  resume: { type: 'string', help: 'continue the run in this directory from its latest checkpoint, with its saved config' },
  out: { type: 'string', help: 'run directory (overrides output_dir)' },
  device: { type: 'string', help: 'wasm (CPU, default) | webgpu | cpu (overrides the config and $ALIGNLAB_DEVICE)' },
  'stop-after': { type: 'number', help: 'stop with a checkpoint once this many steps are done (resume later); the schedule still spans the whole run' },
  progress: { type: 'boolean', help: 'draw the progress bar (default: on a terminal)' },
  help: { type: 'boolean', default: false },
} as const;

export const USAGE = `usage: alignlab train <${ALGORITHMS.join('|')}> --config FILE.yaml [--out DIR] [--device wasm|webgpu] [--stop-after N]
       alignlab train <algorithm> --resume RUN_DIR

${Object.entries(SPEC)
  .filter(([, s]) => 'help' in s && s.help)
  .map(([k, s]) => `  --${k.padEnd(11)} ${(s as { help: string }).help}`)
  .join('\n')}`;

/** The metrics worth a line after a run, in this order (TRL names), when the run logged them. */
const SHOWN = [
  'loss', 'eval_loss', 'accuracy', 'eval_accuracy', 'rewards/accuracies', 'eval_rewards/accuracies', 'rewards/margins', 'eval_rewards/margins',
  'objective/rlhf_reward', 'objective/scores', 'objective/kl', 'objective/entropy', 'policy/clipfrac_avg', 'val/clipfrac_avg',
];

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv, SPEC);
  if (f.help) {
    console.log(USAGE);
    return;
  }
  const [algorithm, ...extra] = f._;
  if (!algorithm) throw new UsageError(`name what to train\n${USAGE}`);
  if (!(ALGORITHMS as readonly string[]).includes(algorithm)) throw new UsageError(`unknown algorithm "${algorithm}" (one of ${ALGORITHMS.join(', ')})`);
  if (extra.length) throw new UsageError(`unexpected argument "${extra[0]}"`);
  const stopAfter = f['stop-after'];
  if (stopAfter !== undefined && !(Number.isInteger(stopAfter) && stopAfter >= 1)) throw new UsageError('--stop-after must be a positive integer');
  const cfg = configFromFlags(algorithm as Algorithm, f);
  // Device: --device, else $ALIGNLAB_DEVICE, else the config's; recorded in the resolved config.
  const device = f.device ?? process.env.ALIGNLAB_DEVICE;
  if (device !== undefined) cfg.device = resolveDevice(device);

  // Ctrl-C / SIGTERM: finish the current update, checkpoint, stop. The handler removes itself, so a
  // second signal gets Node's default behaviour (exit at once).
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.stderr.write(`\n${sig}: stopping after this step with a checkpoint (again to quit at once)\n`);
    abort.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let result;
  try {
    result = await runTraining(cfg, { resume: f.resume !== undefined, signal: abort.signal, stopAfter, progress: f.progress ?? 'auto' });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  const { summary: s, finalDir, saved } = result;
  console.log(describeSummary(s));
  const shown = SHOWN.filter((k) => s.finalMetrics[k] !== undefined).map((k) => `  ${k} ${formatNumber(s.finalMetrics[k]!)}`);
  if (shown.length) console.log(shown.join('\n'));
  const resumeHint = `alignlab train ${algorithm} --resume ${s.runDir}`;
  if (finalDir) console.log(`${saved === 'reward_model' ? 'reward model' : 'model'} saved to ${finalDir}`);
  else if (s.status === 'stopped') console.log(`stopped at step ${s.step} (checkpoint ${s.lastCheckpoint}); continue with: ${resumeHint}`);
  if (s.status === 'interrupted') throw new Error(`interrupted at step ${s.step}; checkpoint ${s.lastCheckpoint}; continue with: ${resumeHint}`);
}

/** The run's config: the file's (with --out), or on --resume the run's own saved config. */
function configFromFlags(algorithm: Algorithm, f: { config?: string; resume?: string; out?: string }): TrainConfig {
  if (f.resume !== undefined) {
    if (f.out !== undefined) throw new UsageError('--out and --resume do not go together: a resumed run stays in its directory');
    const c = loadResolvedConfig(f.resume, algorithm);
    if (f.config !== undefined) process.stderr.write(`resuming with the run's saved config (${c.output_dir}/config.resolved.json); --config ${f.config} is not read\n`);
    return c;
  }
  if (f.config === undefined) throw new UsageError(`--config FILE is required (or --resume RUN_DIR)\n${USAGE}`);
  const c = resolveConfig(f.config, algorithm);
  if (f.out !== undefined) {
    const derived = c.run_name === basename(c.output_dir); // run_name followed output_dir: keep following
    c.output_dir = resolve(f.out);
    if (derived) c.run_name = basename(c.output_dir);
  }
  return c;
}
