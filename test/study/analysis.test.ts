import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeRng, mean, std } from '../../src/stats/index.js';
import { analyzeStudy, verdictJson } from '../../src/study/analysis.js';
import { complexitySummary, costSummary } from '../../src/study/cost.js';
import { bestAtBudget, klGrid, methodFrontier, methodReach, paretoFrontier, seedFrontiers } from '../../src/study/frontier.js';
import { compareAtKl, rewardAtMatchedKl } from '../../src/study/matched.js';
import { degeneration, detectCollapse, learningCurves, stabilitySummary } from '../../src/study/stability.js';
import type { Checkpoint, Method, Run } from '../../src/study/types.js';
import { addCheckpoint, finishRun, newRun } from '../../src/study/types.js';
import { BASE, DPO_CX, PPO_CX, dpoVsPpo, syntheticStudy } from './synthetic.js';

const close = (a: number, b: number, tol = 1e-9, msg = '') => assert.ok(Math.abs(a - b) <= tol, `${msg} ${a} vs ${b} (tol ${tol})`);

function run(method: Run['method'], setting: Run['setting'], seed: number, pts: [number, number][], extra: Partial<Checkpoint> = {}): Run {
  const r = newRun(method, setting, seed, DPO_CX);
  pts.forEach(([kl, reward], i) => addCheckpoint(r, { ...BASE, ...extra, step: i, kl, reward }));
  return finishRun(r);
}

test('paretoFrontier: a hand-made set and a brute-force check on random points', () => {
  const pts = [
    { kl: 0, reward: 0 }, { kl: 1, reward: 0.5 }, { kl: 1, reward: 0.4 }, { kl: 2, reward: 0.3 }, { kl: 3, reward: 0.9 },
    { kl: 2.5, reward: 0.9 }, { kl: 4, reward: 0.95 }, { kl: NaN, reward: 1 }, { kl: 5, reward: -1 },
  ];
  assert.deepEqual(paretoFrontier(pts).map((p) => [p.kl, p.reward]), [[0, 0], [1, 0.5], [2.5, 0.9], [4, 0.95]]);
  assert.deepEqual(paretoFrontier([]), []);
  const rng = makeRng(5);
  for (let t = 0; t < 20; t++) {
    const ps = Array.from({ length: 60 }, () => ({ kl: 10 * rng(), reward: rng() }));
    const brute = ps.filter((p) => !ps.some((q) => q !== p && q.kl <= p.kl && q.reward >= p.reward)).sort((x, y) => x.kl - y.kl);
    assert.deepEqual(paretoFrontier(ps), brute);
  }
});

test('bestAtBudget and reach: the best reward at KL ≤ budget, flat past the last point; reach is the largest KL reached', () => {
  const pts = [{ kl: 0, reward: 0.1 }, { kl: 1, reward: 0.5 }, { kl: 2, reward: 0.3 }, { kl: 3, reward: 0.9 }];
  assert.deepEqual([0, 0.5, 1, 2.9, 3, 10].map((k) => bestAtBudget(pts, k)), [0.1, 0.1, 0.5, 0.5, 0.9, 0.9]);
  assert.ok(Number.isNaN(bestAtBudget(pts, -1)));
  assert.deepEqual(klGrid(0, 4, 4), [1, 2, 3, 4]);
  // A run whose rewards never beat the base still reaches its largest KL.
  const runs = [run('ppo', { k: 1 }, 1, [[0, 0.05], [2, 0.01], [6.4, 0.02]]), run('ppo', { k: 2 }, 2, [[0, 0.05], [3, 0.0]])];
  assert.equal(methodReach(runs, 'ppo'), 6.4);
  assert.equal(methodReach(runs, 'dpo'), 0);
});

