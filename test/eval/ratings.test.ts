import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  bradleyTerry,
  expectedWinRate,
  lengthControlledWinRate,
  lengthControlledWithCI,
  ratingsWithCI,
  winRateMatrix,
  type Battle,
  type LengthRecord,
} from '../../src/eval/ratings.js';
import { Rng as SeededRng } from '../../src/engine/rng.js';

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** Battles between random pairs drawn from known Elo-scale strengths. */
function simulate(truth: Record<string, number>, n: number, seed: number): Battle[] {
  const rng = new SeededRng(seed);
  const names = Object.keys(truth);
  const out: Battle[] = [];
  for (let k = 0; k < n; k++) {
    const i = rng.int(names.length);
    let j = rng.int(names.length - 1);
    if (j >= i) j++;
    const a = names[i]!, b = names[j]!;
    const p = 1 / (1 + 10 ** ((truth[b]! - truth[a]!) / 400));
    out.push({ a, b, winner: rng.next() < p ? 'a' : 'b' });
  }
  return out;
}

test('Bradley–Terry recovers known strengths: rank order, and each true value inside its 95% CI', () => {
  const truth = { alpha: 1250, bravo: 1120, charlie: 1000, delta: 830 };
  const center = Object.values(truth).reduce((a, b) => a + b, 0) / 4;
  const battles = simulate(truth, 4000, 7);
  const ratings = ratingsWithCI(battles, { center, iters: 300, seed: 11 });
  assert.deepEqual(
    ratings.map((r) => r.model),
    ['alpha', 'bravo', 'charlie', 'delta'],
  );
  for (const r of ratings) {
    const t = truth[r.model as keyof typeof truth];
    assert.ok(r.lo <= t && t <= r.hi, `${r.model}: true ${t} outside CI [${r.lo.toFixed(1)}, ${r.hi.toFixed(1)}] (estimate ${r.value.toFixed(1)})`);
    assert.ok(r.hi - r.lo < 80, `${r.model}: CI too wide to mean anything: ${(r.hi - r.lo).toFixed(1)}`);
    assert.ok(r.lo < r.value && r.value < r.hi);
  }
});

test('Bradley–Terry MLE satisfies its score equations (observed wins = expected wins per model)', () => {
  const battles = simulate({ a: 1100, b: 1000, c: 950 }, 600, 3);
  const r = bradleyTerry(battles, { prior: 0 });
  for (const m of ['a', 'b', 'c']) {
    let observed = 0, expected = 0;
    for (const bt of battles) {
      if (bt.a !== m && bt.b !== m) continue;
      const other = bt.a === m ? bt.b : bt.a;
      observed += (bt.a === m && bt.winner === 'a') || (bt.b === m && bt.winner === 'b') ? 1 : 0;
      expected += expectedWinRate(r[m]!, r[other]!);
    }
    assert.ok(Math.abs(observed - expected) < 1e-6, `${m}: observed ${observed} vs expected ${expected}`);
  }
});

test('ratings: anchor pins one model; ties count half; a model that never wins stays finite and last', () => {
  const battles: Battle[] = [];
  for (let k = 0; k < 30; k++) battles.push({ a: 'x', b: 'y', winner: k % 3 === 0 ? 'tie' : 'a' }, { a: 'z', b: 'x', winner: 'b' }, { a: 'y', b: 'z', winner: 'a' });
  const r = bradleyTerry(battles, { anchor: { model: 'y', rating: 1000 } });
  assert.equal(r.y, 1000);
  assert.ok(Number.isFinite(r.z!) && r.z! < r.y! && r.y! < r.x!);
  // Two models, only ties → equal ratings.
  const tied = bradleyTerry([{ a: 'p', b: 'q', winner: 'tie' }, { a: 'q', b: 'p', winner: 'tie' }]);
  assert.ok(Math.abs(tied.p! - tied.q!) < 1e-9);
  // Two models, 3 wins to 1, prior 0: strength ratio 3 → 400·log10(3) points apart.
  const two = bradleyTerry(
    [{ a: 'p', b: 'q', winner: 'a' }, { a: 'p', b: 'q', winner: 'a' }, { a: 'q', b: 'p', winner: 'b' }, { a: 'q', b: 'p', winner: 'a' }],
    { prior: 0 },
  );
  assert.ok(Math.abs(two.p! - two.q! - 400 * Math.log10(3)) < 1e-6);
});

