// What the study report renders: the analysed study, handed over by the study command (src/cli/study-report.ts builds it).
// The report computes nothing about the study and imports nothing from src/study: these interfaces are its
// contract, and the study's own result types satisfy them (checked by the compiler where the study calls it).
// Methods are plain ids ('dpo', 'ppo', …) with display labels carried in `labels`.

import type { DiffInterval, Estimate, Interval } from '../stats/index.js';

export interface ReportMetrics {
  reward: number;
  entropy: number;
  distinct1: number;
  distinct2: number;
  length: number;
  perplexity: number;
  winRate: number;
  eosRate?: number;
  fluency?: number;
}

export interface ReportCheckpoint extends ReportMetrics {
  step: number;
  kl: number;
  rewardStd: number;
  n: number;
  promptRewards?: readonly number[];
}

export interface ReportMatchedPoint {
  kl: number;
  reward: Interval;
  prompts: number;
  crossFit: boolean;
  metrics: ReportMetrics;
  gain: DiffInterval;
}

export interface ReportComparison {
  a: string;
  b: string;
  kl: number;
  aReward: Interval;
  bReward: Interval;
  diff: DiffInterval;
  pHolm: number;
  winner: string | null;
  holmWinner: string | null;
}

export interface ReportMethod {
  method: string;
  label: string;
  runs: number;
  seeds: readonly number[];
  settings: readonly string[];
  candidatesPerSeed: number;
  frontier: readonly { kl: number; reward: number }[];
  reach: number;
  matched: readonly ReportMatchedPoint[];
  headline: ReportMatchedPoint | null;
  improvement: { kls: readonly number[]; improved: boolean; tested: boolean };
  degenerated: string | null;
  stability: {
    runs: number;
    collapsed: number;
    diverged: number;
    degenerated: number;
    seedStd: number;
    perSetting: readonly { setting: string; n: number; mean: number; std: number }[];
    failures: readonly { runId: string; status: string; reason: string }[];
  };
  cost: {
    wallSeconds: Interval;
    tokensProcessed: number;
    tokensPerSecond: number;
    generationShare: number;
    forwardShare: number;
    backwardShare: number;
    splitConsistent: boolean;
    peakRssBytes: number;
    prerequisiteSeconds: number;
    prerequisites: readonly string[];
    oneModelSeconds: number;
  };
  complexity: { modelsInMemory: number; hyperparameters: number; lossLines: number; models?: readonly string[]; lossFile?: string; consistent: boolean };
  curves: readonly { setting: string; step: number; mean: number; lo: number; hi: number; n: number }[];
}

export interface ReportAnalysis {
  methods: readonly string[];
  byMethod: { readonly [method: string]: ReportMethod | undefined };
  base: ReportCheckpoint;
  grid: readonly number[];
  headlineKl: number | null;
  headlineRule: string;
  comparisons: readonly ReportComparison[];
  gridComparisons: readonly ReportComparison[];
  prompts: number;
  crossFit: boolean;
  rewardModel: Interval | null;
  /** PPO − PPO-GT at a shared KL: what the learned reward model costs PPO. */
  rewardModelCost: ReportComparison | null;
  baseModel: { heldOutLoss: number; ngramLoss: number } | null;
  bootstrap: { iters: number; level: number; seed: number };
}

export interface ReportRecommendation {
  verdicts: { readonly [criterion: string]: { winner: string | null; text: string } };
  overall: string | null;
  paragraph: string;
}

export interface ReportSample {
  prompt: string;
  completion: string;
  reward: number;
}

/** One evaluated checkpoint, for the scatter plots. */
export interface ReportPoint {
  method: string;
  setting: string;
  seed: number;
  step: number;
  kl: number;
  reward: number;
  fluency?: number;
  eosRate?: number;
  length: number;
}

export interface StudyReportInput {
  name?: string;
  /** The two methods the headline table compares. */
  a: string;
  b: string;
  labels: { readonly [method: string]: string };
  analysis: ReportAnalysis;
  recommendation: ReportRecommendation | null;
  /** The rules behind the verdicts, in words (shown under the recommendation). */
  rules: string;
  /** The rule that counts complexity, in words (shown under the complexity table). */
  complexityRule: string;
  /** The rule that labels samples as degenerated, in words. */
  degenerationRule: string;
  points: readonly ReportPoint[];
  /** Samples to show: the base's and each method's median run's. */
  samples: readonly { method: string; runId: string; samples: readonly ReportSample[] }[];
  runs: number;
  provenance: {
    device: string;
    deviceName?: string;
    versions: { readonly [k: string]: string };
    seeds: readonly number[];
    startedAt: string;
    finishedAt?: string;
    command?: string;
    config?: unknown;
  };
}

export type { DiffInterval, Estimate, Interval };
