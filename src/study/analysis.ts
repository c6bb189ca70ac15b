// Turns run results into the study's numbers: reward-vs-KL frontiers, cross-fitted reward at matched KL with
// bootstrap intervals over seeds and held-out prompts, method comparisons at a budget fixed by a stated rule,
// improvement over the base, stability, fluency, cost and complexity; and the machine-readable verdict.
// Pure functions over plain data (no engine import): fast, deterministic (seeded bootstrap), unit-testable.
//   frontier.ts  — budgets, candidates, reach, Pareto frontier
//   matched.ts   — the cross-fitted seeds × prompts bootstrap and the comparisons
//   stability.ts — divergence, collapse, degeneration, seed spread, learning curves
//   cost.ts      — cost and complexity

import { holmAdjust, wilsonInterval, type BootstrapOptions, type Interval } from '../stats/index.js';
import { costSummary, complexitySummary, type ComplexitySummary, type CostSummary } from './cost.js';
import { klGrid, methodFrontier, methodReach, seedCandidates, type FrontierPoint } from './frontier.js';
import { compareAtKl, compareAtKls, rewardAtMatchedKl, type Comparison, type MatchedPoint } from './matched.js';
import { degeneration, learningCurves, stabilitySummary, type CollapseThresholds, type CurvePoint, type StabilitySummary } from './stability.js';
import type { Checkpoint, Method, StudyResults } from './types.js';
import { METHOD_LABELS, settingLabel } from './types.js';

export interface AnalysisOptions {
  /** Pairs to compare at matched KL (default: dpo vs ppo when both ran). */
  compare?: [Method, Method][];
  /** KL grid size (default 8). */
  gridPoints?: number;
  /** Force the headline KL budget (default: HEADLINE_RULE). */
  headlineKl?: number;
  bootstrap?: BootstrapOptions;
  thresholds?: CollapseThresholds;
}

/** How the headline budget is chosen: from KLs alone, before any reward difference is looked at. */
export const HEADLINE_RULE = 'fixed in advance as the smaller of the two methods\' reaches, the largest KL any of their checkpoints reached';

export interface Improvement {
  /** The method's own budgets: gridPoints evenly spaced in (0, reach]. */
  kls: number[];
  /** Reward minus the base's at each budget, with paired CIs. */
  gains: MatchedPoint['gain'][];
  /** Holm-adjusted p-values of "no gain" across the budgets where some seed left the base (NaN at the others). */
  pHolm: number[];
  /** Some budget shows a gain > 0 after Holm's correction. */
  improved: boolean;
  /** At least one budget could be tested (one where every seed kept the base counts: it measured no gain). */
  tested: boolean;
}

export interface MethodAnalysis {
  method: Method;
  label: string;
  runs: number;
  seeds: number[];
  settings: string[];
  /** Candidate checkpoints per seed (base included), mean over seeds: the draws the best-at-budget choice picks from. */
  candidatesPerSeed: number;
  /** Frontier over all checkpoints of all runs, anchored at the base. */
  frontier: FrontierPoint[];
  /** The largest KL any checkpoint reached. */
  reach: number;
  /** At each grid KL. */
  matched: MatchedPoint[];
  /** At the headline KL (null when there is none). */
  headline: MatchedPoint | null;
  /** Did the method beat the base policy anywhere up to its reach? */
  improvement: Improvement;
  /** Why the checkpoints chosen at the headline KL count as degenerated (DEGENERATION_RULE), or null. */
  degenerated: string | null;
  stability: StabilitySummary;
  cost: CostSummary;
  complexity: ComplexitySummary;
  curves: CurvePoint[];
}

