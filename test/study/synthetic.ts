// Synthetic study results with known structure, for analysis / recommendation / report tests.
// Each run's reward follows r(kl) = base + gain·(1 − e^(−kl/2)) + its seed's offset; KL grows linearly with
// steps at a rate set by the setting. Numbers are made up; the shapes are what the tests rely on.

import { makeRng } from '../../src/stats/index.js';
import type { Checkpoint, Complexity, Method, Run, Setting, StudyResults } from '../../src/study/types.js';
import { addCheckpoint, finishRun, newRun } from '../../src/study/types.js';

export interface SynthMethod {
  method: Method;
  /** Each setting and the KL it adds per step. */
  settings: { setting: Setting; klPerStep: number }[];
  /** Reward gain at saturation. */
  gain: number;
  /** Std of the per-seed reward offset. */
  seedNoise: number;
  /** Seeds whose runs collapse (entropy → 5% of base from the middle on). */
  collapseSeeds?: number[];
  wallSeconds: number;
  generationShare: number;
  complexity: Complexity;
}

export const BASE: Checkpoint = {
  step: 0, reward: 0.05, rewardStd: 0.3, n: 64, kl: 0, entropy: 4, distinct1: 0.5, distinct2: 0.8, length: 12, perplexity: 40, winRate: 0.5,
};

export function syntheticRun(m: SynthMethod, s: SynthMethod['settings'][number], seed: number, steps: number, offset: number): Run {
  const run = newRun(m.method, s.setting, seed, m.complexity);
  const collapse = m.collapseSeeds?.includes(seed) ?? false;
  for (let step = 0; step <= steps; step++) {
    const kl = s.klPerStep * step;
    const late = collapse && step >= steps / 2;
    addCheckpoint(run, {
      ...BASE,
      step,
      kl,
      reward: BASE.reward + m.gain * (1 - Math.exp(-kl / 2)) + (step === 0 ? 0 : offset),
      entropy: late ? 0.05 * BASE.entropy : BASE.entropy * (1 - 0.02 * kl),
      distinct1: BASE.distinct1 * (1 - 0.01 * kl),
      distinct2: BASE.distinct2 * (1 - 0.01 * kl),
      winRate: 0.5 + 0.4 * (1 - Math.exp(-kl / 2)),
    });
  }
  run.cost = {
    wallSeconds: m.wallSeconds,
    tokensProcessed: 1000 * steps,
    generationSeconds: m.generationShare * m.wallSeconds,
    forwardSeconds: 0.2 * m.wallSeconds,
    backwardSeconds: 0.2 * m.wallSeconds, // generation + forward + backward ≤ wall for every synthetic method
    peakRssBytes: 200 * 2 ** 20,
  };
  run.samples = [
    { prompt: 'the state of the', completion: 'union is strong and <good> & "great"', reward: 0.8 },
    { prompt: 'we must', completion: 'work together', reward: 0.3 },
  ];
  return finishRun(run, 'ok');
}

export function syntheticStudy(methods: SynthMethod[], seeds = [1, 2, 3], steps = 10, rngSeed = 7): StudyResults {
  const rng = makeRng(rngSeed);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const runs: Run[] = [];
  for (const m of methods) {
    for (const seed of seeds) {
      const offset = m.seedNoise * normal();
      for (const s of m.settings) runs.push(syntheticRun(m, s, seed, steps, offset));
    }
  }
  return {
    version: 1,
    name: 'synthetic',
    base: BASE,
    baseSamples: [{ prompt: 'the state of the', completion: 'union is', reward: 0 }],
    rewardModel: { heldOutAccuracy: 0.71, n: 200 },
    prerequisites: [{ name: 'reward model', cost: { wallSeconds: 20, tokensProcessed: 1e5, generationSeconds: 0, forwardSeconds: 5, backwardSeconds: 10, peakRssBytes: 1e8 }, usedBy: ['ppo'] }],
    provenance: { device: 'wasm', deviceName: 'test CPU', versions: { node: process.version }, seeds, startedAt: '2026-01-01T00:00:00Z', finishedAt: '2026-01-01T00:10:00Z', command: 'alignlab study --quick' },
    runs,
  };
}

