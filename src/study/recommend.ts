// The recommendation paragraph, written from the analysis numbers: each criterion gets a verdict computed
// by a stated rule (below), and the words follow the verdicts. If the numbers flip, the words flip.
//
// Rules:
// - improvement over the base comes first: a method whose reward minus the base's is not significantly > 0 at
//   any of its budgets up to its reach (Holm-corrected) "did not improve on the base"; the paragraph opens with
//   that, and such a method is never recommended on cost or complexity;
// - final reward: the bootstrap CI of the difference at the headline KL (fixed by HEADLINE_RULE before any
//   difference is looked at) excludes 0 → the higher wins. The CI resamples seeds and, when the checkpoints
//   carry per-prompt rewards, the held-out prompts (paired across methods, cross-fitted: checkpoints are chosen
//   on one half of the prompts and scored on the other); with one seed and no per-prompt rewards there is
//   nothing to resample: no test, no winner. The other budgets of the grid are reported Holm-corrected;
// - stability: fewer failed runs (collapsed + diverged) wins; at equal failure rates, a smaller seed-to-seed
//   std of final reward wins if an F test of the two variances gives p < `alpha` (few seeds: big ratios are often chance);
// - cost: the time to one model (mean run wall time + prerequisites) at least `costRatio` times smaller wins;
// - complexity: fewer on the majority of (models in memory, hyperparameters, loss lines) wins;
// - overall: the final-reward winner if there is one; otherwise, if exactly one method improved on the base, that
//   one; if neither did, none; otherwise the method winning more of the other three.

import { ci, f3, seconds, signed, signedCi, varianceRatioPValue } from '../stats/index.js';
import type { MethodAnalysis, StudyAnalysis } from './analysis.js';
import type { Comparison } from './matched.js';
import type { Method } from './types.js';
import { METHOD_LABELS } from './types.js';

export type Criterion = 'reward' | 'stability' | 'cost' | 'complexity';
export const CRITERIA: readonly Criterion[] = ['reward', 'stability', 'cost', 'complexity'];

export interface Verdict {
  criterion: Criterion;
  /** The better method, or null for no (significant) difference or no data. */
  winner: Method | null;
  /** The sentence stating the numbers behind the verdict. */
  text: string;
}

export interface Recommendation {
  a: Method;
  b: Method;
  verdicts: Record<Criterion, Verdict>;
  overall: Method | null;
  /** All sentences, ending with the overall recommendation. */
  paragraph: string;
}

export interface RecommendOptions {
  /** Minimum time ratio to call one method cheaper (default 1.2). */
  costRatio?: number;
  /** Significance level of the seed-spread F test that decides stability at equal failure rates (default 0.05). */
  alpha?: number;
}

const ratio = (x: number) => `${x.toFixed(x < 10 ? 1 : 0)}×`;
const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;

/** How the reward verdict came about: no shared KL, no test possible, tested without/with a difference. */
type RewardStatus = 'no-kl' | 'untested' | 'no-difference' | 'difference';

const kl3 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');

/** What the reward intervals resampled, in a parenthesis for the reward sentence. */
function resamplingText(A: string, B: string, nA: number, nB: number, prompts: number, tested: boolean): string {
  const seeds = nA === nB ? `${plural(nA, 'seed')} per method` : `${nA} and ${nB} seeds`;
  const single = nA === 1 && nB === 1 ? '' : nA === 1 ? A : nB === 1 ? B : '';
  if (!tested) {
    return nA === 1 && nB === 1
      ? 'no interval: 1 seed per method and no per-prompt rewards, so there is nothing to resample'
      : `no test: 1 seed of ${single} and no per-prompt rewards, so its variation is unknown`;
  }
  if (prompts > 0) {
    if (nA === 1 && nB === 1)
      return `95% CIs from a bootstrap over the ${prompts} held-out prompts only, paired across methods: with 1 seed per method they reflect which prompts were sampled, not seed-to-seed variation`;
    return `95% CIs from a two-level bootstrap over ${seeds} and the ${prompts} held-out prompts, the prompts paired across methods, with a t quantile for the seed-to-seed part` +
      (single ? `; with 1 seed, ${single}'s seed-to-seed variation is not in them` : '');
  }
  return `95% t intervals over ${seeds}; the checkpoints carry no per-prompt rewards, so which prompts were sampled is not in them`;
}

