// Run health and spread: which runs diverged, collapsed or degenerated, and how much the final reward varies
// from seed to seed; plus learning curves (reward vs step, mean ± sd over seeds).

import { mean, std } from '../stats/index.js';
import type { Checkpoint, Method, Run } from './types.js';
import { settingLabel } from './types.js';

export interface CollapseThresholds {
  /** Collapsed when entropy falls below this fraction of the base policy's (default 0.3). */
  entropyFraction?: number;
  /** Collapsed when distinct-1 or distinct-2 falls below this fraction of the base policy's (default 0.5). */
  distinctFraction?: number;
  /** Diverged when the sequence KL exceeds this many nats (default 50): the policy has left the reference entirely. */
  klMax?: number;
  /**
   * Degenerated when the samples' mean negative log-likelihood per token under the independent n-gram model
   * exceeds the base policy's by more than this many nats (default ln 2: the n-gram perplexity doubled).
   */
  fluencyNats?: number;
  /** Degenerated when the share of samples that end with EOS falls below this fraction of the base's (default 0.5). */
  eosFraction?: number;
}

export const DEGENERATION_RULE =
  'degenerated: n-gram perplexity of the samples more than 2× the base policy\'s (when the n-gram model is available), ' +
  'or fewer than half as many samples ending with EOS as the base policy\'s (judged only when at least 5 of the base\'s samples ended with EOS)';

export interface RunHealth {
  status: 'ok' | 'diverged' | 'collapsed';
  step?: number;
  reason?: string;
}

const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : x.toPrecision(3));

/**
 * Find the first checkpoint where a run diverged (non-finite metrics, KL explosion) or collapsed
 * (entropy or distinct-n far below the base policy's: the degenerate "great great great" policy).
 */
export function detectCollapse(checkpoints: readonly Checkpoint[], base: Checkpoint, th: CollapseThresholds = {}): RunHealth {
  const { entropyFraction = 0.3, distinctFraction = 0.5, klMax = 50 } = th;
  for (const c of checkpoints) {
    if (!Number.isFinite(c.reward) || !Number.isFinite(c.kl)) return { status: 'diverged', step: c.step, reason: `non-finite ${!Number.isFinite(c.reward) ? 'reward' : 'KL'} at step ${c.step}` };
    if (c.kl > klMax) return { status: 'diverged', step: c.step, reason: `KL ${fmt(c.kl)} > ${klMax} nats at step ${c.step}` };
    if (Number.isFinite(base.entropy) && c.entropy < entropyFraction * base.entropy)
      return { status: 'collapsed', step: c.step, reason: `entropy ${fmt(c.entropy)} < ${entropyFraction} × base ${fmt(base.entropy)} at step ${c.step}` };
    for (const k of ['distinct1', 'distinct2'] as const) {
      if (Number.isFinite(base[k]) && c[k] < distinctFraction * base[k])
        return { status: 'collapsed', step: c.step, reason: `${k} ${fmt(c[k])} < ${distinctFraction} × base ${fmt(base[k])} at step ${c.step}` };
    }
  }
  return { status: 'ok' };
}

/** Fluency metrics of a checkpoint (or of the checkpoints chosen at a matched KL). */
export interface Fluency {
  /** Mean negative log-likelihood per token under the independent n-gram model (nats); NaN when not measured. */
  fluency?: number;
  /** Share of samples that ended with EOS; NaN when not measured. */
  eosRate?: number;
  /** Samples the rates are over. */
  n?: number;
}

/** Why these samples count as degenerated (see DEGENERATION_RULE), or null when they do not (or it was not measured). */
export function degeneration(c: Fluency, base: Fluency, th: CollapseThresholds = {}): string | null {
  const { fluencyNats = Math.LN2, eosFraction = 0.5 } = th;
  const f = c.fluency ?? NaN, bf = base.fluency ?? NaN;
  if (Number.isFinite(f) && Number.isFinite(bf) && f - bf > fluencyNats)
    return `n-gram perplexity ${fmt(Math.exp(f))} vs base ${fmt(Math.exp(bf))} (more than ${fmt(Math.exp(fluencyNats))}×)`;
  const e = c.eosRate ?? NaN, be = base.eosRate ?? NaN;
  // A base rate resting on a handful of samples cannot show a halving: require 5 EOS-ended base samples.
  const enough = base.n === undefined || be * base.n >= 5 - 1e-9;
  if (Number.isFinite(e) && Number.isFinite(be) && be > 0 && enough && e < eosFraction * be) return `EOS rate ${fmt(e)} vs base ${fmt(be)} (below ${eosFraction}×)`;
  return null;
}

