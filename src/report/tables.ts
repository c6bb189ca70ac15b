// The report's tables, built once as plain text cells and rendered to both Markdown and HTML,
// so the two reports always show the same numbers.

import { ci, f3, pValue, seconds, signed, signedCi, type Interval } from '../stats/index.js';
import type { ReportAnalysis, ReportComparison, ReportMethod, StudyReportInput } from './study-input.js';

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
const num = (x: number | undefined, d = 2) => (x !== undefined && Number.isFinite(x) ? x.toFixed(d) : 'n/a');
const big = (x: number) => (!Number.isFinite(x) ? 'n/a' : x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e4 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0));
const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;

/** What an interval resampled, in words: "3 seeds × 64 prompts", "64 prompts (1 seed: prompts only)", "3 seeds", "nothing (1 seed, no per-prompt rewards)". */
export function resampledText(seeds: number | [number, number], prompts: number): string {
  const [sa, sb] = typeof seeds === 'number' ? [seeds, seeds] : seeds;
  const s = sa === sb ? `${sa} seed${sa === 1 ? '' : 's'}` : `${sa} and ${sb} seeds`;
  const nMin = Math.min(sa, sb);
  if (prompts > 0) return nMin >= 2 ? `${s} × ${prompts} prompts` : `${prompts} prompts (${s}: prompts only)`;
  return nMin >= 2 ? s : `nothing (${s}, no per-prompt rewards)`;
}

/** "0.201 [0.150, 0.252] (3 seeds × 64 prompts)": a reward at matched KL with what its interval resampled. */
export function rewardCell(r: Interval, prompts: number): string {
  if (r.n === 0) return 'no value';
  if (r.n < 2 && prompts === 0) return `${f3(r.value)} (1 seed, no interval)`;
  return `${f3(r.value)} ${ci(r)} (${resampledText(r.n, prompts)})`;
}

/** What the reward CIs of a comparison resampled, as a sentence for table notes. */
export function ciNote(c: ReportComparison | undefined, an: ReportAnalysis): string {
  const { bootstrap } = an;
  const level = `${(100 * bootstrap.level).toFixed(0)}%`;
  const fit = an.crossFit ? '; each seed\'s checkpoint is chosen on one half of the prompts and scored on the other (cross-fitting), and checkpoint KLs are resampled with the prompts' : an.prompts === 0 ? '; without per-prompt rewards the best checkpoint is chosen and scored on the same prompts (not corrected for selection)' : '';
  if (!c || c.diff.n === 0) return `${level} CIs over seeds and, when the checkpoints carry per-prompt rewards, held-out prompts${fit}`;
  const { nA, nB, prompts, tested } = c.diff;
  if (!tested) return `no CIs: with ${nA === nB ? `${plural(nA, 'seed')} per method` : `${nA} and ${nB} seeds`} and no per-prompt rewards there is nothing to resample, so no difference is tested`;
  const seeds = nA === nB ? plural(nA, 'seed') : `${nA} and ${nB} seeds`;
  if (prompts === 0) return `${level} t intervals over ${seeds} (Welch–Satterthwaite; variances from ${bootstrap.iters} bootstrap resamples of each method's seeds); no per-prompt rewards, so prompt sampling is not in them${fit}`;
  const one = Math.max(nA, nB) < 2;
  return `${level} CIs from a bootstrap over ${one ? `the ${prompts} held-out prompts only (1 seed: seed-to-seed variation is not in them)` : `${seeds} and the ${prompts} held-out prompts, both resampled in each of ${bootstrap.iters} iterations, the variance split into seed, prompt and seed × prompt parts with a t quantile for the seed part`}; the prompt draws are shared by the two methods (a paired comparison)${fit}`;
}

function winnerCell(input: StudyReportInput, k: string): string {
  const rec = input.recommendation;
  if (!rec) return 'n/a';
  const w = rec.verdicts[k]?.winner;
  return w ? input.labels[w] ?? w : 'no clear difference';
}