test('seed frontiers span settings; without per-prompt rewards a seed\'s value at a budget is its best checkpoint within it', () => {
  const offsets = [0, 0.02, -0.01];
  const runs = offsets.flatMap((o, i) => [
    run('dpo', { beta: 0.5 }, i + 1, [[0, 0.05], [1, 0.5 + o]]),
    run('dpo', { beta: 0.1 }, i + 1, [[0, 0.05], [2, 0.4 + o], [3, 0.9 + o]]),
  ]);
  const fr = seedFrontiers(runs, 'dpo', BASE);
  assert.deepEqual([...fr.keys()], [1, 2, 3]);
  // Seed frontier: base (0, 0.05), (1, 0.5+o), (3, 0.9+o); (2, 0.4+o) is dominated.
  assert.deepEqual(fr.get(2)!.map((p) => [p.kl, +p.reward.toFixed(6)]), [[0, 0.05], [1, 0.52], [3, 0.92]]);
  const [at2, at05, at4] = rewardAtMatchedKl(runs, 'dpo', [2, 0.5, 4], { base: BASE });
  // At KL 2 the best within budget is the KL-1 checkpoint (0.5 + o); the KL-2 one (0.4 + o) is worse.
  assert.deepEqual(at2!.perSeed.map((p) => +p.reward.toFixed(9)), offsets.map((o) => +(0.5 + o).toFixed(9)));
  close(at2!.reward.value, 0.5 + mean(offsets), 1e-12);
  assert.ok(at2!.reward.lo <= at2!.reward.value && at2!.reward.value <= at2!.reward.hi && at2!.reward.n === 3);
  assert.equal(at2!.crossFit, false);
  close(at05!.reward.value, 0.05, 1e-12); // only the base fits a budget of 0.5
  close(at4!.reward.value, 0.9 + mean(offsets), 1e-12); // past every checkpoint: the best of all, every seed counted
  assert.equal(at4!.reward.n, 3);
  // The method frontier pools all seeds: the best seed's points win.
  assert.deepEqual(methodFrontier(runs, 'dpo', BASE).map((p) => [p.kl, +p.reward.toFixed(6), p.seed]), [[0, 0.05, -1], [1, 0.52, 2], [3, 0.92, 2]]);
});

test('cross-fitting: the checkpoint is chosen on one half of the prompts and scored on the other', () => {
  // Two checkpoints at KL 1 and 2. On even prompts (half A) the first looks better; on odd (half B) the second.
  // Point estimate = ½ [reward_B(choice on A) + reward_A(choice on B)], computed here by hand.
  const P = 8;
  const r1 = Array.from({ length: P }, (_, p) => (p % 2 === 0 ? 0.9 : 0.1)); // A mean 0.9, B mean 0.1
  const r2 = Array.from({ length: P }, (_, p) => (p % 2 === 0 ? 0.2 : 0.6)); // A mean 0.2, B mean 0.6
  const base = { ...BASE, promptRewards: Array<number>(P).fill(0), reward: 0 };
  const r = newRun('dpo', { k: 1 }, 1, DPO_CX);
  addCheckpoint(r, { ...BASE, step: 1, kl: 1, reward: 0.5, promptRewards: r1, promptKls: Array<number>(P).fill(1) });
  addCheckpoint(r, { ...BASE, step: 2, kl: 2, reward: 0.4, promptRewards: r2, promptKls: Array<number>(P).fill(2) });
  finishRun(r);
  const [at15, at3] = rewardAtMatchedKl([r], 'dpo', [1.5, 3], { base, bootstrap: { iters: 200 } });
  // Budget 1.5: only checkpoint 1 (and the base) qualify; A picks checkpoint 1 (0.9 > 0), B picks it too (0.1 > 0).
  close(at15!.reward.value, 0.5 * (0.1 + 0.9), 1e-12);
  // Budget 3: A picks checkpoint 1 (0.9), scored on B: 0.1; B picks checkpoint 2 (0.6), scored on A: 0.2.
  close(at3!.reward.value, 0.5 * (0.1 + 0.2), 1e-12);
  assert.deepEqual(at3!.perSeed[0]!.chosen, [`${r.id}@1`, `${r.id}@2`]);
  assert.ok(at3!.crossFit && at3!.prompts === P);
  // The naive "best measured checkpoint" would report 0.5: the choice's own noise is what cross-fitting removes.
  assert.ok(at3!.reward.value < 0.5);
});

test('KL error is in the interval: per-prompt KLs are resampled, so a checkpoint near the budget drops in and out', () => {
  const P = 40;
  const rng = makeRng(3);
  const base = { ...BASE, promptRewards: Array.from({ length: P }, () => rng() - 0.5), reward: 0 };
  const mk = (klSd: number) => {
    const r = newRun('dpo', { k: 1 }, 1, DPO_CX);
    const kls = Array.from({ length: P }, () => 2 + klSd * (rng() - 0.5) * 3.4);
    const rewards = base.promptRewards.map((x) => x + 0.3);
    addCheckpoint(r, { ...BASE, step: 1, kl: mean(kls), reward: mean(rewards), promptRewards: rewards, promptKls: kls });
    return [finishRun(r)];
  };
  // Budget at the checkpoint's mean KL: with KL noise it is within budget in about half the resamples.
  const noisy = mk(1), exact = mk(0);
  const kN = noisy[0]!.checkpoints[0]!.kl, kE = exact[0]!.checkpoints[0]!.kl;
  const wN = rewardAtMatchedKl(noisy, 'dpo', [kN], { base })[0]!.reward;
  const wE = rewardAtMatchedKl(exact, 'dpo', [kE], { base })[0]!.reward;
  assert.ok(wN.hi - wN.lo > 1.5 * (wE.hi - wE.lo), `KL noise widens the interval: ${JSON.stringify(wN)} vs ${JSON.stringify(wE)}`);
  assert.ok(wN.lo < 0.15, `some resamples put the checkpoint over budget: ${wN.lo}`);
});