export interface StudyAnalysis {
  methods: Method[];
  byMethod: Partial<Record<Method, MethodAnalysis>>;
  base: Checkpoint;
  grid: number[];
  headlineKl: number | null;
  headlineRule: string;
  /** One per compared pair at the headline KL. */
  comparisons: Comparison[];
  /** One per compared pair at every grid KL (p-values Holm-adjusted across the grid). */
  gridComparisons: Comparison[];
  /** Held-out prompts resampled (0: seeds only), and whether choice and estimate used different halves. */
  prompts: number;
  crossFit: boolean;
  rewardModel: Interval | null;
  /** PPO (learned reward) − PPO-GT (gold reward) at the smaller of their reaches: what the reward model costs PPO. */
  rewardModelCost: Comparison | null;
  baseModel: { heldOutLoss: number; ngramLoss: number } | null;
  bootstrap: Required<BootstrapOptions>;
}

function improvementOf(study: StudyResults, m: Method, reach: number, gridPoints: number, bootstrap: Required<BootstrapOptions>): Improvement {
  if (!(reach > 0)) return { kls: [], gains: [], pHolm: [], improved: false, tested: false };
  const kls = klGrid(0, reach, gridPoints);
  const pts = rewardAtMatchedKl(study.runs, m, kls, { base: study.base, bootstrap });
  const gains = pts.map((p) => p.gain);
  // A budget below the method's first checkpoint keeps the base in every seed and every replicate: its gain is
  // exactly 0 with no spread, a null that cannot be rejected. Counting it in Holm's family would only inflate the
  // others' p-values, so it leaves the family (its adjusted p is NaN, like an untested budget's).
  const testable = gains.map((g) => g.tested && !baseOnly(g));
  const pHolm = holmAdjust(gains.map((g, i) => (testable[i] ? g.p : NaN)));
  const alpha = 1 - bootstrap.level;
  return { kls, gains, pHolm, improved: gains.some((g, i) => testable[i] && g.value > 0 && pHolm[i]! < alpha), tested: gains.some((g) => g.tested) };
}

/** A gain over the base that is 0 in its estimate and in its whole interval: every seed kept the base. */
function baseOnly(g: MatchedPoint['gain']): boolean {
  return g.value === 0 && g.lo === 0 && g.hi === 0;
}

/** Everything the report and the recommendation need, from a study's results. */
export function analyzeStudy(study: StudyResults, opts: AnalysisOptions = {}): StudyAnalysis {
  const { runs, base } = study;
  const bootstrap: Required<BootstrapOptions> = { iters: 2000, level: 0.95, seed: 1, ...opts.bootstrap };
  const gridPoints = opts.gridPoints ?? 8;
  const present = [...new Set(runs.map((r) => r.method))];
  const order = Object.keys(METHOD_LABELS) as Method[];
  const methods = order.filter((m) => present.includes(m));
  const pairs = opts.compare ?? (methods.includes('dpo') && methods.includes('ppo') ? ([['dpo', 'ppo']] as [Method, Method][]) : []);
  const valid = pairs.filter(([a, b]) => methods.includes(a) && methods.includes(b));
  const compared = [...new Set(valid.flat())];
  const rangeMethods = compared.length ? compared : methods.filter((m) => m !== 'base');
  const reaches = rangeMethods.map((m) => methodReach(runs, m));
  const ruleKl = reaches.length ? Math.min(...reaches) : 0;
  const headlineKl = opts.headlineKl ?? (ruleKl > 0 ? ruleKl : null);
  // The grid ends at the headline budget, so the headline is also the grid's last point.
  const grid = headlineKl === null ? [] : klGrid(0, headlineKl, gridPoints);
  const bopts = { base, bootstrap };

  const byMethod: Partial<Record<Method, MethodAnalysis>> = {};
  let prompts = 0, crossFit = false;
  for (const m of methods) {
    const rs = runs.filter((r) => r.method === m);
    const matched = grid.length ? rewardAtMatchedKl(runs, m, grid, bopts) : [];
    if (matched[0]) ({ prompts, crossFit } = matched[0]);
    const headline = matched.at(-1) ?? null;
    const cands = [...seedCandidates(runs, m, base).values()];
    const reach = methodReach(runs, m);
    byMethod[m] = {
      method: m,
      label: METHOD_LABELS[m],
      runs: rs.length,
      seeds: [...new Set(rs.map((r) => r.seed))].sort((a, b) => a - b),
      settings: [...new Set(rs.map((r) => settingLabel(r.setting)))].sort(),
      candidatesPerSeed: cands.length ? cands.reduce((s, c) => s + c.length, 0) / cands.length : 0,
      frontier: methodFrontier(runs, m, base),
      reach,
      matched,
      headline,
      improvement: improvementOf(study, m, reach, gridPoints, bootstrap),
      degenerated: headline ? degeneration(headline.metrics, base, opts.thresholds) : null,
      stability: stabilitySummary(runs, m, base, opts.thresholds),
      cost: costSummary(runs, m, study.prerequisites, { bootstrap }),
      complexity: complexitySummary(runs, m),
      curves: learningCurves(runs, m),
    };
  }
  const cmps = grid.length ? valid.map(([a, b]) => compareAtKls(runs, a, b, grid, bopts)) : [];
  const rm = study.rewardModel;
  const gtKl = byMethod.ppo && byMethod['ppo-gt'] ? Math.min(byMethod.ppo.reach, byMethod['ppo-gt'].reach) : 0;
  return {
    methods,
    byMethod,
    base,
    grid,
    headlineKl,
    headlineRule: opts.headlineKl !== undefined ? 'set by the caller' : HEADLINE_RULE,
    comparisons: cmps.map((c) => c.at(-1)!),
    gridComparisons: cmps.flat(),
    prompts,
    crossFit,
    rewardModel: rm && rm.n > 0 ? wilsonInterval(Math.round(rm.heldOutAccuracy * rm.n), rm.n) : null,
    rewardModelCost: gtKl > 0 ? compareAtKl(runs, 'ppo', 'ppo-gt', gtKl, bopts) : null,
    baseModel: study.baseModel ?? null,
    bootstrap,
  };
}