const label = (input: StudyReportInput, m: string) => input.labels[m] ?? m;

/** The headline table: Criteria | DPO | PPO (| Better), every cell from measurements. */
export function criteriaTable(input: StudyReportInput): Table {
  const { analysis: an, a, b } = input;
  const ms = [an.byMethod[a], an.byMethod[b]];
  const cell = (m: ReportMethod | undefined, f: (m: ReportMethod) => string) => (m ? f(m) : 'not run');
  const kl = an.headlineKl === null ? 'no shared KL budget' : `at KL ≤ ${f3(an.headlineKl)} nats`;
  const cmp = an.comparisons.find((c) => (c.a === a && c.b === b) || (c.a === b && c.b === a));
  // What the interval is over, beside the number: with one seed and nothing else resampled there is none.
  const over = !cmp || cmp.diff.n === 0 ? '' : cmp.diff.tested ? `; 95% CI over ${resampledText([cmp.diff.nA, cmp.diff.nB], cmp.diff.prompts)}` : '; no CI: 1 seed, no per-prompt rewards';
  const beat = (x: ReportMethod) => (!x.improvement.tested ? '' : x.improvement.improved ? '; improved on the base' : `; did not improve on the base at any KL ≤ ${f3(x.reach)}`);
  const rows: string[][] = [
    ['Complexity', ...ms.map((m) => cell(m, (x) => `${plural(x.complexity.modelsInMemory, 'model')} in memory, ${plural(x.complexity.hyperparameters, 'hyperparameter')}, ${plural(x.complexity.lossLines, 'loss line')}`)), winnerCell(input, 'complexity')],
    ['Stability', ...ms.map((m) => cell(m, (x) => `${x.stability.collapsed + x.stability.diverged}/${x.stability.runs} runs failed (${x.stability.collapsed} collapsed, ${x.stability.diverged} diverged), ${x.stability.degenerated} degenerated; seed std of final reward ${f3(x.stability.seedStd)}`)), winnerCell(input, 'stability')],
    ['Efficiency', ...ms.map((m) => cell(m, (x) => `${seconds(x.cost.oneModelSeconds)} per model (runs ${seconds(x.cost.wallSeconds.value)}${x.cost.wallSeconds.hi > x.cost.wallSeconds.lo ? ` [${seconds(x.cost.wallSeconds.lo)}, ${seconds(x.cost.wallSeconds.hi)}]` : ''}${x.cost.prerequisiteSeconds > 0 ? ` + ${seconds(x.cost.prerequisiteSeconds)} prerequisites` : ''}); ${big(x.cost.tokensPerSecond)} tokens/s; ${x.cost.splitConsistent ? pct(x.cost.generationShare) : 'n/a'} generating; peak ${mib(x.cost.peakRssBytes)}`)), winnerCell(input, 'cost')],
    [`Final reward (${kl}${over})`, ...ms.map((m) => cell(m, (x) => (x.headline && x.headline.reward.n > 0 ? rewardCell(x.headline.reward, x.headline.prompts) : `no shared budget (reach ${f3(x.reach)})`) + beat(x))), cmp && cmp.diff.n > 0 && !cmp.diff.tested ? 'not tested' : winnerCell(input, 'reward')],
  ];
  return {
    id: 'criteria',
    title: `${label(input, a)} vs ${label(input, b)}`,
    columns: ['Criteria', label(input, a), label(input, b), 'Better'],
    rows,
    note: `Rewards: mean held-out VADER compound score of each seed's best checkpoint within the KL budget (${an.headlineRule}), ${ciNote(cmp, an)}; efficiency: wall time to one model including prerequisites such as the reward model; "Better" follows the rules stated with the recommendation.`,
  };
}