test('compareAtKl: winner flips with the data, and is null when the methods are the same', () => {
  const mk = (method: Run['method'], shift: number) =>
    [0, 0.01, -0.01, 0.005].map((o, i) => run(method, { k: 1 }, i + 1, [[0, 0.05], [2, 0.4 + shift + o]]));
  const up = compareAtKl([...mk('dpo', 0.2), ...mk('ppo', 0)], 'dpo', 'ppo', 2, { base: BASE });
  assert.equal(up.winner, 'dpo');
  close(up.diff.value, 0.2, 1e-9);
  assert.ok(up.diff.lo > 0);
  const down = compareAtKl([...mk('dpo', 0), ...mk('ppo', 0.2)], 'dpo', 'ppo', 2, { base: BASE });
  assert.equal(down.winner, 'ppo');
  assert.ok(down.diff.hi < 0);
  const tie = compareAtKl([...mk('dpo', 0), ...mk('ppo', 0)], 'dpo', 'ppo', 2, { base: BASE });
  assert.equal(tie.winner, null);
  assert.equal(tie.diff.significant, false);
});

test('detectCollapse: entropy, distinct-n, KL explosion, non-finite values', () => {
  const cps = (over: Partial<Checkpoint>[]) => over.map((o, i) => ({ ...BASE, step: i * 10, ...o }));
  assert.deepEqual(detectCollapse(cps([{}, { kl: 2 }, { kl: 4 }]), BASE), { status: 'ok' });
  const e = detectCollapse(cps([{}, { entropy: 2 }, { entropy: 1.1 }]), BASE);
  assert.equal(e.status, 'collapsed');
  assert.equal(e.step, 20);
  assert.match(e.reason!, /entropy/);
  assert.equal(detectCollapse(cps([{}, { distinct2: 0.3 }]), BASE).status, 'collapsed');
  assert.equal(detectCollapse(cps([{}, { kl: 80 }]), BASE).status, 'diverged');
  assert.equal(detectCollapse(cps([{}, { kl: 80 }]), BASE, { klMax: 100 }).status, 'ok');
  assert.equal(detectCollapse(cps([{}, { reward: NaN }]), BASE).status, 'diverged');
});

test('stabilitySummary: pooled seed std and failure counts', () => {
  const runs = [
    ...[1, 2, 3].map((f, i) => run('ppo', { c: 'a' }, i + 1, [[0, 0.05], [1, f]])),
    ...[2, 4].map((f, i) => run('ppo', { c: 'b' }, i + 1, [[0, 0.05], [1, f]])),
    run('ppo', { c: 'b' }, 9, [[0, 0.05], [1, 0.2]], { entropy: 0.1 }), // collapsed (entropy 2.5% of base)
  ];
  runs[0]!.status = 'diverged';
  const s = stabilitySummary(runs, 'ppo', BASE);
  // Setting a: finals 1,2,3 (var 1). Setting b: 2,4,0.2 (var computed below). Pooled over both.
  const vb = std([2, 4, 0.2]) ** 2;
  close(s.seedStd, Math.sqrt((2 * 1 + 2 * vb) / 4), 1e-12);
  assert.equal(s.runs, 6);
  assert.equal(s.diverged, 1);
  assert.equal(s.collapsed, 1);
  close(s.failureRate, 2 / 6);
  assert.deepEqual(s.perSetting.map((p) => p.n), [3, 3]);
});