/** The machine-readable verdict (analysis.json's top level; NaN written as null). */
export interface VerdictJson {
  headline: { kl: number | null; dpo: number | null; ppo: number | null; diff: number | null; ci: [number | null, number | null]; significant: boolean; rule: string } | null;
  base: { heldoutLoss: number | null; ngramLoss: number | null };
  rewardModel: { accuracy: number | null; ci: [number | null, number | null]; n: number } | null;
  /** PPO − PPO-GT at the smaller of their reaches (the reward model's cost to PPO), when the study ran PPO-GT. */
  rewardModelCost: { kl: number | null; ppo: number | null; ppoGt: number | null; diff: number | null; ci: [number | null, number | null] } | null;
}

const j = (x: number | undefined) => (x !== undefined && Number.isFinite(x) ? x : null);

/** The headline verdict of the first compared pair (DPO − PPO by default), the base LM losses and the RM accuracy. */
export function verdictJson(an: StudyAnalysis): VerdictJson {
  const c = an.comparisons[0];
  const headline = c
    ? { kl: j(c.kl), [c.a]: j(c.aReward.value), [c.b]: j(c.bReward.value), diff: j(c.diff.value), ci: [j(c.diff.lo), j(c.diff.hi)] as [number | null, number | null], significant: c.diff.significant, rule: an.headlineRule }
    : null;
  return {
    headline: headline as VerdictJson['headline'],
    base: { heldoutLoss: j(an.baseModel?.heldOutLoss), ngramLoss: j(an.baseModel?.ngramLoss) },
    rewardModel: an.rewardModel ? { accuracy: j(an.rewardModel.value), ci: [j(an.rewardModel.lo), j(an.rewardModel.hi)], n: an.rewardModel.n } : null,
    rewardModelCost: an.rewardModelCost
      ? { kl: j(an.rewardModelCost.kl), ppo: j(an.rewardModelCost.aReward.value), ppoGt: j(an.rewardModelCost.bReward.value), diff: j(an.rewardModelCost.diff.value), ci: [j(an.rewardModelCost.diff.lo), j(an.rewardModelCost.diff.hi)] }
      : null,
  };
}