test('win-rate matrix counts wins, half ties, and leaves unmet pairs empty', () => {
  const battles: Battle[] = [
    { a: 'a', b: 'b', winner: 'a' },
    { a: 'b', b: 'a', winner: 'tie' },
    { a: 'b', b: 'a', winner: 'a' },
    { a: 'a', b: 'b', winner: 'a' },
    { a: 'c', b: 'a', winner: 'b' },
  ];
  const m = winRateMatrix(battles);
  assert.deepEqual(m.models, ['a', 'b', 'c']);
  assert.equal(m.rate[0]![1], 2.5 / 4);
  assert.equal(m.rate[1]![0], 1.5 / 4);
  assert.equal(m.rate[0]![2], 1);
  assert.equal(m.rate[1]![2], null);
  assert.equal(m.count[0]![1], 4);
});

/** A judge that likes long answers: P(model preferred) = σ(quality + bias·tanh(Δlen/100)). */
function lengthBiasedJudge(quality: number, bias: number, n: number, seed: number): LengthRecord[] {
  const rng = new SeededRng(seed);
  const out: LengthRecord[] = [];
  for (let i = 0; i < n; i++) {
    const baselineLength = Math.round(400 + 80 * rng.normal());
    const modelLength = Math.max(1, Math.round(baselineLength + 90 + 100 * rng.normal())); // the model writes longer
    const p = sigmoid(quality + bias * Math.tanh((modelLength - baselineLength) / 100));
    out.push({ preference: rng.next() < p ? 1 : 0, modelLength, baselineLength });
  }
  return out;
}

test('length-controlled win rate removes a planted length bias (true win rate at equal length = 0.5)', () => {
  const recs = lengthBiasedJudge(0, 2.5, 3000, 21);
  const r = lengthControlledWithCI(recs, { iters: 200, seed: 5 });
  assert.ok(r.winRate > 0.7, `raw win rate should be inflated by length, got ${r.winRate.toFixed(3)}`);
  assert.ok(Math.abs(r.lcWinRate - 0.5) < 0.04, `LC win rate ${r.lcWinRate.toFixed(3)} should be near 0.5`);
  assert.ok(r.ci[0] <= 0.5 && 0.5 <= r.ci[1], `CI [${r.ci[0].toFixed(3)}, ${r.ci[1].toFixed(3)}] should contain 0.5`);
  assert.ok(r.winRateCi[0] > 0.5, 'the raw win rate CI excludes 0.5: the bias is real in the raw numbers');
  assert.ok(r.lengthCoef > 1.5, `length coefficient ${r.lengthCoef.toFixed(2)} should pick up the bias`);
});

test('length-controlled win rate keeps a real quality difference', () => {
  const recs = lengthBiasedJudge(1, 2.5, 3000, 22);
  const r = lengthControlledWinRate(recs);
  assert.ok(Math.abs(r.lcWinRate - sigmoid(1)) < 0.04, `LC ${r.lcWinRate.toFixed(3)} vs true ${sigmoid(1).toFixed(3)}`);
  // Without a length effect, LC and raw agree.
  const fair = lengthBiasedJudge(0.5, 0, 3000, 23);
  const f = lengthControlledWinRate(fair);
  assert.ok(Math.abs(f.lcWinRate - f.winRate) < 0.03, `${f.lcWinRate} vs ${f.winRate}`);
  assert.ok(Math.abs(f.lengthCoef) < 0.3);
});