export const DPO_CX: Complexity = { modelsInMemory: 2, hyperparameters: 1, lossLines: 6 };
export const PPO_CX: Complexity = { modelsInMemory: 4, hyperparameters: 7, lossLines: 30 };

/** DPO and PPO with chosen gains: the test decides who should win. */
export function dpoVsPpo(o: { dpoGain: number; ppoGain: number; noise?: number; dpoWall?: number; ppoWall?: number; ppoCollapseSeeds?: number[]; seeds?: number[] }): StudyResults {
  const noise = o.noise ?? 0.01;
  return syntheticStudy(
    [
      { method: 'dpo', settings: [{ setting: { beta: 0.1 }, klPerStep: 0.6 }, { setting: { beta: 0.5 }, klPerStep: 0.3 }], gain: o.dpoGain, seedNoise: noise, wallSeconds: o.dpoWall ?? 30, generationShare: 0.1, complexity: DPO_CX },
      { method: 'ppo', settings: [{ setting: { klCoef: 0.05 }, klPerStep: 0.8 }, { setting: { klCoef: 0.2 }, klPerStep: 0.4 }], gain: o.ppoGain, seedNoise: noise, wallSeconds: o.ppoWall ?? 80, generationShare: 0.6, complexity: PPO_CX, collapseSeeds: o.ppoCollapseSeeds },
    ],
    o.seeds ?? [1, 2, 3],
  );
}

/**
 * DPO and PPO evaluated on the same P held-out prompts, with per-prompt rewards:
 *   reward(method, seed, checkpoint, prompt) = curve(kl) + shift[method] + seedOffset + promptEffect[p] + noise,
 * where the prompt effects (how easy a prompt is to continue positively) are shared by every checkpoint and
 * the base, and the noise is fresh per checkpoint and prompt. Both methods put checkpoints at the same KLs,
 * so at any matched KL the true difference DPO − PPO is exactly shift.dpo − shift.ppo.
 */
export interface PromptStudyOptions {
  prompts?: number;
  seeds?: number[];
  shift: { dpo: number; ppo: number };
  promptSd?: number;
  noiseSd?: number;
  seedSd?: number;
  /** Checkpoint KLs of each run (default 1, 2, 3, 4). */
  kls?: number[];
  rngSeed?: number;
}

export const promptCurve = (kl: number) => 0.05 + 0.6 * (1 - Math.exp(-kl / 2));

export function promptStudy(o: PromptStudyOptions): StudyResults {
  const P = o.prompts ?? 64, seeds = o.seeds ?? [1, 2, 3], kls = o.kls ?? [1, 2, 3, 4];
  const { promptSd = 0.2, noiseSd = 0.3, seedSd = 0 } = o;
  const rng = makeRng(o.rngSeed ?? 1);
  const normal = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const effect = Array.from({ length: P }, () => promptSd * normal());
  const meanOf = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const evalAt = (truth: number, step: number, kl: number): Checkpoint => {
    const promptRewards = effect.map((e) => truth + e + noiseSd * normal());
    return { ...BASE, step, kl, reward: meanOf(promptRewards), n: P, promptRewards };
  };
  const base = evalAt(promptCurve(0), 0, 0);
  const runs: Run[] = [];
  for (const method of ['dpo', 'ppo'] as const) {
    for (const seed of seeds) {
      const offset = seedSd * normal();
      const run = newRun(method, { k: 1 }, seed, method === 'dpo' ? DPO_CX : PPO_CX);
      kls.forEach((kl, i) => addCheckpoint(run, evalAt(promptCurve(kl) + o.shift[method] + offset, i + 1, kl)));
      run.cost = { wallSeconds: 10, tokensProcessed: 1000, generationSeconds: 1, forwardSeconds: 2, backwardSeconds: 3, peakRssBytes: 1e8 };
      runs.push(finishRun(run, 'ok'));
    }
  }
  const s = syntheticStudy([], seeds);
  return { ...s, base, runs };
}

/** The same study with the per-prompt rewards removed (as results written before they were recorded). */
export function withoutPromptRewards(s: StudyResults): StudyResults {
  const strip = (c: Checkpoint): Checkpoint => {
    const { promptRewards: _drop, ...rest } = c;
    return rest;
  };
  return { ...s, base: strip(s.base), runs: s.runs.map((r) => ({ ...r, checkpoints: r.checkpoints.map(strip) })) };
}