test('costSummary and complexitySummary', () => {
  const study = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5, dpoWall: 30, ppoWall: 80 });
  const c = costSummary(study.runs, 'ppo', study.prerequisites);
  close(c.wallSeconds.value, 80);
  close(c.generationShare, 0.6);
  close(c.tokensPerSecond, 10000 / 80);
  assert.equal(c.prerequisiteSeconds, 20);
  close(c.oneModelSeconds, 100);
  assert.equal(costSummary(study.runs, 'dpo', study.prerequisites).prerequisiteSeconds, 0);
  const x = complexitySummary(study.runs, 'ppo');
  assert.deepEqual([x.modelsInMemory, x.hyperparameters, x.lossLines, x.consistent], [4, 7, 30, true]);
});

test('costSummary: one model pays the shared base and one draw of pairs and reward model (the mean over per-seed draws, not their sum)', () => {
  const study = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5, dpoWall: 30, ppoWall: 80 });
  const cost = (wallSeconds: number) => ({ ...study.runs[0]!.cost, wallSeconds });
  const pre = [
    { name: 'pretraining the base policy', cost: cost(100), usedBy: ['dpo', 'ppo'] as Method[] },
    ...[[0, 40, 200], [1, 60, 300], [2, 50, 250]].flatMap(([draw, pairs, rm]) => [
      { name: `sampling preference pairs (seed ${draw})`, cost: cost(pairs!), usedBy: ['dpo', 'ppo'] as Method[], draw },
      { name: `training the reward model (seed ${draw})`, cost: cost(rm!), usedBy: ['ppo'] as Method[], draw },
    ]),
  ];
  const ppo = costSummary(study.runs, 'ppo', pre), dpo = costSummary(study.runs, 'dpo', pre);
  close(ppo.prerequisiteSeconds, 100 + (240 + 360 + 300) / 3);
  close(dpo.prerequisiteSeconds, 100 + (40 + 60 + 50) / 3);
  assert.deepEqual(ppo.prerequisites, ['pretraining the base policy', 'sampling preference pairs and training the reward model (mean of 3 per-seed draws)']);
  // One draw shared by every seed: its names as they are, its cost once.
  const one = costSummary(study.runs, 'ppo', pre.slice(0, 3));
  close(one.prerequisiteSeconds, 100 + 240);
  assert.deepEqual(one.prerequisites, ['pretraining the base policy', 'sampling preference pairs (seed 0)', 'training the reward model (seed 0)']);
});

test('learningCurves: mean ± sd over seeds at each step', () => {
  const runs = [0.1, 0.3, 0.5].map((f, i) => run('dpo', { beta: 0.1 }, i + 1, [[0, 0.05], [1, f]]));
  const c = learningCurves(runs, 'dpo');
  assert.equal(c.length, 2);
  close(c[1]!.mean, 0.3);
  close(c[1]!.sd, 0.2);
  close(c[1]!.lo, 0.1);
  close(c[1]!.hi, 0.5);
  assert.equal(c[1]!.n, 3);
});

