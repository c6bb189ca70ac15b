// Reward-vs-KL frontiers and KL budgets: which checkpoints a method offers at a KL budget.
//
// One semantics everywhere (docs/study.md): a method's reward at a KL budget k is the best reward among its
// checkpoints (and the base policy, KL 0 by definition: not training is always an option) whose KL is ≤ k.
// A method's reach is the largest KL any of its checkpoints reached. The chart's frontier (the upper-left
// Pareto set) is the same step function drawn through its corners.

import type { Checkpoint, Method, Run } from './types.js';
import { settingLabel } from './types.js';

export interface KlPoint {
  kl: number;
  reward: number;
}

/**
 * The upper-left Pareto frontier of reward vs KL: the points no other point beats on both axes
 * (higher-or-equal reward at lower-or-equal KL). Returned sorted by KL; reward strictly increases along it.
 * Points with a non-finite KL or reward are ignored.
 */
export function paretoFrontier<P extends KlPoint>(points: readonly P[]): P[] {
  const ps = points.filter((p) => Number.isFinite(p.kl) && Number.isFinite(p.reward));
  // Sort by KL, and at equal KL the best reward first, so one sweep keeps each new reward record.
  ps.sort((a, b) => a.kl - b.kl || b.reward - a.reward);
  const out: P[] = [];
  let best = -Infinity;
  for (const p of ps) {
    if (p.reward > best) {
      out.push(p);
      best = p.reward;
    }
  }
  return out;
}

/** Best reward among points with KL ≤ budget (NaN when none qualifies). The frontier read at `budget`. */
export function bestAtBudget(points: readonly KlPoint[], budget: number): number {
  let best = NaN;
  for (const p of points) if (p.kl <= budget && Number.isFinite(p.reward) && !(p.reward <= best)) best = p.reward;
  return best;
}

/** The base policy as a candidate: KL 0 by definition, whatever its sampled estimate says. */
export function baseAnchor(base: Checkpoint | undefined): Checkpoint[] {
  return base && Number.isFinite(base.reward) ? [{ ...base, kl: 0, promptKls: base.promptRewards?.map(() => 0) }] : [];
}

export interface FrontierPoint extends Checkpoint {
  runId: string;
  seed: number;
  setting: string;
}

/** Every finite checkpoint of these runs, labelled with its run. */
export function pointsOf(runs: readonly Run[]): FrontierPoint[] {
  return runs.flatMap((r) => r.checkpoints.filter((c) => Number.isFinite(c.kl) && Number.isFinite(c.reward)).map((c) => ({ ...c, runId: r.id, seed: r.seed, setting: settingLabel(r.setting) })));
}

/** A method's frontier over all checkpoints of all its runs (all settings, all seeds), anchored at the base. */
export function methodFrontier(runs: readonly Run[], method: Method, base?: Checkpoint): FrontierPoint[] {
  const pts = pointsOf(runs.filter((r) => r.method === method));
  const a = baseAnchor(base).map((c) => ({ ...c, runId: 'base', seed: -1, setting: 'base' }));
  return paretoFrontier([...a, ...pts]);
}

/**
 * Per seed (ascending), the candidates a seed offers: the base anchor and every finite checkpoint of its runs
 * over all settings (a sweep over β or the KL coefficient traces out the curve). Seeds with no evaluated
 * checkpoint yet (a run just started) are left out.
 */
export function seedCandidates(runs: readonly Run[], method: Method, base?: Checkpoint): Map<number, FrontierPoint[]> {
  const bySeed = new Map<number, Run[]>();
  for (const r of runs) if (r.method === method) bySeed.set(r.seed, [...(bySeed.get(r.seed) ?? []), r]);
  const out = new Map<number, FrontierPoint[]>();
  for (const [seed, rs] of [...bySeed].sort((x, y) => x[0] - y[0])) {
    const pts = pointsOf(rs);
    if (pts.length === 0) continue;
    out.set(seed, [...baseAnchor(base).map((c) => ({ ...c, runId: 'base', seed, setting: 'base' })), ...pts]);
  }
  return out;
}

/** One frontier per seed (its candidates' Pareto set). */
export function seedFrontiers(runs: readonly Run[], method: Method, base?: Checkpoint): Map<number, FrontierPoint[]> {
  return new Map([...seedCandidates(runs, method, base)].map(([s, pts]) => [s, paretoFrontier(pts)]));
}

/** A method's reach: the largest KL any of its checkpoints reached (0 with none). */
export function methodReach(runs: readonly Run[], method: Method): number {
  let r = 0;
  for (const p of pointsOf(runs.filter((x) => x.method === method))) r = Math.max(r, p.kl);
  return r;
}

/** n evenly spaced KL values in (lo, hi]: the low end is the shared anchor, where every method equals the base. */
export function klGrid(lo: number, hi: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => lo + ((hi - lo) * (i + 1)) / n);
}
