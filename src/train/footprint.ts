// What a training method costs to understand and to hold, read from the code and the run's config rather than
// from names: the study's "complexity" columns.
//
//   modelsResident   the parameter trees the trainer keeps for the whole run (trainers/*.ts say which, given the
//                    config: a SimPO run holds no reference, PPO with a reward function holds no reward model, …)
//   hyperparameters  the keys of the method's config section that the run sets (the study writes them into the
//                    run's YAML: what it chose or sweeps), excluding `reward` (a data source, not a knob)
//   lossLines        non-blank, non-comment lines of the method's loss modules (losses/<file>.ts), whole files:
//                    equation comments are not counted, every line of code that defines the objective is (PPO's
//                    objective is its loss and its rollout processing: ppo.ts + gae.ts)
//
// The loss file is read as TypeScript source both when running from src/ (tsx) and from dist/ (the .js.map that
// `npm run build` writes names the .ts it came from), so the count is the same either way.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Algorithm } from './config.js';
import { dpoResidentModels, type PreferenceLoss } from './trainers/offline.js';
import { ppoResidentModels } from './trainers/ppo.js';
import { groupResidentModels } from './trainers/grpo.js';

export interface MethodFootprint {
  /** Names of the parameter trees resident while training (policy, reference, value model, reward model). */
  models: string[];
  modelsResident: number;
  hyperparameters: number;
  lossLines: number;
  /** The loss modules the lines were counted in (paths relative to src/train). */
  lossFiles: string[];
}

/** A run's config as the study writes it: the method's section holds only what the run sets. */
export type FootprintConfig = Partial<Record<Algorithm, Record<string, unknown>>>;

/** The loss modules of an algorithm (and, for dpo, of its loss type). */
export function lossModules(algorithm: Algorithm, lossType?: string): string[] {
  if (algorithm === 'dpo') return [lossType === 'simpo' ? 'losses/simpo' : 'losses/dpo'];
  if (algorithm === 'ppo') return ['losses/ppo', 'losses/gae'];
  return [{ sft: 'losses/sft', rm: 'losses/reward', grpo: 'losses/grpo', rloo: 'losses/rloo' }[algorithm]];
}

/** Models, hyperparameters and loss lines of one training run (see the header). */
export function methodFootprint(algorithm: Algorithm, config: FootprintConfig): MethodFootprint {
  const section = config[algorithm] ?? {};
  const reward = section.reward as { model?: string | null } | undefined;
  const withRm = !!reward?.model;
  let models: string[];
  switch (algorithm) {
    case 'sft':
      models = ['policy'];
      break;
    case 'rm':
      models = ['reward model'];
      break;
    case 'dpo':
      models = dpoResidentModels((section.loss_type as PreferenceLoss | undefined) ?? 'sigmoid');
      break;
    case 'ppo':
      models = ppoResidentModels({ valueModel: (section.value_model as 'separate' | 'shared' | undefined) ?? 'separate', rewardModel: withRm });
      break;
    case 'grpo':
    case 'rloo':
      models = groupResidentModels({ rewardModel: withRm });
      break;
  }
  const files = lossModules(algorithm, section.loss_type as string | undefined);
  return {
    models,
    modelsResident: models.length,
    hyperparameters: Object.keys(section).filter((k) => k !== 'reward').length,
    lossLines: files.reduce((n, f) => n + codeLines(f), 0),
    lossFiles: files.map((f) => `${f}.ts`),
  };
}

/** Non-blank lines that are not only a comment, of src/train/<module>.ts. */
export function codeLines(module: string): number {
  const text = readFileSync(sourceOf(module), 'utf-8');
  return text.split('\n').filter((l) => l.trim() !== '' && !/^\s*(\/\/|\/\*|\*)/.test(l)).length;
}

/** The TypeScript source of a module of src/train, from src/ itself or through dist/'s source map. */
function sourceOf(module: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const ts = join(here, `${module}.ts`);
  if (existsSync(ts)) return ts;
  const map = join(here, `${module}.js.map`);
  if (existsSync(map)) {
    const m = JSON.parse(readFileSync(map, 'utf-8')) as { sources?: string[]; sourceRoot?: string };
    const src = m.sources?.[0] && resolve(dirname(map), m.sourceRoot ?? '', m.sources[0]);
    if (src && existsSync(src)) return src;
  }
  throw new Error(`methodFootprint: the source of train/${module} is not found beside ${here} (nor through its source map)`);
}