test('analyzeStudy on a noiseless synthetic study: headline budget by the stated rule, best checkpoint within it', () => {
  const gainD = 0.6, gainP = 0.4;
  const study = dpoVsPpo({ dpoGain: gainD, ppoGain: gainP, noise: 0 });
  const an = analyzeStudy(study);
  // DPO's fastest setting reaches 0.6 × 10 = 6 nats, PPO's 0.8 × 10 = 8: the smaller reach, 6, is the headline.
  assert.equal(an.headlineKl, 6);
  assert.match(an.headlineRule, /smaller of the two methods' reaches/);
  assert.equal(an.grid.length, 8);
  assert.equal(an.grid.at(-1), 6);
  const truth = (g: number, kl: number) => BASE.reward + g * (1 - Math.exp(-kl / 2));
  close(an.byMethod.dpo!.headline!.reward.value, truth(gainD, 6), 1e-9);
  // Every matched value is the true reward of a checkpoint within budget, never above the curve at the budget.
  for (const p of an.byMethod.ppo!.matched) assert.ok(p.reward.value <= truth(gainP, p.kl) + 1e-12 && p.reward.value > truth(gainP, p.kl) - 0.1);
  const cmp = an.comparisons[0]!;
  assert.equal(cmp.winner, 'dpo');
  // PPO's best checkpoint within KL 6 is at 5.6 (0.8 nats a step).
  close(cmp.diff.value, truth(gainD, 6) - truth(gainP, 5.6), 1e-9);
  assert.equal(an.gridComparisons.length, 8);
  assert.ok(an.gridComparisons.every((c) => Number.isFinite(c.pHolm) && c.pHolm >= c.diff.p));
  assert.equal(an.byMethod.dpo!.stability.runs, 6);
  assert.equal(an.byMethod.ppo!.reach, 8);
  assert.equal(an.byMethod.ppo!.candidatesPerSeed, 1 + 2 * 11);
  assert.ok(an.byMethod.dpo!.improvement.improved && an.byMethod.ppo!.improvement.improved);
  // The machine-readable verdict carries the same numbers.
  const v = verdictJson(an);
  assert.deepEqual(v.headline, { kl: 6, dpo: cmp.aReward.value, ppo: cmp.bReward.value, diff: cmp.diff.value, ci: [cmp.diff.lo, cmp.diff.hi], significant: true, rule: an.headlineRule });
  assert.deepEqual(v.rewardModel!.n, 200);
  assert.deepEqual(v.base, { heldoutLoss: null, ngramLoss: null });
});

test('a method that never beats the base still has a reach and a value at every budget: the base itself', () => {
  const study = dpoVsPpo({ dpoGain: 0.5, ppoGain: -0.3 });
  const an = analyzeStudy(study);
  assert.equal(an.headlineKl, 6);
  const ppo = an.byMethod.ppo!;
  assert.ok(ppo.matched.every((p) => Math.abs(p.reward.value - BASE.reward) < 1e-12 && p.reward.n === 3), JSON.stringify(ppo.matched.map((p) => p.reward)));
  assert.equal(ppo.improvement.improved, false);
  assert.ok(an.byMethod.dpo!.improvement.improved);
  assert.equal(an.comparisons[0]!.winner, 'dpo');
});

test('analyzeStudy mid-study: a run with no checkpoint yet does not change the headline budget', () => {
  const study = dpoVsPpo({ dpoGain: 0.6, ppoGain: 0.4, noise: 0 });
  const fresh = newRun('ppo', { klCoef: 0.05 }, 4, DPO_CX);
  study.runs.push(fresh);
  const an = analyzeStudy(study);
  assert.equal(an.headlineKl, 6);
  assert.equal(an.byMethod.ppo!.headline!.reward.n, 3);
  assert.equal(an.byMethod.ppo!.stability.runs, 6); // the running run is not counted
  assert.deepEqual(an.byMethod.ppo!.seeds, [1, 2, 3, 4]);
});

test('degeneration: n-gram perplexity doubled or EOS rate halved, against the base', () => {
  assert.equal(degeneration({ fluency: 4.5, eosRate: 0.8 }, { fluency: 4.0, eosRate: 0.9 }), null);
  assert.match(degeneration({ fluency: 4.0 + Math.LN2 + 0.01 }, { fluency: 4.0 })!, /n-gram perplexity/);
  assert.match(degeneration({ eosRate: 0.2 }, { eosRate: 0.9 })!, /EOS rate/);
  assert.equal(degeneration({ fluency: NaN, eosRate: NaN }, { fluency: 4, eosRate: 0.9 }), null);
});

test('analyzeStudy with seed noise: the CI brackets the truth and widens with noise', () => {
  const truth = BASE.reward + 0.5 * (1 - Math.exp(-3));
  const widths = [0.01, 0.05].map((noise) => {
    const an = analyzeStudy(syntheticStudy([
      { method: 'dpo', settings: [{ setting: { beta: 0.1 }, klPerStep: 0.6 }], gain: 0.5, seedNoise: noise, wallSeconds: 1, generationShare: 0, complexity: DPO_CX },
    ], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 10, 3), { compare: [] });
    const m = an.byMethod.dpo!.matched.at(-1)!;
    assert.equal(m.kl, 6);
    // The truth is the generating curve plus the mean of the 10 drawn seed offsets' expectation (0).
    assert.ok(m.reward.lo <= truth && truth <= m.reward.hi, `truth ${truth} in ${JSON.stringify(m.reward)}`);
    return m.reward.hi - m.reward.lo;
  });
  assert.ok(widths[1]! > 2 * widths[0]!, `widths ${widths}`);
});

test('cost split: parts that add up to more than the wall time are flagged, not shown as shares over 100%', () => {
  const study = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5 });
  assert.equal(costSummary(study.runs, 'dpo').splitConsistent, true);
  // As the offline trainer reported it: backward time measured over a loop that also ran the evaluations.
  for (const r of study.runs) if (r.method === 'dpo') r.cost.backwardSeconds = 1.1 * r.cost.wallSeconds;
  const c = costSummary(study.runs, 'dpo');
  assert.equal(c.splitConsistent, false);
  assert.ok(c.backwardShare > 1); // the raw share is kept for the record; the report prints n/a
});

