// The report's tables, built once as plain text cells and rendered to both Markdown and HTML,
// so the two reports always show the same numbers.

import type { Comparison, Interval, MethodAnalysis, StudyAnalysis } from '../study/analysis.js';
import { finalReward, resampledText } from '../study/analysis.js';
import type { Recommendation } from '../study/recommend.js';
import { ci, f3, seconds, signed, signedCi } from '../study/recommend.js';
import type { Method, Run, Sample, StudyResults } from '../study/types.js';
import { METHOD_LABELS } from '../study/types.js';

export interface Table {
  /** HTML id and anchor: criteria, per-method, matched-kl, stability, cost, complexity, samples, provenance. */
  id: string;
  title: string;
  columns: string[];
  rows: string[][];
  note?: string;
}

const pct = (x: number) => (Number.isFinite(x) ? `${(100 * x).toFixed(0)}%` : 'n/a');
const mib = (b: number) => (Number.isFinite(b) && b > 0 ? `${(b / 2 ** 20).toFixed(0)} MiB` : 'n/a');
const num = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const big = (x: number) => (!Number.isFinite(x) ? 'n/a' : x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e4 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0));
const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;

/** "0.201 [0.150, 0.252] (3 seeds × 64 prompts)": a reward at matched KL with what its interval resampled. */
export function rewardCell(r: Interval, prompts: number): string {
  if (r.n === 0) return 'not reached';
  if (r.n < 2 && prompts === 0) return `${f3(r.mean)} (1 seed, no interval)`;
  return `${f3(r.mean)} ${ci(r)} (${plural(r.n, 'seed')}${prompts > 0 ? ` × ${prompts} prompts` : ''})`;
}

/** What the reward CIs of a comparison resampled, as a sentence for table notes. */
export function ciNote(c: Comparison | undefined, bootstrap: StudyAnalysis['bootstrap']): string {
  const level = `${(100 * bootstrap.level).toFixed(0)}%`;
  if (!c || c.diff.n === 0) return `${level} percentile-bootstrap CIs over seeds and, when the checkpoints carry per-prompt rewards, held-out prompts`;
  const { nA, nB, prompts, tested } = c.diff;
  if (!tested) return `no CIs: with ${nA === nB ? `${plural(nA, 'seed')} per method` : `${nA} and ${nB} seeds`} and no per-prompt rewards there is nothing to resample, so no difference is tested`;
  const seeds = nA === nB ? plural(nA, 'seed') : `${nA} and ${nB} seeds`;
  if (prompts === 0) return `${level} percentile-bootstrap CIs over ${seeds} (${bootstrap.iters} resamples, each method's seeds resampled independently); no per-prompt rewards, so prompt sampling is not in them`;
  const one = Math.max(nA, nB) < 2;
  return `${level} percentile-bootstrap CIs over ${one ? `the ${prompts} held-out prompts only (1 seed: seed-to-seed variation is not in them)` : `${seeds} and the ${prompts} held-out prompts, both resampled in each of ${bootstrap.iters} iterations`}; the prompt draws are shared by the two methods (a paired comparison)`;
}

function winnerCell(rec: Recommendation | null, k: keyof Recommendation['verdicts']): string {
  if (!rec) return 'n/a';
  const w = rec.verdicts[k].winner;
  return w ? METHOD_LABELS[w] : 'no clear difference';
}