/** "PPO is significantly ahead at 8 of the 8 KL budgets up to that point (Holm-corrected), DPO at none." */
function gridText(an: StudyAnalysis, c: Comparison, a: Method, b: Method): string {
  const grid = an.gridComparisons.filter((x) => x.a === c.a && x.b === c.b);
  if (grid.length === 0) return '';
  const N = grid.length;
  const tested = grid.filter((x) => x.diff.tested);
  if (tested.length === 0) return ` None of the ${N} KL budgets up to that point could be tested either.`;
  const untested = N - tested.length;
  const rest = untested ? ` (${untested} of them not tested)` : '';
  const [first, second] = [a, b].map((m) => ({ m, k: grid.filter((x) => x.holmWinner === m).length })).sort((x, y) => y.k - x.k) as [{ m: Method; k: number }, { m: Method; k: number }];
  if (first.k === 0) return ` Neither method is significantly ahead at any of the ${N} KL budgets up to that point${rest} (Holm-corrected).`;
  return ` ${METHOD_LABELS[first.m]} is significantly ahead at ${first.k} of the ${N} KL budgets up to that point${rest} (Holm-corrected), ${METHOD_LABELS[second.m]} at ${second.k === 0 ? 'none' : second.k}.`;
}

function rewardVerdict(an: StudyAnalysis, a: Method, b: Method): { verdict: Verdict; status: RewardStatus; comparison: Comparison | null } {
  const A = METHOD_LABELS[a], B = METHOD_LABELS[b];
  const ma = an.byMethod[a]!, mb = an.byMethod[b]!;
  const c = an.comparisons.find((x) => (x.a === a && x.b === b) || (x.a === b && x.b === a));
  if (!c || an.headlineKl === null || c.diff.n === 0) {
    const reach = `${A} reaches at most ${f3(ma.reach)} nats of KL, ${B} ${f3(mb.reach)}`;
    return {
      status: 'no-kl',
      comparison: null,
      verdict: {
        criterion: 'reward',
        winner: null,
        text: `Final reward cannot be compared at matched KL: the methods share no KL budget above 0 (${reach}; a method with no evaluated checkpoint reaches 0).`,
      },
    };
  }
  // Orient the comparison as a − b whichever way it was computed.
  const flip = c.a !== a;
  const ra = flip ? c.bReward : c.aReward, rb = flip ? c.aReward : c.bReward;
  const d = flip ? { ...c.diff, value: -c.diff.value, lo: -c.diff.hi, hi: -c.diff.lo } : c.diff;
  const how = resamplingText(A, B, ra.n, rb.n, d.prompts, d.tested) + (an.crossFit ? '; each checkpoint chosen on one half of the prompts and scored on the other' : an.prompts === 0 ? '; the best checkpoint is chosen and scored on the same prompts, so its reward is not corrected for being chosen' : '');
  const at = `At a KL budget of ${f3(c.kl)} nats (${an.headlineRule}), with each seed's best checkpoint within it, `;
  const grid = gridText(an, c, a, b);
  if (!d.tested) {
    const text =
      `${at}${A}'s mean held-out gold reward is ${f3(ra.value)} and ${B}'s is ${f3(rb.value)} (${how}); ` +
      `the difference ${A} − ${B} is ${signed(d.value)}, not tested for significance: no verdict on final reward.${grid}`;
    return { status: 'untested', comparison: c, verdict: { criterion: 'reward', winner: null, text } };
  }
  const head = `${at}${A}'s mean held-out gold reward is ${f3(ra.value)} ${ci(ra)} and ${B}'s is ${f3(rb.value)} ${ci(rb)} (${how}); the difference ${A} − ${B} is ${signed(d.value)} ${signedCi(d)}`;
  if (!d.significant) return { status: 'no-difference', comparison: c, verdict: { criterion: 'reward', winner: null, text: `${head}, which includes 0: no significant difference in final reward.${grid}` } };
  const w = d.value > 0 ? a : b;
  return { status: 'difference', comparison: c, verdict: { criterion: 'reward', winner: w, text: `${head}, which excludes 0: ${METHOD_LABELS[w]} wins on final reward.${grid}` } };
}