test('degenerated at the matched KL: the chosen checkpoints\' n-gram fluency collapsed against the base', () => {
  const study = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5 });
  study.base = { ...study.base, fluency: 4, eosRate: 0.9 };
  for (const r of study.runs) for (const c of r.checkpoints) Object.assign(c, { fluency: r.method === 'dpo' ? 4 + 0.2 * c.kl : 4.1, eosRate: 0.85 });
  const an = analyzeStudy(study);
  // DPO at KL 6: fluency 4 + 1.2 nats > base + ln 2 → degenerated; PPO stays within.
  assert.match(an.byMethod.dpo!.degenerated!, /n-gram perplexity/);
  assert.equal(an.byMethod.ppo!.degenerated, null);
  // Final checkpoints: β 0.1 ends at KL 6 (+1.2 nats, degenerated), β 0.5 at KL 3 (+0.6 < ln 2, not): 3 of 6 runs.
  assert.equal(an.byMethod.dpo!.stability.degenerated, 3);
  close(an.byMethod.ppo!.headline!.metrics.eosRate, 0.85);
});

test('degeneration by EOS needs at least 5 EOS-ended base samples: 1 of 8 is not evidence of a halving', () => {
  assert.equal(degeneration({ eosRate: 0 }, { eosRate: 0.125, n: 8 }), null);
  assert.match(degeneration({ eosRate: 0 }, { eosRate: 0.125, n: 64 })!, /EOS rate/);
});

test('improvement over the base: budgets where every seed kept the base leave the Holm family instead of inflating it', () => {
  // PPO's first checkpoint is at KL 3, so of its 8 budgets in (0, 4] the five below 3 can only pick the base.
  const runs = [1, 2, 3].flatMap((seed) => [
    run('ppo', { klCoef: 0.1 }, seed, [[0, BASE.reward], [3, BASE.reward + 0.1 + 0.02 * seed], [4, BASE.reward + 0.12 + 0.03 * seed]]),
    run('dpo', { beta: 0.1 }, seed, [[0, BASE.reward], [1, BASE.reward + 0.2 + 0.01 * seed], [4, BASE.reward + 0.3 + 0.01 * seed]]),
  ]);
  const an = analyzeStudy({ runs, base: BASE } as Parameters<typeof analyzeStudy>[0]);
  const im = an.byMethod.ppo!.improvement;
  assert.deepEqual(im.kls, [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4]);
  assert.deepEqual(im.pHolm.map(Number.isFinite), [false, false, false, false, false, true, true, true]);
  assert.ok(im.gains.slice(0, 5).every((g) => g.value === 0 && g.lo === 0 && g.hi === 0));
  // Holm over the 3 testable budgets: the smallest p is multiplied by 3, not by 8.
  const ps = im.gains.slice(5).map((g) => g.p);
  close(Math.min(...im.pHolm.slice(5)), Math.min(1, 3 * Math.min(...ps)), 1e-12);
  assert.equal(im.tested, true);
});

test('the reward model\'s cost: PPO − PPO-GT at the smaller of their reaches, in the analysis and in analysis.json', () => {
  const ppo = (method: 'ppo' | 'ppo-gt', gain: number, klPerStep: number) =>
    ({ method, settings: [{ setting: { klCoef: 0.05 }, klPerStep }], gain, seedNoise: 0, wallSeconds: 60, generationShare: 0.5, complexity: PPO_CX });
  const an = analyzeStudy(syntheticStudy([ppo('ppo', 0.3, 0.5), ppo('ppo-gt', 0.5, 0.8)]));
  const c = an.rewardModelCost!;
  assert.equal(c.kl, 5); // PPO reaches 0.5 × 10, PPO-GT 8: the smaller
  const truth = (g: number, kl: number) => BASE.reward + g * (1 - Math.exp(-kl / 2));
  // PPO's best within KL 5 is its last checkpoint (KL 5); PPO-GT's is at 4.8 (0.8 a step).
  close(c.diff.value, truth(0.3, 5) - truth(0.5, 4.8), 1e-9);
  assert.deepEqual(verdictJson(an).rewardModelCost, { kl: 5, ppo: c.aReward.value, ppoGt: c.bReward.value, diff: c.diff.value, ci: [c.diff.lo, c.diff.hi] });
  assert.equal(analyzeStudy(dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.3 })).rewardModelCost, null, 'no PPO-GT runs: no cost');
});