/** The headline table: Criteria | DPO | PPO (| Better), every cell from measurements. */
export function criteriaTable(an: StudyAnalysis, rec: Recommendation | null, a: Method = 'dpo', b: Method = 'ppo'): Table {
  const ms = [an.byMethod[a], an.byMethod[b]];
  const cell = (m: MethodAnalysis | undefined, f: (m: MethodAnalysis) => string) => (m ? f(m) : 'not run');
  const kl = an.headlineKl === null ? 'no shared KL budget' : `at KL ${f3(an.headlineKl)} nats`;
  const cmp = an.comparisons.find((c) => (c.a === a && c.b === b) || (c.a === b && c.b === a));
  // What the interval is over, beside the number: with one seed and nothing else resampled there is none.
  const over = !cmp || cmp.diff.n === 0 ? '' : cmp.diff.tested ? `; 95% CI over ${resampledText([cmp.diff.nA, cmp.diff.nB], cmp.diff.prompts)}` : '; no CI: 1 seed, no per-prompt rewards';
  const rows: string[][] = [
    ['Complexity', ...ms.map((m) => cell(m, (x) => `${plural(x.complexity.modelsInMemory, 'model')} in memory, ${plural(x.complexity.hyperparameters, 'hyperparameter')}, ${plural(x.complexity.lossLines, 'loss line')}`)), winnerCell(rec, 'complexity')],
    ['Stability', ...ms.map((m) => cell(m, (x) => `${x.stability.collapsed + x.stability.diverged}/${x.stability.runs} runs failed (${x.stability.collapsed} collapsed, ${x.stability.diverged} diverged); seed std of final reward ${f3(x.stability.seedStd)}`)), winnerCell(rec, 'stability')],
    ['Efficiency', ...ms.map((m) => cell(m, (x) => `${seconds(x.cost.oneModelSeconds)} per model (runs ${seconds(x.cost.wallSeconds.mean)}${x.cost.wallSeconds.hi > x.cost.wallSeconds.lo ? ` [${seconds(x.cost.wallSeconds.lo)}, ${seconds(x.cost.wallSeconds.hi)}]` : ''}${x.cost.prerequisiteSeconds > 0 ? ` + ${seconds(x.cost.prerequisiteSeconds)} prerequisites` : ''}); ${big(x.cost.tokensPerSecond)} tokens/s; ${pct(x.cost.generationShare)} generating; peak ${mib(x.cost.peakRssBytes)}`)), winnerCell(rec, 'cost')],
    [`Final reward (${kl}${over})`, ...ms.map((m) => cell(m, (x) => (x.headline && x.headline.reward.n > 0 ? rewardCell(x.headline.reward, x.headline.prompts) : `not reached (max KL ${f3(x.maxKl.mean)})`))), cmp && cmp.diff.n > 0 && !cmp.diff.tested ? 'not tested' : winnerCell(rec, 'reward')],
  ];
  return {
    id: 'criteria',
    title: `${METHOD_LABELS[a]} vs ${METHOD_LABELS[b]}`,
    columns: ['Criteria', METHOD_LABELS[a], METHOD_LABELS[b], 'Better'],
    rows,
    note: `Rewards: mean held-out VADER compound score at the matched KL, ${ciNote(cmp, an.bootstrap)}; efficiency: wall time to one model including prerequisites such as the reward model; "Better" follows the rules stated with the recommendation.`,
  };
}

export function perMethodTable(an: StudyAnalysis): Table {
  const kl = an.headlineKl;
  const b = an.base;
  const rows = [
    ['Base', '-', '-', f3(b.reward), '0', num(b.entropy), num(b.distinct1), num(b.distinct2), num(b.length, 1), num(b.perplexity, 1), num(b.winRate), '-', '-'],
    ...an.methods.map((m) => {
      const x = an.byMethod[m]!;
      const h = x.headline;
      const ok = h !== null && h.reward.n > 0;
      return [
        x.label,
        String(x.runs),
        String(x.seeds.length),
        ok ? rewardCell(h.reward, h.prompts) : 'not reached',
        f3(x.maxKl.mean),
        ok ? num(h.metrics.entropy) : 'n/a',
        ok ? num(h.metrics.distinct1) : 'n/a',
        ok ? num(h.metrics.distinct2) : 'n/a',
        ok ? num(h.metrics.length, 1) : 'n/a',
        ok ? num(h.metrics.perplexity, 1) : 'n/a',
        ok ? num(h.metrics.winRate) : 'n/a',
        seconds(x.cost.wallSeconds.mean),
        big(x.cost.tokensPerSecond),
      ];
    }),
  ];
  return {
    id: 'per-method',
    title: 'Per method',
    columns: ['Method', 'Runs', 'Seeds', kl === null ? 'Reward at matched KL' : `Reward at KL ${f3(kl)} [95% CI]`, 'Max KL', 'Entropy', 'Distinct-1', 'Distinct-2', 'Length', 'Perplexity (base)', 'Win rate vs base', 'Wall per run', 'Tokens/s'],
    rows,
    note: 'Metrics at the matched KL are interpolated along each seed\'s reward-vs-KL frontier with the same weights as the reward, then averaged over seeds; the reward CI resamples seeds and, where recorded, the held-out prompts (the count beside each number). Max KL: mean over seeds of the highest KL on the frontier.',
  };
}

