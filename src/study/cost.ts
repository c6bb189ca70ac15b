// What a method costs to run (wall time, tokens, where the time goes, memory, prerequisites) and to
// understand (models resident, hyperparameters, loss lines — measured by train/footprint.ts when runs record it).

import { bootstrapMean, finite, mean, type BootstrapOptions, type Interval } from '../stats/index.js';
import type { Complexity, Method, Prerequisite, Run } from './types.js';

export interface CostSummary {
  method: Method;
  runs: number;
  /** Wall time per run, with a bootstrap CI across runs. */
  wallSeconds: Interval;
  tokensProcessed: number;
  tokensPerSecond: number;
  /** Shares of wall time spent generating, in forward passes, in backward passes (means over runs). */
  generationShare: number;
  forwardShare: number;
  backwardShare: number;
  /**
   * False when some run's parts add up to more than its wall time (timers that overlap, or count evaluation
   * the wall time excludes): the shares are then not a split of the wall time, and the report says so.
   */
  splitConsistent: boolean;
  peakRssBytes: number;
  /** Seconds of prerequisites one model of this method needs: the shared base, plus one draw of preference pairs and
   *  reward model (the mean over the seeds' draws when each seed has its own). */
  prerequisiteSeconds: number;
  prerequisites: string[];
  /** Cost of one model of this method from scratch: mean run wall time + prerequisites. */
  oneModelSeconds: number;
}

export function costSummary(runs: readonly Run[], method: Method, prerequisites: readonly Prerequisite[] = [], opts: { bootstrap?: BootstrapOptions } = {}): CostSummary {
  const rs = runs.filter((r) => r.method === method && r.status !== 'running');
  const share = (f: (r: Run) => number) => mean(finite(rs.map((r) => (r.cost.wallSeconds > 0 ? f(r) / r.cost.wallSeconds : NaN))));
  const pre = prerequisites.filter((p) => p.usedBy.includes(method));
  // One model needs what all seeds share (the base) and one draw of pairs and reward model: with a draw per seed,
  // the mean over draws, not their sum.
  const shared = pre.filter((p) => p.draw === undefined);
  const draws = new Map<number, Prerequisite[]>();
  for (const p of pre) if (p.draw !== undefined) draws.set(p.draw, [...(draws.get(p.draw) ?? []), p]);
  const sum = (ps: readonly Prerequisite[]) => ps.reduce((s, p) => s + p.cost.wallSeconds, 0);
  const prerequisiteSeconds = sum(shared) + (draws.size ? mean([...draws.values()].map(sum)) : 0);
  const perDraw = [...draws.values()][0]?.map((p) => p.name.replace(/ \((seed \d+|shipped)[^)]*\)$/, '')) ?? [];
  const names = [...shared.map((p) => p.name), ...(draws.size > 1 ? [`${perDraw.join(' and ')} (mean of ${draws.size} per-seed draws)`] : [...draws.values()].flat().map((p) => p.name))];
  const wall = bootstrapMean(rs.map((r) => r.cost.wallSeconds), opts.bootstrap);
  const parts = (r: Run) => r.cost.generationSeconds + r.cost.forwardSeconds + r.cost.backwardSeconds;
  return {
    method,
    runs: rs.length,
    wallSeconds: wall,
    tokensProcessed: mean(rs.map((r) => r.cost.tokensProcessed)),
    tokensPerSecond: mean(finite(rs.map((r) => (r.cost.wallSeconds > 0 ? r.cost.tokensProcessed / r.cost.wallSeconds : NaN)))),
    generationShare: share((r) => r.cost.generationSeconds),
    forwardShare: share((r) => r.cost.forwardSeconds),
    backwardShare: share((r) => r.cost.backwardSeconds),
    splitConsistent: rs.every((r) => parts(r) <= 1.01 * r.cost.wallSeconds),
    peakRssBytes: rs.length ? Math.max(...rs.map((r) => r.cost.peakRssBytes)) : NaN,
    prerequisiteSeconds,
    prerequisites: names,
    oneModelSeconds: wall.value + prerequisiteSeconds,
  };
}

export interface ComplexitySummary extends Complexity {
  method: Method;
  /** False when runs of the method reported different numbers (the maximum is shown). */
  consistent: boolean;
}

export function complexitySummary(runs: readonly Run[], method: Method): ComplexitySummary {
  const cs = runs.filter((r) => r.method === method).map((r) => r.complexity);
  const max = (k: 'modelsInMemory' | 'hyperparameters' | 'lossLines') => (cs.length ? Math.max(...cs.map((c) => c[k])) : NaN);
  const consistent = cs.every((c) => c.modelsInMemory === cs[0]!.modelsInMemory && c.hyperparameters === cs[0]!.hyperparameters && c.lossLines === cs[0]!.lossLines);
  const first = cs.find((c) => c.models || c.lossFile);
  return { method, modelsInMemory: max('modelsInMemory'), hyperparameters: max('hyperparameters'), lossLines: max('lossLines'), ...(first?.models ? { models: first.models } : {}), ...(first?.lossFile ? { lossFile: first.lossFile } : {}), consistent };
}
