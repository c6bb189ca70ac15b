// The metric catalogue: every per-sample metric a task may list, what it needs, and how it is computed.
// Task validation reads `METRICS` to reject a metric that cannot apply to the task's type.
import { exactMatch, maxOverGold, tokenF1, tokenF1V2 } from './squad.js';
import { rougeMax } from './rouge.js';
import { compressionRatio, distinctN, repetitionRate, wordCount } from './text.js';
import { clamp01, mean } from '../../stats/index.js';

export * from './squad.js';
export * from './rouge.js';
export * from './text.js';
export * from './likelihood.js';

export type TaskType = 'qa' | 'summarization' | 'generation' | 'multiple_choice';

export interface MetricInfo {
  /** Task types that may list the metric. */
  types: TaskType[];
  /** Needs gold references in the data. */
  needsReferences?: boolean;
  /** Needs something outside the task: a reference model (loglikelihood) or a judge. Skipped, with a note, when absent. */
  needs?: 'reference_model' | 'judge';
  higherIsBetter: boolean;
  /** In [0, 1], so it can feed an axis. */
  unit: boolean;
  description: string;
}

const GEN: TaskType[] = ['qa', 'summarization', 'generation'];

export const METRICS: Record<string, MetricInfo> = {
  exact_match: { types: ['qa'], needsReferences: true, higherIsBetter: true, unit: true, description: 'SQuAD exact match after normalization, max over gold answers' },
  f1: { types: ['qa'], needsReferences: true, higherIsBetter: true, unit: true, description: 'SQuAD v1.1 token F1 after normalization, max over gold answers (an answer that normalizes to nothing scores 0)' },
  squad_v2_f1: { types: ['qa'], needsReferences: true, higherIsBetter: true, unit: true, description: 'SQuAD v2.0 token F1: as f1, but an empty answer scores 1 against an empty gold answer' },
  rouge1: { types: GEN, needsReferences: true, higherIsBetter: true, unit: true, description: 'ROUGE-1 F-measure (rouge-score tokenization, no stemming), max over references' },
  rouge2: { types: GEN, needsReferences: true, higherIsBetter: true, unit: true, description: 'ROUGE-2 F-measure, max over references' },
  rougeL: { types: GEN, needsReferences: true, higherIsBetter: true, unit: true, description: 'ROUGE-L (longest common subsequence) F-measure, max over references' },
  length: { types: GEN, higherIsBetter: false, unit: false, description: 'output length in words' },
  compression_ratio: { types: ['summarization'], higherIsBetter: false, unit: false, description: 'output words / source words' },
  distinct_1: { types: GEN, higherIsBetter: true, unit: true, description: 'distinct-1: unique unigrams / unigrams in the output' },
  distinct_2: { types: GEN, higherIsBetter: true, unit: true, description: 'distinct-2: unique bigrams / bigrams in the output' },
  repetition_rate: { types: GEN, higherIsBetter: false, unit: true, description: 'seq-rep-4: share of 4-grams repeating an earlier 4-gram in the output' },
  perplexity: { types: GEN, needs: 'reference_model', higherIsBetter: false, unit: false, description: 'perplexity of the output given the prompt under the reference model' },
  judge_score: { types: GEN, needs: 'judge', higherIsBetter: true, unit: false, description: 'judge coherence grade, 1-10' },
  coherence: { types: GEN, higherIsBetter: true, unit: true, description: 'response coherence composite in [0,1] (docs/evaluation.md)' },
  acc: { types: ['multiple_choice'], higherIsBetter: true, unit: true, description: 'accuracy: argmax of summed choice log-likelihood' },
  acc_norm: { types: ['multiple_choice'], higherIsBetter: true, unit: true, description: 'accuracy with log-likelihood divided by choice length in characters' },
};

/** Constants of the per-sample metrics, all in one place (printed with the resolved config). */
export const METRIC_DEFAULTS = {
  /** n of seq-rep-n (Welleck et al. use 4). */
  repetition_n: 4,
  /** Perplexity that maps to a coherence component of 0 (1 maps to 1, log scale in between). */
  ppl_max: 1000,
};

/** Perplexity → [0,1]: 1 - ln(ppl)/ln(ppl_max), clamped. ppl 1 → 1, √ppl_max → 0.5, ≥ ppl_max → 0. */
export function perplexityScore(ppl: number, pplMax = METRIC_DEFAULTS.ppl_max): number {
  return clamp01(1 - Math.log(ppl) / Math.log(pplMax));
}

/**
 * Per-sample coherence: the mean of the components available for the sample —
 * (judge − 1) / 9, perplexityScore(ppl), and 1 − repetition_rate. Repetition is always available,
 * so a run without judge or reference model still gets a (narrower) coherence.
 */
export function coherenceScore(parts: { judge?: number; ppl?: number; repetition: number }, pplMax = METRIC_DEFAULTS.ppl_max): number {
  const xs = [1 - parts.repetition];
  if (parts.judge !== undefined && Number.isFinite(parts.judge)) xs.push(clamp01((parts.judge - 1) / 9));
  if (parts.ppl !== undefined && Number.isFinite(parts.ppl)) xs.push(perplexityScore(parts.ppl, pplMax));
  return mean(xs);
}

export interface GenerationInput {
  output: string;
  references: string[];
  /** Source document of a summarization sample, for the compression ratio. */
  source?: string;
  /** Perplexity of the output under the reference model, when one ran. */
  ppl?: number;
  /** Judge grade 1-10, when a judge ran. */
  judge?: number;
}

/** Scores one generated output on the listed metrics; metrics whose inputs are missing are left out. */
export function scoreGeneration(metrics: string[], x: GenerationInput, opts: Partial<typeof METRIC_DEFAULTS> = {}): Record<string, number> {
  const o = { ...METRIC_DEFAULTS, ...opts };
  const out: Record<string, number> = {};
  const rep = repetitionRate(x.output, o.repetition_n);
  for (const m of metrics) {
    switch (m) {
      case 'exact_match': out[m] = maxOverGold(exactMatch, x.output, x.references); break;
      case 'f1': out[m] = maxOverGold(tokenF1, x.output, x.references); break;
      case 'squad_v2_f1': out[m] = maxOverGold(tokenF1V2, x.output, x.references); break;
      case 'rouge1': case 'rouge2': case 'rougeL': out[m] = rougeMax(m, x.output, x.references); break;
      case 'length': out[m] = wordCount(x.output); break;
      case 'compression_ratio': if (x.source !== undefined) out[m] = compressionRatio(x.output, x.source); break;
      case 'distinct_1': out[m] = distinctN(x.output, 1); break;
      case 'distinct_2': out[m] = distinctN(x.output, 2); break;
      case 'repetition_rate': out[m] = rep; break;
      case 'perplexity': if (x.ppl !== undefined) out[m] = x.ppl; break;
      case 'judge_score': if (x.judge !== undefined) out[m] = x.judge; break;
      case 'coherence': out[m] = coherenceScore({ judge: x.judge, ppl: x.ppl, repetition: rep }, o.ppl_max); break;
      default: throw new Error(`metric "${m}" does not apply to generated text`);
    }
  }
  return out;
}
