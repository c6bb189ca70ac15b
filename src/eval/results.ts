// The shapes of an evaluation's results: what the runner produces, results.json holds, and report/ renders.
// Types only (no runtime code), so report/ can read them without importing the evaluation machinery.
import type { Estimate } from '../stats/index.js';
import type { AxisName, AxisScore } from './axes.js';
import type { CacheStats } from './cache.js';
import type { OutcomeCounts } from './judge.js';
import type { TaskType } from './metrics/index.js';
import type { ChatMessage } from './providers/types.js';
import type { LengthControlled, Rating, WinRateMatrix } from './ratings.js';

export interface SampleRecord {
  task: string;
  type: TaskType;
  model: string;
  provider: string;
  id: string;
  row_id: string;
  template: number;
  where: string;
  prompt?: string;
  messages?: ChatMessage[];
  references: string[];
  output?: string;
  finish_reason?: string;
  latency_ms?: number;
  choices?: string[];
  gold?: number;
  choice_logprobs?: number[];
  pred?: number;
  pred_norm?: number;
  ppl?: number;
  judge_score?: number | null;
  judge_raw?: string;
  metrics: Record<string, number>;
  /** True when the model's response came from the cache. */
  cached: boolean;
}

export interface MetricSummary extends Estimate {
  n: number;
}

export interface TaskResult {
  name: string;
  type: TaskType;
  file: string;
  rows: number;
  templates: number;
  primary_metric: string;
  metrics: string[];
  /** The metrics whose values are [0, 1] scores (reports draw their CIs as bars). */
  unit_metrics: string[];
  /** model → metric → mean over the main-prompt samples, with a bootstrap CI. */
  scores: Record<string, Record<string, MetricSummary>>;
  /** model → mean primary metric per template (index 0 = main prompt). */
  by_template: Record<string, number[]>;
  /** Models that could not run the task, with the reason. */
  skipped: Record<string, string>;
}

export interface PairwiseResult {
  judge: string;
  baseline: string;
  /** Judged pairs (each asked in both orders). */
  comparisons: number;
  /** "A vs B" → outcome counts from A's side (a = A won). */
  outcomes: Record<string, OutcomeCounts>;
  totals: OutcomeCounts;
  ratings: Rating[];
  win_rates: WinRateMatrix;
  /** model → win rate and length-controlled win rate against the baseline. */
  vs_baseline: Record<string, LengthControlled & { ci: [number, number]; winRateCi: [number, number] }>;
}

export interface EvalResult {
  name: string;
  created_at: string;
  models: { label: string; provider: string; model: string }[];
  tasks: TaskResult[];
  axes: Record<string, Partial<Record<AxisName, AxisScore>>>;
  pairwise?: PairwiseResult;
  notes: string[];
  cache: CacheStats;
  calls: number;
  wall_ms: number;
  samples: SampleRecord[];
}
