// Train configs: defaults filled once, per-algorithm resolution, and errors that name file, line and field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig, saveResolved, loopOptions, resolveSteps, ConfigFileError, LEARNING_RATE_DEFAULTS, type TrainConfig } from '../../src/train/config.js';
import { DPO_DEFAULTS } from '../../src/train/losses/dpo.js';
import { SIMPO_DEFAULTS } from '../../src/train/losses/simpo.js';
import { PPO_DEFAULTS } from '../../src/train/losses/ppo.js';

const dir = mkdtempSync(join(tmpdir(), 'alignlab-cfg-'));
const file = (name: string, text: string) => {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
};

test('a minimal DPO config resolves with TRL/HF defaults and absolute paths', () => {
  const f = file('dpo.yaml', 'model:\n  dir: ./m\ndata:\n  train: prefs.jsonl\nmax_steps: 50\n');
  const c = resolveConfig(f, 'dpo');
  assert.equal(c.algorithm, 'dpo');
  assert.equal(c.dpo.beta, DPO_DEFAULTS.beta);
  assert.equal(c.dpo.loss_type, 'sigmoid');
  assert.equal(c.learning_rate, LEARNING_RATE_DEFAULTS.dpo);
  assert.equal(c.seed, 42);
  assert.equal(c.per_device_train_batch_size, 8);
  assert.equal(c.max_grad_norm, 1.0);
  assert.equal(c.lr_scheduler_type, 'linear');
  assert.deepEqual(c.model, { dir: join(dir, 'm') });
  assert.equal(c.data.train, join(dir, 'prefs.jsonl'));
  assert.equal(c.data.eval_fraction, 0.05);
  assert.match(c.output_dir, /runs\/dpo-dpo$/);
  assert.equal(c.run_name, 'dpo-dpo');
  // saveResolved writes exactly the resolved object.
  const out = saveResolved(join(dir, 'run1'), c);
  assert.deepEqual(JSON.parse(readFileSync(out, 'utf-8')), JSON.parse(JSON.stringify(c)));
});

test('SimPO takes its own beta default; explicit values win; loop options follow the config', () => {
  const simpo = resolveConfig(file('s.yaml', 'model: {dir: m}\ndata: {train: p.jsonl}\ndpo:\n  loss_type: simpo\n'), 'dpo');
  assert.equal(simpo.dpo.beta, SIMPO_DEFAULTS.beta);
  assert.equal(simpo.dpo.simpo_gamma, SIMPO_DEFAULTS.gamma);
  const c = resolveConfig(
    file(
      'full.json',
      JSON.stringify({
        model: { dir: 'm' },
        data: { train: 'p.jsonl' },
        max_steps: 100,
        learning_rate: 3e-4,
        warmup_ratio: 0.1,
        lr_scheduler_type: 'cosine',
        gradient_accumulation_steps: 4,
        max_grad_norm: 0,
        save_steps: 20,
        eval_steps: 10,
        output_dir: 'out/x',
        dpo: { beta: 0.5, loss_type: 'ipo' },
      }),
    ),
    'dpo',
  );
  assert.equal(c.dpo.beta, 0.5);
  const lo = loopOptions(c, resolveSteps(c, 1000));
  assert.equal(lo.steps, 100);
  assert.equal(lo.runDir, join(dir, 'out/x'));
  assert.equal(lo.runId, 'x');
  assert.deepEqual(lo.schedule, { kind: 'cosine', warmupSteps: 10, minLrRatio: 0 });
  assert.equal(lo.maxGradNorm, null);
  assert.equal(lo.gradAccum, 4);
  assert.equal(lo.optimizer!.lr, 3e-4);
  assert.equal(lo.evalEvery, 10);
  assert.equal(lo.checkpointEvery, 20);
});