export function perMethodTable(input: StudyReportInput): Table {
  const an = input.analysis;
  const kl = an.headlineKl;
  const b = an.base;
  const rows = [
    ['Base', '-', '-', '-', f3(b.reward), '0', num(b.entropy), num(b.distinct1), num(b.distinct2), num(b.length, 1), num(b.eosRate), num(b.perplexity, 1), num(b.fluency === undefined ? NaN : Math.exp(b.fluency), 1), num(b.winRate), '-', '-'],
    ...an.methods.map((m) => {
      const x = an.byMethod[m]!;
      const h = x.headline;
      const ok = h !== null && h.reward.n > 0;
      const mt = ok ? h.metrics : undefined;
      return [
        x.label,
        String(x.runs),
        String(x.seeds.length),
        num(x.candidatesPerSeed, 1),
        ok ? rewardCell(h.reward, h.prompts) + (x.degenerated ? ' (degenerated)' : '') : 'no value',
        f3(x.reach),
        num(mt?.entropy),
        num(mt?.distinct1),
        num(mt?.distinct2),
        num(mt?.length, 1),
        num(mt?.eosRate),
        num(mt?.perplexity, 1),
        num(mt?.fluency === undefined ? NaN : Math.exp(mt.fluency), 1),
        num(mt?.winRate),
        seconds(x.cost.wallSeconds.value),
        big(x.cost.tokensPerSecond),
      ];
    }),
  ];
  return {
    id: 'per-method',
    title: 'Per method',
    columns: ['Method', 'Runs', 'Seeds', 'Checkpoints per seed', kl === null ? 'Reward at matched KL' : `Reward at KL ≤ ${f3(kl)} [95% CI]`, 'Reach (max KL)', 'Entropy', 'Distinct-1', 'Distinct-2', 'Length', 'EOS rate', 'Perplexity (base)', 'Perplexity (n-gram)', 'Win rate vs base', 'Wall per run', 'Tokens/s'],
    rows,
    note: `At the matched KL each seed contributes its best checkpoint within the budget (chosen on one half of the prompts, scored on the other when per-prompt rewards exist); the other metrics are those of the chosen checkpoints, averaged over seeds. The reward's interval is over the seeds and prompts named beside it: every seed of a method has a value at every budget (the base policy counts as a checkpoint at KL 0). Checkpoints per seed: the candidates that choice picks from (base included). Reach: the largest KL any checkpoint reached. ${input.degenerationRule}.`,
  };
}

export function matchedKlTable(input: StudyReportInput): Table {
  const an = input.analysis;
  const pairs = new Set(an.gridComparisons.map((c) => `${c.a}/${c.b}`));
  const many = pairs.size > 1;
  const first = an.gridComparisons[0];
  const [a, b] = first ? [label(input, first.a), label(input, first.b)] : [label(input, input.a), label(input, input.b)];
  const rows = an.gridComparisons.map((c) => [
    ...(many ? [`${label(input, c.a)} vs ${label(input, c.b)}`] : []),
    f3(c.kl),
    rewardCell(c.aReward, c.diff.prompts),
    rewardCell(c.bReward, c.diff.prompts),
    c.diff.tested ? `${signed(c.diff.value)} ${signedCi(c.diff)}` : `${signed(c.diff.value)} (no interval)`,
    c.diff.tested ? `${pValue(c.diff.p)} / ${pValue(c.pHolm)}` : 'n/a',
    !c.diff.tested ? 'not tested' : c.holmWinner ? `yes: ${label(input, c.holmWinner)}` : 'no',
  ]);
  const columns = many
    ? ['Comparison', 'KL budget', 'First', 'Second', 'First − second [95% CI]', 'p / Holm p', 'Significant (Holm)']
    : ['KL budget', a, b, `${a} − ${b} [95% CI]`, 'p / Holm p', 'Significant (Holm)'];
  return {
    id: 'matched-kl',
    title: many ? 'Reward at matched KL by KL budget' : `Reward at matched KL: ${a} − ${b} by KL budget`,
    columns,
    rows: rows.length ? rows : [columns.map((_, i) => (i === columns.length - 1 ? 'no shared KL budget' : 'n/a'))],
    note: an.headlineKl !== null
      ? `KL budgets evenly spaced in (0, ${f3(an.headlineKl)}]; the last is the headline budget (${an.headlineRule}), tested on its own; across the grid, significance uses Holm-adjusted p-values. ${ciNote(first, an).replace(/^./, (ch) => ch.toUpperCase())}.`
      : 'The compared methods share no KL budget above 0.',
  };
}