export function matchedKlTable(an: StudyAnalysis): Table {
  const pairs = new Set(an.gridComparisons.map((c) => `${c.a}/${c.b}`));
  const many = pairs.size > 1;
  const first = an.gridComparisons[0];
  const [a, b] = first ? [METHOD_LABELS[first.a], METHOD_LABELS[first.b]] : ['DPO', 'PPO'];
  const rows = an.gridComparisons.map((c) => [
    ...(many ? [`${METHOD_LABELS[c.a]} vs ${METHOD_LABELS[c.b]}`] : []),
    f3(c.kl),
    rewardCell(c.aReward, c.diff.prompts),
    rewardCell(c.bReward, c.diff.prompts),
    c.diff.tested ? `${signed(c.diff.mean)} ${signedCi(c.diff)}` : `${signed(c.diff.mean)} (no interval)`,
    !c.diff.tested ? 'not tested' : c.winner ? `yes: ${METHOD_LABELS[c.winner]}` : 'no',
  ]);
  const columns = many
    ? ['Comparison', 'KL budget', 'First', 'Second', 'First − second [95% CI]', 'Significant']
    : ['KL budget', a, b, `${a} − ${b} [95% CI]`, 'Significant'];
  return {
    id: 'matched-kl',
    title: many ? 'Reward at matched KL by KL budget' : `Reward at matched KL: ${a} − ${b} by KL budget`,
    columns,
    rows: rows.length ? rows : [columns.map((_, i) => (i === columns.length - 1 ? 'no shared KL budget' : 'n/a'))],
    note: an.klRange ? `KL grid over (${f3(an.klRange.lo)}, ${f3(an.klRange.hi)}]: the range every seed of the compared methods reaches. ${ciNote(first, an.bootstrap).replace(/^./, (ch) => ch.toUpperCase())}.` : 'The compared methods share no KL range above the base policy.',
  };
}

export function stabilityTable(an: StudyAnalysis): Table {
  return {
    id: 'stability',
    title: 'Stability',
    columns: ['Method', 'Finished runs', 'Collapsed', 'Diverged', 'Seed std of final reward', 'Final reward by setting (mean ± sd, n)', 'Failures'],
    rows: an.methods.map((m) => {
      const s = an.byMethod[m]!.stability;
      return [
        METHOD_LABELS[m],
        String(s.runs),
        String(s.collapsed),
        String(s.diverged),
        f3(s.seedStd),
        s.perSetting.map((p) => `${p.setting}: ${f3(p.mean)} ± ${f3(p.std)} (${p.n})`).join('; ') || 'n/a',
        s.failures.map((f) => `${f.runId}: ${f.reason}`).join('; ') || 'none',
      ];
    }),
    note: 'Collapsed: entropy below 0.3× or distinct-n below 0.5× the base policy\'s at some checkpoint; diverged: non-finite metrics or KL above 50 nats (or flagged by the runner).',
  };
}

export function costTable(an: StudyAnalysis): Table {
  return {
    id: 'cost',
    title: 'Cost',
    columns: ['Method', 'Wall per run [95% CI]', 'Prerequisites', 'One model', 'Tokens per run', 'Tokens/s', 'Generating', 'Forward', 'Backward', 'Peak memory'],
    rows: an.methods.map((m) => {
      const c = an.byMethod[m]!.cost;
      return [
        METHOD_LABELS[m],
        `${seconds(c.wallSeconds.mean)} [${seconds(c.wallSeconds.lo)}, ${seconds(c.wallSeconds.hi)}]`,
        c.prerequisites.length ? `${c.prerequisites.join(', ')} (${seconds(c.prerequisiteSeconds)})` : 'none',
        seconds(c.oneModelSeconds),
        big(c.tokensProcessed),
        big(c.tokensPerSecond),
        pct(c.generationShare),
        pct(c.forwardShare),
        pct(c.backwardShare),
        mib(c.peakRssBytes),
      ];
    }),
  };
}