/** A run's health: the runner's verdict when it already flagged a failure, else the detector's. */
export function runHealth(run: Run, base: Checkpoint, th: CollapseThresholds = {}): RunHealth {
  if (run.status === 'diverged' || run.status === 'collapsed') return { status: run.status, reason: run.reason ?? `marked ${run.status} by the runner` };
  return detectCollapse(run.checkpoints, base, th);
}

/** The last checkpoint's reward (NaN when the run has none or it is not finite). */
export function finalReward(run: Run): number {
  const r = run.checkpoints.at(-1)?.reward;
  return r !== undefined && Number.isFinite(r) ? r : NaN;
}

export interface StabilitySummary {
  method: Method;
  /** Finished runs considered (status other than 'running'). */
  runs: number;
  collapsed: number;
  diverged: number;
  /** Runs whose final checkpoint is degenerated (DEGENERATION_RULE); not counted as failures. */
  degenerated: number;
  /** (collapsed + diverged) / runs. */
  failureRate: number;
  /** Seed-to-seed standard deviation of the final reward, pooled over settings (NaN without ≥ 2 seeds of a setting). */
  seedStd: number;
  /** Degrees of freedom of seedStd: Σ over settings of (seeds − 1). */
  seedDf: number;
  perSetting: { setting: string; n: number; mean: number; std: number }[];
  failures: { runId: string; status: 'diverged' | 'collapsed' | 'degenerated'; reason: string }[];
}

export function stabilitySummary(runs: readonly Run[], method: Method, base: Checkpoint, th: CollapseThresholds = {}): StabilitySummary {
  const rs = runs.filter((r) => r.method === method && r.status !== 'running');
  const failures: StabilitySummary['failures'] = [];
  let degenerated = 0;
  for (const r of rs) {
    const h = runHealth(r, base, th);
    if (h.status !== 'ok') failures.push({ runId: r.id, status: h.status, reason: h.reason ?? '' });
    else {
      const last = r.checkpoints.at(-1);
      const why = last ? degeneration(last, base, th) : null;
      if (why) {
        degenerated++;
        failures.push({ runId: r.id, status: 'degenerated', reason: `${why} at step ${last!.step}` });
      }
    }
  }
  const bySetting = new Map<string, number[]>();
  for (const r of rs) {
    const f = finalReward(r);
    if (Number.isFinite(f)) bySetting.set(settingLabel(r.setting), [...(bySetting.get(settingLabel(r.setting)) ?? []), f]);
  }
  const perSetting = [...bySetting].sort((a, b) => a[0].localeCompare(b[0])).map(([setting, xs]) => ({ setting, n: xs.length, mean: mean(xs), std: std(xs) }));
  // Pooled variance: Σ(n_i − 1)s_i² / Σ(n_i − 1), so settings with more seeds weigh more.
  let num = 0, den = 0;
  for (const s of perSetting) if (s.n >= 2) {
    num += (s.n - 1) * s.std ** 2;
    den += s.n - 1;
  }
  const collapsed = failures.filter((f) => f.status === 'collapsed').length;
  const diverged = failures.filter((f) => f.status === 'diverged').length;
  return {
    method,
    runs: rs.length,
    collapsed,
    diverged,
    degenerated,
    failureRate: rs.length ? (collapsed + diverged) / rs.length : NaN,
    seedStd: den > 0 ? Math.sqrt(num / den) : NaN,
    seedDf: den,
    perSetting,
    failures,
  };
}

export interface CurvePoint {
  method: Method;
  setting: string;
  step: number;
  /** Mean reward over seeds at this step, its sample std, and mean ± std as the band. */
  mean: number;
  sd: number;
  lo: number;
  hi: number;
  n: number;
}

/** Reward vs step for each setting of a method: mean ± 1 sd over seeds at each evaluated step. */
export function learningCurves(runs: readonly Run[], method: Method): CurvePoint[] {
  const groups = new Map<string, Map<number, number[]>>();
  for (const r of runs) {
    if (r.method !== method) continue;
    const s = settingLabel(r.setting);
    const g = groups.get(s) ?? new Map<number, number[]>();
    groups.set(s, g);
    for (const c of r.checkpoints) if (Number.isFinite(c.reward)) g.set(c.step, [...(g.get(c.step) ?? []), c.reward]);
  }
  const out: CurvePoint[] = [];
  for (const [setting, g] of [...groups].sort((a, b) => a[0].localeCompare(b[0]))) {
    for (const [step, xs] of [...g].sort((a, b) => a[0] - b[0])) {
      const m = mean(xs), sd = std(xs);
      out.push({ method, setting, step, mean: m, sd, lo: m - sd, hi: m + sd, n: xs.length });
    }
  }
  return out;
}