export function stabilityTable(input: StudyReportInput): Table {
  const an = input.analysis;
  return {
    id: 'stability',
    title: 'Stability',
    columns: ['Method', 'Finished runs', 'Collapsed', 'Diverged', 'Degenerated', 'Seed std of final reward', 'Final reward by setting (mean ± sd, n)', 'Failures'],
    rows: an.methods.map((m) => {
      const s = an.byMethod[m]!.stability;
      return [
        label(input, m),
        String(s.runs),
        String(s.collapsed),
        String(s.diverged),
        String(s.degenerated),
        f3(s.seedStd),
        s.perSetting.map((p) => `${p.setting}: ${f3(p.mean)} ± ${f3(p.std)} (${p.n})`).join('; ') || 'n/a',
        s.failures.map((f) => `${f.runId}: ${f.reason}`).join('; ') || 'none',
      ];
    }),
    note: `Collapsed: entropy below 0.3× or distinct-n below 0.5× the base policy's at some checkpoint; diverged: non-finite metrics or KL above 50 nats (or flagged by the runner); ${input.degenerationRule} (at the final checkpoint; not counted as a failure).`,
  };
}

export function costTable(input: StudyReportInput): Table {
  const an = input.analysis;
  const split = (m: ReportMethod, x: number) => (m.cost.splitConsistent ? pct(x) : 'n/a');
  const bad = an.methods.filter((m) => !an.byMethod[m]!.cost.splitConsistent).map((m) => label(input, m));
  return {
    id: 'cost',
    title: 'Cost',
    columns: ['Method', 'Wall per run [95% CI]', 'Prerequisites', 'One model', 'Tokens per run', 'Tokens/s', 'Generating', 'Forward', 'Backward', 'Peak memory'],
    rows: an.methods.map((m) => {
      const x = an.byMethod[m]!, c = x.cost;
      return [
        label(input, m),
        `${seconds(c.wallSeconds.value)} [${seconds(c.wallSeconds.lo)}, ${seconds(c.wallSeconds.hi)}]`,
        c.prerequisites.length ? `${c.prerequisites.join(', ')} (${seconds(c.prerequisiteSeconds)})` : 'none',
        seconds(c.oneModelSeconds),
        big(c.tokensProcessed),
        big(c.tokensPerSecond),
        split(x, c.generationShare),
        split(x, c.forwardShare),
        split(x, c.backwardShare),
        mib(c.peakRssBytes),
      ];
    }),
    ...(bad.length ? { note: `${bad.join(', ')}: the measured parts add up to more than the run's wall time (timers that overlap or include evaluation), so no split is shown.` } : {}),
  };
}

export function complexityTable(input: StudyReportInput): Table {
  const an = input.analysis;
  return {
    id: 'complexity',
    title: 'Complexity',
    columns: ['Method', 'Models in memory', 'Hyperparameters', 'Loss lines'],
    rows: an.methods.map((m) => {
      const c = an.byMethod[m]!.complexity;
      return [
        label(input, m),
        `${c.modelsInMemory}${c.models?.length ? ` (${c.models.join(', ')})` : ''}`,
        String(c.hyperparameters),
        `${c.lossLines}${c.lossFile ? ` (src/train/${c.lossFile})` : ''}${c.consistent ? '' : ' (runs disagree: max shown)'}`,
      ];
    }),
    note: input.complexityRule,
  };
}

