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

test('axis CIs: resampling rows within tasks covers the true mean at about the nominal rate', () => {
  // 60 simulated evaluations of Bernoulli(0.7) QA scores; the 95% CI should cover 0.7 most of the time.
  let covered = 0;
  const rng = new SeededRng(42);
  for (let k = 0; k < 60; k++) {
    const s = task('qa', 'qa', ['contextual_understanding'], 80, 1, () => (rng.next() < 0.7 ? 1 : 0));
    const ax = computeAxes(s, { iters: 300, seed: k });
    const cu = ax.contextual_understanding!;
    if (cu.lo <= 0.7 && 0.7 <= cu.hi) covered++;
  }
  assert.ok(covered >= 51, `covered ${covered}/60`); // nominal 95% → 57 of 60 expected; the slack allows the percentile bootstrap's slight undercoverage
});