test('PPO needs a reward source and gets TRL defaults; steps derive from epochs when max_steps is null', () => {
  const c = resolveConfig(file('ppo.yaml', 'model: {dir: m}\ndata: {train: prompts.jsonl}\nper_device_train_batch_size: 4\nppo:\n  reward: {model: rm}\n'), 'ppo') as TrainConfig<'ppo'>;
  assert.equal(c.ppo.kl_coef, PPO_DEFAULTS.klCoef);
  assert.equal(c.ppo.num_ppo_epochs, 4);
  assert.equal(c.ppo.lam, 0.95);
  assert.equal(c.ppo.cliprange_value, 0.2);
  assert.equal(c.ppo.vf_coef, 0.1);
  assert.equal(c.ppo.missing_eos_penalty, null);
  assert.equal(c.ppo.reward.model, join(dir, 'rm'));
  assert.equal(resolveSteps(c, 10), 6); // 3 epochs × floor(10 / 4) updates
  assert.throws(() => resolveSteps(c, 3), /fewer than one update of 4 rows/);
});

test('errors name the file, the line and the field', () => {
  const cases: [string, string, 'dpo' | 'ppo' | 'sft', RegExp][] = [
    ['e1.yaml', 'model: {dir: m}\ndata:\n  train: p.jsonl\n\ndpo:\n  beta: high\n', 'dpo', /e1\.yaml:6: field "dpo\.beta": .*expected number/],
    ['e2.yaml', 'model: {dir: m}\ndata:\n  train: p.jsonl\n  evl: q.jsonl\n', 'dpo', /e2\.yaml:4: field "data\.evl": is not a known key \(known here: train, eval/],
    ['e3.yaml', 'model: {dir: m}\ndata: {train: p.jsonl}\nlearning_rat: 1\n', 'sft', /e3\.yaml:3: field "learning_rat": is not a known key/],
    ['e4.yaml', 'model: {dir: m}\n', 'sft', /e4\.yaml:1: field "data": is required/],
    ['e5.yaml', 'model: {dir: m}\ndata: {train: p.jsonl}\nppo:\n  reward: {function: f, model: r}\n', 'ppo', /e5\.yaml:4: field "ppo\.reward": set exactly one of "model" and "function"/],
    ['e6.yaml', 'model: {dir: m}\ndata: {train: p.jsonl}\nppo:\n  reward: {function: f}\n', 'dpo', /e6\.yaml:3: field "ppo": is a section for "ppo" but this config trains "dpo"/],
    ['e7.yaml', 'model: {dir: m}\ndata: {train: p.jsonl\nseed: 1\n', 'sft', /e7\.yaml:\d+: is not valid YAML/],
    ['e8.yaml', 'model: {dir: m}\ndata: {train: p.jsonl}\ndpo:\n  loss_type: kto\n', 'dpo', /e8\.yaml:4: field "dpo\.loss_type": .*sigmoid/],
    ['e9.yaml', 'model:\n  path: m\ndata: {train: p.jsonl}\n', 'sft', /e9\.yaml:1: field "model": must be \{ dir: MODEL_DIR \} or \{ init/],
    ['e10.yaml', 'algorithm: ppo\nmodel: {dir: m}\ndata: {train: p.jsonl}\n', 'sft', /e10\.yaml:1: field "algorithm": is "ppo" but the command trains "sft"/],
    ['e11.yaml', 'model:\n  init: {model_type: bert}\n  tokenizer: t.json\ndata: {train: p.jsonl}\n', 'sft', /e11\.yaml:2: .*model_type.*not a supported architecture/],
    ['e12.yaml', 'model: {dir: m}\ndata: {train: p.jsonl}\nper_device_train_batch_size: 0\n', 'sft', /e12\.yaml:3: field "per_device_train_batch_size": /],
  ];
  for (const [name, text, algo, re] of cases) {
    const f = file(name, text);
    assert.throws(() => resolveConfig(f, algo), (e: unknown) => e instanceof ConfigFileError && re.test(e.message) && e.file === f, `${name}: ${(() => {
      try {
        resolveConfig(f, algo);
        return 'no error';
      } catch (e) {
        return (e as Error).message;
      }
    })()}`);
  }
  assert.throws(() => resolveConfig(join(dir, 'nope.yaml'), 'sft'), /nope\.yaml: does not exist/);
});
