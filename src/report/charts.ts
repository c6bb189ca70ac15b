// The report's charts as Vega-Lite specs with their data inlined (so the .vl.json files beside the report
// are reusable on their own), rendered to SVG in Node with vega's headless renderer: the HTML report needs
// no script and no network to show them.

import { compile, type TopLevelSpec } from 'vega-lite';
import { parse, View } from 'vega';
import type { StudyReportInput } from './study-input.js';

export type VlSpec = Record<string, unknown>;

// One colour per method, fixed, so a method looks the same in every chart and every report.
const COLORS: Record<string, string> = {
  dpo: '#1f77b4',
  ipo: '#17becf',
  simpo: '#9467bd',
  ppo: '#d62728',
  'ppo-gt': '#ff7f0e',
  grpo: '#8c564b',
  rloo: '#e377c2',
  'best-of-n': '#2ca02c',
  base: '#7f7f7f',
};

const SPARE = ['#bcbd22', '#393b79', '#637939', '#8c6d31', '#843c39'];

function colorScale(input: StudyReportInput) {
  const ms = input.analysis.methods;
  return { domain: ms.map((m) => input.labels[m] ?? m), range: ms.map((m, i) => COLORS[m] ?? SPARE[i % SPARE.length]!) };
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json'; // an identifier only: nothing is fetched
const isNum = (x: number) => Number.isFinite(x);

/** Reward vs KL: every checkpoint as a faint point, each method's frontier as a line, the base and headline KL as rules. */
export function frontierSpec(input: StudyReportInput): VlSpec {
  const an = input.analysis;
  const lab = (m: string) => input.labels[m] ?? m;
  const points = input.points.filter((c) => isNum(c.kl) && isNum(c.reward)).map((c) => ({ ...c, method: lab(c.method) }));
  const frontier = an.methods.flatMap((m) => an.byMethod[m]!.frontier.map((p, i) => ({ method: lab(m), order: i, kl: p.kl, reward: p.reward })));
  const color = { field: 'method', type: 'nominal', title: 'method', scale: colorScale(input) };
  const x = { field: 'kl', type: 'quantitative', title: 'KL(π‖π_ref), nats (sequence level)' };
  const y = { field: 'reward', type: 'quantitative', title: 'mean gold reward (VADER compound)' };
  const layer: VlSpec[] = [
    { data: { values: points }, mark: { type: 'point', filled: true, opacity: 0.35, size: 28 }, encoding: { x, y, color } },
    // The frontier is a step function: the best reward at KL ≤ budget stays flat until the next corner.
    { data: { values: frontier }, mark: { type: 'line', point: true, strokeWidth: 2, interpolate: 'step-after' }, encoding: { x, y, color, order: { field: 'order', type: 'quantitative' } } },
  ];
  if (isNum(an.base.reward)) {
    layer.push({ data: { values: [{ reward: an.base.reward, label: 'base policy' }] }, mark: { type: 'rule', strokeDash: [4, 4], color: '#555' }, encoding: { y: { field: 'reward', type: 'quantitative' } } });
  }
  if (an.headlineKl !== null) {
    layer.push({ data: { values: [{ kl: an.headlineKl }] }, mark: { type: 'rule', strokeDash: [2, 3], color: '#000' }, encoding: { x: { field: 'kl', type: 'quantitative' } } });
  }
  return {
    $schema: SCHEMA,
    title: { text: 'Reward vs KL frontier', subtitle: 'points: all checkpoints; steps: best reward at KL ≤ budget per method; dashed: base reward and the headline KL budget' },
    width: 560,
    height: 360,
    layer,
  };
}

/**
 * Fluency vs KL beside the frontier: every checkpoint's n-gram perplexity of its samples (when the study had an
 * n-gram model), else its EOS rate, so a policy that buys reward with word salad shows it.
 */
export function fluencySpec(input: StudyReportInput): VlSpec {
  const an = input.analysis;
  const lab = (m: string) => input.labels[m] ?? m;
  const ngram = input.points.some((p) => isNum(p.fluency ?? NaN));
  const field = ngram ? 'ppl' : 'eos';
  const values = input.points
    .map((p) => ({ method: lab(p.method), setting: p.setting, seed: p.seed, step: p.step, kl: p.kl, ppl: Math.exp(p.fluency ?? NaN), eos: p.eosRate ?? NaN, length: p.length }))
    .filter((p) => isNum(p.kl) && isNum(p[field]));
  const baseValue = ngram ? Math.exp(an.base.fluency ?? NaN) : an.base.eosRate ?? NaN;
  const title = ngram ? 'perplexity of samples under the n-gram model' : 'share of samples ending with EOS';
  const layer: VlSpec[] = [
    { data: { values }, mark: { type: 'point', filled: true, opacity: 0.6, size: 30 }, encoding: { x: { field: 'kl', type: 'quantitative', title: 'KL(π‖π_ref), nats' }, y: { field, type: 'quantitative', title, ...(ngram ? { scale: { type: 'log' } } : {}) }, color: { field: 'method', type: 'nominal', title: 'method', scale: colorScale(input) } } },
  ];
  if (isNum(baseValue)) layer.push({ data: { values: [{ [field]: baseValue }] }, mark: { type: 'rule', strokeDash: [4, 4], color: '#555' }, encoding: { y: { field, type: 'quantitative' } } });
  return {
    $schema: SCHEMA,
    title: { text: 'Fluency vs KL', subtitle: `${title} at every checkpoint; dashed: the base policy` },
    width: 560,
    height: 300,
    layer,
  };
}

/** Reward vs step, one panel per method, one line per setting: mean over seeds with a ±1 sd band. */
export function learningCurvesSpec(input: StudyReportInput): VlSpec {
  const an = input.analysis;
  const values = an.methods.flatMap((m) => an.byMethod[m]!.curves.filter((c) => isNum(c.mean)).map((c) => ({ method: input.labels[m] ?? m, setting: c.setting, step: c.step, mean: c.mean, lo: isNum(c.lo) ? c.lo : c.mean, hi: isNum(c.hi) ? c.hi : c.mean, n: c.n })));
  const x = { field: 'step', type: 'quantitative', title: 'step' };
  const color = { field: 'setting', type: 'nominal', title: 'setting' };
  return {
    $schema: SCHEMA,
    title: { text: 'Learning curves', subtitle: 'held-out gold reward vs step: mean over seeds ± 1 sd' },
    data: { values },
    facet: { field: 'method', type: 'nominal', title: null, sort: an.methods.map((m) => input.labels[m] ?? m) },
    columns: 3,
    resolve: { scale: { x: 'independent' } },
    spec: {
      width: 240,
      height: 170,
      layer: [
        { mark: { type: 'area', opacity: 0.18 }, encoding: { x, y: { field: 'lo', type: 'quantitative', title: 'gold reward' }, y2: { field: 'hi' }, color } },
        { mark: { type: 'line', point: { size: 14 } }, encoding: { x, y: { field: 'mean', type: 'quantitative' }, color } },
      ],
    },
  };
}

/** Reward at matched KL with 95% bootstrap CI bands (seeds, and prompts where recorded), per method, over the KL grid. */
export function matchedKlSpec(input: StudyReportInput): VlSpec {
  const an = input.analysis;
  const values = an.methods.flatMap((m) =>
    an.byMethod[m]!.matched.filter((p) => p.reward.n > 0 && isNum(p.reward.value)).map((p) => ({ method: input.labels[m] ?? m, kl: p.kl, mean: p.reward.value, lo: isNum(p.reward.lo) ? p.reward.lo : p.reward.value, hi: isNum(p.reward.hi) ? p.reward.hi : p.reward.value, n: p.reward.n, prompts: p.prompts })),
  );
  const color = { field: 'method', type: 'nominal', title: 'method', scale: colorScale(input) };
  const x = { field: 'kl', type: 'quantitative', title: 'KL budget, nats' };
  return {
    $schema: SCHEMA,
    title: { text: 'Reward at matched KL', subtitle: 'each seed\'s best checkpoint within each KL budget (cross-fitted); mean over seeds, 95% bootstrap CI over seeds and (where recorded) prompts' },
    width: 560,
    height: 300,
    data: { values },
    layer: [
      { mark: { type: 'area', opacity: 0.15 }, encoding: { x, y: { field: 'lo', type: 'quantitative', title: 'gold reward' }, y2: { field: 'hi' }, color } },
      { mark: { type: 'line', point: true }, encoding: { x, y: { field: 'mean', type: 'quantitative' }, color } },
    ],
  };
}

/** Compile Vega-Lite → Vega and render to an SVG string without a browser or canvas. */
export async function renderSvg(spec: VlSpec): Promise<string> {
  const vg = compile(spec as unknown as TopLevelSpec).spec;
  const view = new View(parse(vg), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
