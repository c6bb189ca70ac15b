// The three axes users ask about, each a number in [0, 1] with a bootstrap 95% CI.
// docs/evaluation.md states the same definitions; change both together.
//
//   contextual_understanding  mean primary metric (QA: token F1) over the samples of tasks tagged with
//                             the axis (default: every qa task — questions over a context with distractors).
//   response_coherence        mean per-sample `coherence` over the samples of tasks tagged with the axis
//                             (default: generation and summarization), where coherence is the mean of
//                             (judge grade − 1)/9, 1 − ln(ppl)/ln(ppl_max) and 1 − repetition_rate,
//                             over the components that ran.
//   adaptability              mean of up to three components over the tasks tagged with it (default: all):
//                             breadth = mean over task types of the type's mean primary score;
//                             type_evenness = 1 − 2·std of those type means (needs ≥ 2 types);
//                             paraphrase_consistency = mean over tasks with paraphrases of 1 − 2·std of the
//                             per-template mean primary scores. (A std of values in [0,1] is at most 0.5,
//                             so 1 − 2·std is in [0,1].)
//
// Only the main prompt (template 0) feeds the first two axes and breadth; paraphrases feed consistency.
// CIs: rows are resampled with replacement within each task (all templates of a row move together,
// so paraphrase comparisons stay paired) and the axis is recomputed; 2.5th/97.5th percentiles.
import { Rng as SeededRng } from '../engine/rng.js';
import { clamp01, mean, populationStd, quantile, type Estimate } from '../stats/index.js';
import type { TaskType } from './metrics/index.js';
import { AXIS_NAMES, type AxisName } from './tasks/schema.js';

export { AXIS_NAMES, type AxisName };


/** One scored sample of one model, as the axes see it. */
export interface AxisSample {
  task: string;
  type: TaskType;
  axes: AxisName[];
  rowId: string;
  template: number;
  /** The task's primary metric, in [0, 1]. */
  primary: number;
  /** Per-sample coherence in [0, 1] (text-producing tasks). */
  coherence?: number;
}

export interface AxisScore extends Estimate {
  /** Samples that fed the axis. */
  n: number;
  /** Named parts (adaptability's components), point estimates. */
  components?: Record<string, number>;
}

type Grouped = Map<string, AxisSample[][]>; // task → rows → that row's samples (all templates)

function group(samples: AxisSample[]): Grouped {
  const byTask = new Map<string, Map<string, AxisSample[]>>();
  for (const s of samples) {
    let rows = byTask.get(s.task);
    if (!rows) byTask.set(s.task, (rows = new Map()));
    let r = rows.get(s.rowId);
    if (!r) rows.set(s.rowId, (r = []));
    r.push(s);
  }
  return new Map([...byTask].map(([t, rows]) => [t, [...rows.values()]]));
}

function flatMain(g: Grouped): AxisSample[] {
  return [...g.values()].flatMap((rows) => rows.flat().filter((s) => s.template === 0));
}

export function contextualUnderstanding(g: Grouped): number {
  return mean(flatMain(g).map((s) => s.primary));
}

export function responseCoherence(g: Grouped): number {
  return mean(flatMain(g).flatMap((s) => (s.coherence === undefined ? [] : [s.coherence])));
}

export function adaptabilityComponents(g: Grouped): Record<string, number> {
  const typeScores = new Map<string, number[]>();
  const consistency: number[] = [];
  for (const rows of g.values()) {
    const all = rows.flat();
    if (all.length === 0) continue;
    const byTemplate = new Map<number, number[]>();
    for (const s of all) {
      let xs = byTemplate.get(s.template);
      if (!xs) byTemplate.set(s.template, (xs = []));
      xs.push(s.primary);
    }
    const main = byTemplate.get(0);
    if (main) {
      const t = all[0]!.type;
      if (!typeScores.has(t)) typeScores.set(t, []);
      typeScores.get(t)!.push(mean(main));
    }
    if (byTemplate.size >= 2) consistency.push(clamp01(1 - 2 * populationStd([...byTemplate.values()].map(mean))));
  }
  const typeMeans = [...typeScores.values()].map(mean);
  const out: Record<string, number> = {};
  if (typeMeans.length > 0) out.breadth = mean(typeMeans);
  if (typeMeans.length >= 2) out.type_evenness = clamp01(1 - 2 * populationStd(typeMeans));
  if (consistency.length > 0) out.paraphrase_consistency = mean(consistency);
  return out;
}

export function adaptability(g: Grouped): number {
  return mean(Object.values(adaptabilityComponents(g)));
}

const STAT: Record<AxisName, (g: Grouped) => number> = {
  contextual_understanding: contextualUnderstanding,
  response_coherence: responseCoherence,
  adaptability,
};

/** Resamples rows within each task, recomputing `stat` each time: percentile 95% CI. */
export function stratifiedBootstrap(g: Grouped, stat: (g: Grouped) => number, iters: number, seed: number): [number, number] {
  const rng = new SeededRng(seed);
  const vals: number[] = [];
  for (let b = 0; b < iters; b++) {
    const draw: Grouped = new Map();
    for (const [t, rows] of g) draw.set(t, rows.map(() => rows[rng.int(rows.length)]!));
    const v = stat(draw);
    if (Number.isFinite(v)) vals.push(v);
  }
  return [quantile(vals, 0.025), quantile(vals, 0.975)];
}

/** All three axes for one model's samples. An axis with no tagged samples is left out. */
export function computeAxes(samples: AxisSample[], opts: { iters?: number; seed?: number } = {}): Partial<Record<AxisName, AxisScore>> {
  const { iters = 1000, seed = 1234 } = opts;
  const out: Partial<Record<AxisName, AxisScore>> = {};
  for (const axis of AXIS_NAMES) {
    let tagged = samples.filter((s) => s.axes.includes(axis));
    if (axis === 'response_coherence') tagged = tagged.filter((s) => s.coherence !== undefined);
    if (tagged.length === 0) continue;
    const g = group(tagged);
    const value = STAT[axis](g);
    if (!Number.isFinite(value)) continue;
    const [lo, hi] = stratifiedBootstrap(g, STAT[axis], iters, seed);
    const n = axis === 'adaptability' ? tagged.length : flatMain(g).length;
    out[axis] = { value, lo, hi, n, ...(axis === 'adaptability' ? { components: adaptabilityComponents(g) } : {}) };
  }
  return out;
}