export function samplesTable(input: StudyReportInput, perMethod = 3): Table {
  const rows: string[][] = [];
  for (const g of input.samples) for (const s of g.samples.slice(0, perMethod)) rows.push([label(input, g.method), g.runId, s.prompt, s.completion, f3(s.reward)]);
  return {
    id: 'samples',
    title: 'Sample generations',
    columns: ['Method', 'Run', 'Prompt', 'Continuation', 'Gold reward'],
    rows: rows.length ? rows : [['n/a', 'n/a', 'n/a', 'no samples recorded', 'n/a']],
    note: `The first ${perMethod} held-out samples from each method's median run (by final reward).`,
  };
}

/** "PPO − PPO-GT at KL k: d [lo, hi] (PPO 0.3, PPO-GT 0.4)": the learned reward model against the gold one. */
function rmCost(c: StudyReportInput['analysis']['rewardModelCost'] & object): string {
  // What the sign means, only when the interval excludes 0: above 0 the learned reward taught PPO more than the gold
  // reward did within this KL (a sparse gold reward can, bench/RESULTS.md), below 0 the reward model cost reward.
  const reading = !c.diff.significant ? 'no significant difference'
    : c.diff.value > 0 ? 'PPO gained more from the learned reward model than from the gold reward within this KL'
    : 'the learned reward model cost PPO gold reward within this KL';
  return `PPO − PPO-GT at KL ${c.kl.toFixed(2)}: ${signed(c.diff.value)} ${signedCi(c.diff)} (PPO ${f3(c.aReward.value)}, PPO-GT ${f3(c.bReward.value)}; each seed's best checkpoint within that KL): ${reading}`;
}

export function provenanceTable(input: StudyReportInput, extra: Record<string, string> = {}): Table {
  const an = input.analysis, p = input.provenance;
  const rm = an.rewardModel, lm = an.baseModel;
  const rows: string[][] = [
    ['Device', p.deviceName ? `${p.device} (${p.deviceName})` : p.device],
    ...Object.entries(p.versions).sort(([x], [y]) => x.localeCompare(y)).map(([k, v]) => [`Version: ${k}`, v]),
    ['Seeds', p.seeds.join(', ')],
    ['Started', p.startedAt],
    ['Finished', p.finishedAt ?? 'not finished'],
    ...(p.command ? [['Command', p.command]] : []),
    ['Runs', `${input.runs} (${an.methods.map((m) => `${label(input, m)} ${an.byMethod[m]!.runs}`).join(', ')})`],
    ['Settings', an.methods.map((m) => `${label(input, m)}: ${an.byMethod[m]!.settings.join(' | ')}`).join('; ')],
    ...(rm ? [['Reward model held-out accuracy', `${f3(rm.value)} ${ci(rm)} on ${rm.n} pairs (Wilson 95% interval)${rm.value < 0.7 ? '; below 0.7: PPO(RM) is limited by its reward model' : ''}`]] : []),
    ...(an.rewardModelCost ? [['Reward model\'s cost to PPO', rmCost(an.rewardModelCost)]] : []),
    ...(lm ? [['Base policy as a language model (held-out, nats per word)', `${f3(lm.heldOutLoss)}; interpolated n-gram on the same split and vocabulary ${f3(lm.ngramLoss)}`]] : []),
    ['Base policy (held-out)', `reward ${f3(an.base.reward)} ± ${f3(an.base.rewardStd)} over ${an.base.n} continuations`],
    ['Bootstrap', `${an.bootstrap.iters} resamples, ${(100 * an.bootstrap.level).toFixed(0)}% intervals (variance components, Welch–Satterthwaite t), seed ${an.bootstrap.seed}; resamples seeds${an.prompts > 0 ? ` and the ${an.prompts} held-out prompts (paired across methods, KLs included)` : ' only (no per-prompt rewards recorded)'}`],
    ...Object.entries(extra),
  ];
  return { id: 'provenance', title: 'Configuration and provenance', columns: ['Item', 'Value'], rows };
}
