// The report's charts as Vega-Lite specs with their data inlined (so the .vl.json files beside the report
// are reusable on their own), rendered to SVG in Node with vega's headless renderer: the HTML report needs
// no script and no network to show them.

import { compile, type TopLevelSpec } from 'vega-lite';
import { parse, View } from 'vega';
import type { StudyAnalysis } from '../study/analysis.js';
import type { Method, StudyResults } from '../study/types.js';
import { METHOD_LABELS, settingLabel } from '../study/types.js';

export type VlSpec = Record<string, unknown>;

// One colour per method, fixed, so a method looks the same in every chart and every report.
const COLORS: Record<Method, string> = {
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

function colorScale(methods: readonly Method[]) {
  return { domain: methods.map((m) => METHOD_LABELS[m]), range: methods.map((m) => COLORS[m]) };
}

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json'; // an identifier only: nothing is fetched
const isNum = (x: number) => Number.isFinite(x);

/** Reward vs KL: every checkpoint as a faint point, each method's frontier as a line, the base and headline KL as rules. */
export function frontierSpec(study: StudyResults, an: StudyAnalysis): VlSpec {
  const points = study.runs.flatMap((r) =>
    r.checkpoints
      .filter((c) => isNum(c.kl) && isNum(c.reward))
      .map((c) => ({ method: METHOD_LABELS[r.method], setting: settingLabel(r.setting), seed: r.seed, step: c.step, kl: c.kl, reward: c.reward })),
  );
  const frontier = an.methods.flatMap((m) =>
    an.byMethod[m]!.frontier.map((p, i) => ({ method: METHOD_LABELS[m], order: i, kl: p.kl, reward: p.reward })),
  );
  const color = { field: 'method', type: 'nominal', title: 'method', scale: colorScale(an.methods) };
  const x = { field: 'kl', type: 'quantitative', title: 'KL(π‖π_ref), nats (sequence level)' };
  const y = { field: 'reward', type: 'quantitative', title: 'mean gold reward (VADER compound)' };
  const layer: VlSpec[] = [
    { data: { values: points }, mark: { type: 'point', filled: true, opacity: 0.35, size: 28 }, encoding: { x, y, color } },
    { data: { values: frontier }, mark: { type: 'line', point: true, strokeWidth: 2 }, encoding: { x, y, color, order: { field: 'order', type: 'quantitative' } } },
  ];
  if (isNum(an.base.reward)) {
    layer.push({ data: { values: [{ reward: an.base.reward, label: 'base policy' }] }, mark: { type: 'rule', strokeDash: [4, 4], color: '#555' }, encoding: { y: { field: 'reward', type: 'quantitative' } } });
  }
  if (an.headlineKl !== null) {
    layer.push({ data: { values: [{ kl: an.headlineKl }] }, mark: { type: 'rule', strokeDash: [2, 3], color: '#000' }, encoding: { x: { field: 'kl', type: 'quantitative' } } });
  }
  return {
    $schema: SCHEMA,
    title: { text: 'Reward vs KL frontier', subtitle: 'points: all checkpoints; lines: each method\'s frontier; dashed: base reward and the matched KL budget' },
    width: 560,
    height: 360,
    layer,
  };
}

/** Reward vs step, one panel per method, one line per setting: mean over seeds with a ±1 sd band. */
export function learningCurvesSpec(an: StudyAnalysis): VlSpec {
  const values = an.methods.flatMap((m) => an.byMethod[m]!.curves.filter((c) => isNum(c.mean)).map((c) => ({ method: METHOD_LABELS[m], setting: c.setting, step: c.step, mean: c.mean, lo: isNum(c.lo) ? c.lo : c.mean, hi: isNum(c.hi) ? c.hi : c.mean, n: c.n })));
  const x = { field: 'step', type: 'quantitative', title: 'step' };
  const color = { field: 'setting', type: 'nominal', title: 'setting' };
  return {
    $schema: SCHEMA,
    title: { text: 'Learning curves', subtitle: 'held-out gold reward vs step: mean over seeds ± 1 sd' },
    data: { values },
    facet: { field: 'method', type: 'nominal', title: null, sort: an.methods.map((m) => METHOD_LABELS[m]) },
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
export function matchedKlSpec(an: StudyAnalysis): VlSpec {
  const values = an.methods.flatMap((m) =>
    an.byMethod[m]!.matched.filter((p) => p.reward.n > 0).map((p) => ({ method: METHOD_LABELS[m], kl: p.kl, mean: p.reward.mean, lo: p.reward.lo, hi: p.reward.hi, n: p.reward.n, prompts: p.prompts })),
  );
  const color = { field: 'method', type: 'nominal', title: 'method', scale: colorScale(an.methods) };
  const x = { field: 'kl', type: 'quantitative', title: 'KL budget, nats' };
  return {
    $schema: SCHEMA,
    title: { text: 'Reward at matched KL', subtitle: 'each seed\'s frontier interpolated at the KL grid; mean over seeds, 95% bootstrap CI over seeds and (where recorded) prompts' },
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