/** The closing caveat on the intervals, from what they resampled. */
function caveat(a: Method, b: Method, nA: number, nB: number, c: Comparison | null): string {
  const nMin = Math.min(nA, nB);
  const seeds = `${plural(nMin, 'seed')}${nA === nB ? ' per method' : ` of ${METHOD_LABELS[nA < nB ? a : b]}`}`;
  if (c && !c.diff.tested) return ' (With 1 seed and no per-prompt rewards there is no interval at all: run more seeds, or record per-prompt rewards, before reading anything into the reward difference.)';
  if (nMin >= 5) return '';
  if (nMin === 1) return ` (With ${seeds}, seed-to-seed variation is not in these intervals; more seeds would show it.)`;
  return ` (With ${seeds} the seed-to-seed part of these intervals rests on ${plural(nMin - 1, 'degree')} of freedom, which makes them wide; more seeds would narrow them.)`;
}

function stabilityVerdict(ma: MethodAnalysis, mb: MethodAnalysis, alpha: number): Verdict {
  const A = ma.label, B = mb.label, sa = ma.stability, sb = mb.stability;
  const fails = (s: typeof sa) => `${s.collapsed + s.diverged} of ${plural(s.runs, 'run')} failed (${s.collapsed} collapsed, ${s.diverged} diverged)`;
  const head = `Stability: ${A}: ${fails(sa)}, seed-to-seed std of final reward ${f3(sa.seedStd)}; ${B}: ${fails(sb)}, std ${f3(sb.seedStd)}.`;
  const fa = sa.collapsed + sa.diverged, fb = sb.collapsed + sb.diverged;
  let winner: Method | null = null, why = '';
  if (sa.runs === 0 || sb.runs === 0) why = ' Not enough finished runs to judge.';
  else if (sa.failureRate !== sb.failureRate && fa !== fb) {
    winner = sa.failureRate < sb.failureRate ? ma.method : mb.method;
    why = ` ${METHOD_LABELS[winner]} is more stable (fewer failed runs).`;
  } else {
    const p = varianceRatioPValue(sa.seedStd ** 2, sa.seedDf, sb.seedStd ** 2, sb.seedDf);
    if (p < alpha) {
      winner = sa.seedStd < sb.seedStd ? ma.method : mb.method;
      why = ` ${METHOD_LABELS[winner]} is more stable (as many failures, less seed-to-seed spread: F test p = ${p.toPrecision(2)}).`;
    } else if (Number.isFinite(p)) why = ` Neither is clearly more stable (equal failure rates; spread differs with F test p = ${p.toPrecision(2)}).`;
    else why = ' Neither is clearly more stable (equal failure rates; too few seeds to compare spread).';
  }
  return { criterion: 'stability', winner, text: head + why };
}

