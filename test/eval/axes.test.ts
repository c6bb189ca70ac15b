import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeAxes, type AxisSample } from '../../src/eval/axes.js';
import { Rng as SeededRng } from '../../src/engine/rng.js';

const close = (a: number, b: number, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

/** n rows of a task, each with `templates` scores produced by f(row, template). */
function task(name: string, type: AxisSample['type'], axes: AxisSample['axes'], n: number, templates: number, f: (r: number, t: number) => number, coherence?: (r: number) => number): AxisSample[] {
  const out: AxisSample[] = [];
  for (let r = 0; r < n; r++)
    for (let t = 0; t < templates; t++)
      out.push({ task: name, type, axes, rowId: `r${r}`, template: t, primary: f(r, t), ...(coherence ? { coherence: coherence(r) } : {}) });
  return out;
}

test('axes follow their documented formulas on constructed scores', () => {
  // QA: template 0 scores alternate 1, 0.6 (mean 0.8); paraphrase scores are 0.2 lower (mean 0.6).
  const qa = task('qa', 'qa', ['contextual_understanding', 'adaptability'], 10, 2, (r, t) => (r % 2 ? 0.6 : 1) - 0.2 * t);
  // Generation: primary = coherence = 0.4 for every row, one template.
  const gen = task('gen', 'generation', ['response_coherence', 'adaptability'], 6, 1, () => 0.4, () => 0.4);
  const ax = computeAxes([...qa, ...gen], { iters: 200, seed: 1 });
  close(ax.contextual_understanding!.value, 0.8); // template 0 only
  assert.equal(ax.contextual_understanding!.n, 10);
  close(ax.response_coherence!.value, 0.4);
  const c = ax.adaptability!.components!;
  close(c.breadth!, (0.8 + 0.4) / 2); // mean over types
  close(c.type_evenness!, 1 - 2 * 0.2); // type means 0.8 and 0.4: std 0.2
  close(c.paraphrase_consistency!, 1 - 2 * 0.1); // template means 0.8 and 0.6: std 0.1
  close(ax.adaptability!.value, (0.6 + 0.6 + 0.8) / 3);
  // Constant scores: the CI collapses on the value.
  close(ax.response_coherence!.lo, 0.4);
  close(ax.response_coherence!.hi, 0.4);
  for (const a of Object.values(ax)) assert.ok(a!.lo <= a!.value + 1e-12 && a!.value <= a!.hi + 1e-12);
});

test('an axis with no tagged samples is absent; paraphrase-free runs drop that component', () => {
  const mc = task('mc', 'multiple_choice', ['adaptability'], 5, 1, (r) => (r < 3 ? 1 : 0));
  const ax = computeAxes(mc, { iters: 50 });
  assert.equal(ax.contextual_understanding, undefined);
  assert.equal(ax.response_coherence, undefined);
  assert.deepEqual(Object.keys(ax.adaptability!.components!), ['breadth']);
  close(ax.adaptability!.value, 0.6);
});

test('axis CIs: resampling rows within tasks covers the true mean at the nominal rate, with the width normal theory predicts', () => {
  // 200 simulated evaluations of 80 Bernoulli(0.7) QA scores, each with its 95% CI.
  const sims = 200, n = 80, p = 0.7;
  let covered = 0, width = 0;
  const rng = new SeededRng(42);
  for (let k = 0; k < sims; k++) {
    const s = task('qa', 'qa', ['contextual_understanding'], n, 1, () => (rng.next() < p ? 1 : 0));
    const cu = computeAxes(s, { iters: 200, seed: k }).contextual_understanding!;
    if (cu.lo <= p && p <= cu.hi) covered++;
    width += (cu.hi - cu.lo) / sims;
  }
  // Coverage on both sides: 95% nominal → 190 of 200 (binomial sd 3.1). Below: the percentile bootstrap
  // undercovers slightly at n = 80 (~93%); above: a 99% interval would cover ~198, a 99.9% one ~200.
  assert.ok(covered >= 180 && covered <= 196, `covered ${covered}/${sims}`);
  // Width against the normal approximation 2 · 1.96 · sqrt(p(1 − p)/n) = 0.201: a 90% interval is 0.84 of it,
  // a 99.9% one 1.68; the bootstrap's is a few percent narrower (it resamples with the 1/n variance).
  const normal = 2 * 1.96 * Math.sqrt((p * (1 - p)) / n);
  assert.ok(width / normal >= 0.9 && width / normal <= 1.05, `mean width ${width.toFixed(4)} vs normal ${normal.toFixed(4)} (ratio ${(width / normal).toFixed(3)})`);
});