export function complexityTable(an: StudyAnalysis): Table {
  return {
    id: 'complexity',
    title: 'Complexity',
    columns: ['Method', 'Models in memory', 'Hyperparameters', 'Loss lines'],
    rows: an.methods.map((m) => {
      const c = an.byMethod[m]!.complexity;
      return [METHOD_LABELS[m], String(c.modelsInMemory), String(c.hyperparameters), `${c.lossLines}${c.consistent ? '' : ' (runs disagree: max shown)'}`];
    }),
  };
}

/** The run whose final reward is the median of its method's runs: representative, not cherry-picked. */
export function medianRun(runs: readonly Run[]): Run | undefined {
  const rs = runs.filter((r) => r.samples.length > 0 && Number.isFinite(finalReward(r))).sort((x, y) => finalReward(x) - finalReward(y) || x.id.localeCompare(y.id));
  return rs[Math.floor((rs.length - 1) / 2)] ?? runs.find((r) => r.samples.length > 0);
}

export function samplesTable(study: StudyResults, an: StudyAnalysis, perMethod = 3): Table {
  const rows: string[][] = [];
  const add = (label: string, from: string, ss: readonly Sample[]) => {
    for (const s of ss.slice(0, perMethod)) rows.push([label, from, s.prompt, s.completion, f3(s.reward)]);
  };
  if (study.baseSamples?.length) add('Base', 'base policy', study.baseSamples);
  for (const m of an.methods) {
    const r = medianRun(study.runs.filter((x) => x.method === m));
    if (r) add(METHOD_LABELS[m], r.id, r.samples);
  }
  return {
    id: 'samples',
    title: 'Sample generations',
    columns: ['Method', 'Run', 'Prompt', 'Continuation', 'Gold reward'],
    rows: rows.length ? rows : [['n/a', 'n/a', 'n/a', 'no samples recorded', 'n/a']],
    note: `The first ${perMethod} held-out samples from each method's median run (by final reward).`,
  };
}

function promptsNote(study: StudyResults): string {
  const n = study.base.promptRewards?.length ?? 0;
  return n > 0 ? ` and the ${n} held-out prompts (paired across methods) where checkpoints carry per-prompt rewards` : ' only (no per-prompt rewards recorded)';
}

export function provenanceTable(study: StudyResults, an: StudyAnalysis, extra: Record<string, string> = {}): Table {
  const p = study.provenance;
  const rows: string[][] = [
    ['Device', p.deviceName ? `${p.device} (${p.deviceName})` : p.device],
    ...Object.entries(p.versions).sort(([x], [y]) => x.localeCompare(y)).map(([k, v]) => [`Version: ${k}`, v]),
    ['Seeds', p.seeds.join(', ')],
    ['Started', p.startedAt],
    ['Finished', p.finishedAt ?? 'not finished'],
    ...(p.command ? [['Command', p.command]] : []),
    ['Runs', `${study.runs.length} (${an.methods.map((m) => `${METHOD_LABELS[m]} ${an.byMethod[m]!.runs}`).join(', ')})`],
    ['Settings', an.methods.map((m) => `${METHOD_LABELS[m]}: ${an.byMethod[m]!.settings.join(' | ')}`).join('; ')],
    ...(study.rewardModel ? [['Reward model held-out accuracy', `${f3(study.rewardModel.heldOutAccuracy)} on ${study.rewardModel.n} pairs`]] : []),
    ['Base policy (held-out)', `reward ${f3(study.base.reward)} ± ${f3(study.base.rewardStd)} over ${study.base.n} continuations`],
    ['Bootstrap', `${an.bootstrap.iters} resamples, ${(100 * an.bootstrap.level).toFixed(0)}% percentile intervals, seed ${an.bootstrap.seed}; resamples seeds${promptsNote(study)}`],
    ...Object.entries(extra),
  ];
  return { id: 'provenance', title: 'Configuration and provenance', columns: ['Item', 'Value'], rows };
}