function costVerdict(ma: MethodAnalysis, mb: MethodAnalysis, costRatio: number): Verdict {
  const one = (m: MethodAnalysis) => {
    const c = m.cost;
    const pre = c.prerequisiteSeconds > 0 ? ` (${seconds(c.wallSeconds.value)} per run + ${seconds(c.prerequisiteSeconds)} of ${c.prerequisites.join(', ')})` : '';
    const gen = Number.isFinite(c.generationShare) && c.splitConsistent ? `, ${(100 * c.generationShare).toFixed(0)}% of it generating` : '';
    const mem = Number.isFinite(c.peakRssBytes) && c.peakRssBytes > 0 ? `, peak memory ${(c.peakRssBytes / 2 ** 20).toFixed(0)} MiB` : '';
    return `${m.label} ${seconds(c.oneModelSeconds)}${pre}${gen}${mem}`;
  };
  const ta = ma.cost.oneModelSeconds, tb = mb.cost.oneModelSeconds;
  const head = `Cost of one model: ${one(ma)}; ${one(mb)}.`;
  if (!(ta > 0 && tb > 0)) return { criterion: 'cost', winner: null, text: `${head} Not enough timing data to judge.` };
  const r = Math.max(ta, tb) / Math.min(ta, tb);
  if (r < costRatio) return { criterion: 'cost', winner: null, text: `${head} Their costs are within ${ratio(costRatio)} of each other.` };
  const w = ta < tb ? ma : mb;
  return { criterion: 'cost', winner: w.method, text: `${head} ${w.label} is ${ratio(r)} cheaper.` };
}

function complexityVerdict(ma: MethodAnalysis, mb: MethodAnalysis): Verdict {
  const ca = ma.complexity, cb = mb.complexity;
  const keys = [
    ['modelsInMemory', 'models in memory'],
    ['hyperparameters', 'hyperparameters'],
    ['lossLines', 'lines of loss'],
  ] as const;
  let wa = 0, wb = 0;
  for (const [k] of keys) {
    if (ca[k] < cb[k]) wa++;
    else if (cb[k] < ca[k]) wb++;
  }
  const head = `Complexity (${ma.label} vs ${mb.label}): ${keys.map(([k, w]) => `${ca[k]} vs ${cb[k]} ${w}`).join(', ')}.`;
  if (wa === wb) return { criterion: 'complexity', winner: null, text: `${head} Neither is simpler overall.` };
  const w = wa > wb ? ma : mb;
  return { criterion: 'complexity', winner: w.method, text: `${head} ${w.label} is simpler.` };
}

const ADJ: Record<Exclude<Criterion, 'reward'>, [string, string]> = {
  stability: ['more stable', 'less stable'],
  cost: ['cheaper', 'more expensive'],
  complexity: ['simpler', 'more complex'],
};

function list(xs: string[]): string {
  return xs.length <= 1 ? (xs[0] ?? '') : `${xs.slice(0, -1).join(', ')} and ${xs.at(-1)}`;
}

/** "PPO did not improve on the base at any KL ≤ 6.43 nats (…)", or null when it did or could not be tested. */
export function noImprovementText(m: MethodAnalysis): string | null {
  const im = m.improvement;
  if (!im.tested || im.improved) return null;
  const best = Math.max(...im.gains.map((g) => g.value));
  const family = im.pHolm.filter(Number.isFinite).length;
  const baseOnly = im.kls.length - family;
  if (family === 0) return `${m.label} did not improve on the base at any KL ≤ ${kl3(m.reach)} nats (its reach): at each of ${plural(im.kls.length, 'budget')} up to there, every seed's best checkpoint was the base itself.`;
  const which = baseOnly > 0 ? `${plural(family, 'budget')} up to there where it had left the base (at the ${plural(baseOnly, 'other budget')}, every seed's best checkpoint was the base)` : `${plural(im.kls.length, 'budget')} up to there`;
  return `${m.label} did not improve on the base at any KL ≤ ${kl3(m.reach)} nats (its reach): its reward minus the base's is not significantly above 0 at any of ${which} (Holm-corrected; largest gain ${signed(best)}).`;
}

/** The recommendation for method a vs method b (default DPO vs PPO), from the analysis numbers. */
export function recommend(an: StudyAnalysis, a: Method = 'dpo', b: Method = 'ppo', opts: RecommendOptions = {}): Recommendation {
  const { costRatio = 1.2, alpha = 0.05 } = opts;
  const ma = an.byMethod[a], mb = an.byMethod[b];
  if (!ma || !mb) {
    const missing = [a, b].filter((m) => !an.byMethod[m]).map((m) => METHOD_LABELS[m]);
    const text = `No recommendation: the study has no runs of ${list(missing)}.`;
    const none = (criterion: Criterion): Verdict => ({ criterion, winner: null, text });
    return { a, b, verdicts: { reward: none('reward'), stability: none('stability'), cost: none('cost'), complexity: none('complexity') }, overall: null, paragraph: text };
  }
  const rv = rewardVerdict(an, a, b);
  const verdicts: Record<Criterion, Verdict> = {
    reward: rv.verdict,
    stability: stabilityVerdict(ma, mb, alpha),
    cost: costVerdict(ma, mb, costRatio),
    complexity: complexityVerdict(ma, mb),
  };
  // Whether each method beat the base at all comes before everything else, and cost never stands in for it.
  const noGain = [ma, mb].map(noImprovementText);
  const improved = (m: MethodAnalysis) => m.improvement.tested && m.improvement.improved;
  const others = ['stability', 'cost', 'complexity'] as const;
  const wins = (m: Method) => others.filter((k) => verdicts[k].winner === m);
  const label = (m: Method) => METHOD_LABELS[m];
  let overall: Method | null;
  let last: string;
  const rw = verdicts.reward.winner;
  if (rw) {
    overall = rw;
    const loser = rw === a ? b : a;
    const plus = wins(rw).map((k) => ADJ[k][0]);
    const minus = wins(loser).map((k) => ADJ[k][1]);
    last = `Recommendation: use ${label(rw)}: it reaches a higher gold reward than ${label(loser)} at the same KL from the base policy`;
    if (plus.length) last += `, and it is also ${list(plus)}`;
    if (minus.length) last += `${plus.length ? ', but' : ', although'} it is ${list(minus)}`;
    last += '.';
  } else if (rv.status === 'no-kl' || rv.status === 'untested') {
    overall = null;
    const why = rv.status === 'no-kl' ? 'final reward cannot be compared at matched KL' : 'the difference in final reward could not be tested';
    last = `Recommendation: none: ${why}, and stability, cost and complexity do not stand in for reward.`;
  } else if (noGain[0] && noGain[1]) {
    overall = null;
    last = `Recommendation: none: neither ${label(a)} nor ${label(b)} improved on the base policy.`;
  } else if (improved(ma) !== improved(mb) && (noGain[0] || noGain[1])) {
    overall = improved(ma) ? a : b;
    last = `Recommendation: With no significant difference in final reward at the headline budget, prefer ${label(overall)}: it improved on the base policy and ${label(overall === a ? b : a)} did not.`;
  } else {
    const wa = wins(a), wb = wins(b);
    const lead = 'With no significant difference in final reward';
    if (wa.length !== wb.length) {
      overall = wa.length > wb.length ? a : b;
      const w = overall === a ? wa : wb;
      const l = overall === a ? wb : wa;
      last = `Recommendation: ${lead}, prefer ${label(overall)}: it is ${list(w.map((k) => ADJ[k][0]))}`;
      if (l.length) last += `, though ${list(l.map((k) => ADJ[k][1]))}`;
      last += '.';
    } else {
      overall = null;
      last = `Recommendation: ${lead} and no side winning more of stability, cost and complexity, these measurements give no reason to prefer ${label(a)} or ${label(b)}.`;
    }
  }
  const r = rv.comparison;
  const [nA, nB] = r ? (r.a === a ? [r.diff.nA, r.diff.nB] : [r.diff.nB, r.diff.nA]) : [ma.seeds.length, mb.seeds.length];
  const paragraph = [...noGain.filter((x): x is string => x !== null), ...CRITERIA.map((k) => verdicts[k].text), last + caveat(a, b, nA, nB, r)].join(' ');
  return { a, b, verdicts, overall, paragraph };
}
