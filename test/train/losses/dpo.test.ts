import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jit, grad, valueAndGrad, type Arr } from '../../../src/engine/index.js';
import { dpoLoss, DPO_LOSS_TYPES, type DpoLossType, type DpoOptions } from '../../../src/train/losses/dpo.js';
import { simpoLoss } from '../../../src/train/losses/simpo.js';
import { ready, read, scalar, close, f32, round32, logSigmoid64, mean64 } from './helpers.js';

await ready;
// Summed sequence log-probs of 4 pairs, and completion lengths.
const pc = round32([-12.0, -20.5, -7.25, -30.0]), pr = round32([-13.5, -18.0, -9.0, -29.0]);
const rc = round32([-12.5, -19.0, -8.0, -31.0]), rr = round32([-13.0, -19.5, -8.5, -28.0]);
const lc = [4, 10, 3, 12], lr = [5, 8, 4, 11];
const inputs = (x: { pc?: number[]; pr?: number[] } = {}) => ({
  policyChosen: f32(x.pc ?? pc), policyRejected: f32(x.pr ?? pr), refChosen: f32(rc), refRejected: f32(rr),
  chosenLengths: f32(lc), rejectedLengths: f32(lr),
});

/** TRL's dpo_loss, per pair, in float64, straight from the formulas. */
function reference(type: DpoLossType, beta: number, eps: number, norm: boolean): number {
  const d = (x: number[], i: number, l: number[]) => (norm ? x[i]! / l[i]! : x[i]!);
  return mean64(pc.map((_, i) => {
    const h = d(pc, i, lc) - d(rc, i, lc) - (d(pr, i, lr) - d(rr, i, lr));
    const z = beta * h;
    if (type === 'sigmoid') return -(1 - eps) * logSigmoid64(z) - eps * logSigmoid64(-z);
    if (type === 'robust') return (-(1 - eps) * logSigmoid64(z) + eps * logSigmoid64(-z)) / (1 - 2 * eps);
    if (type === 'hinge') return Math.max(0, 1 - z);
    return (h - 1 / (2 * beta)) ** 2; // ipo
  }));
}

async function lossOf(opts: DpoOptions): Promise<number> {
  const { loss, metrics } = dpoLoss(inputs(), opts);
  for (const m of Object.values(metrics)) m.dispose();
  return scalar(loss);
}

test('each DPO loss type equals its formula (β 0.1 and 0.5, label smoothing 0 and 0.1)', async () => {
  for (const lossType of DPO_LOSS_TYPES) {
    for (const beta of [0.1, 0.5]) {
      for (const eps of lossType === 'sigmoid' || lossType === 'robust' ? [0, 0.1] : [0]) {
        close(await lossOf({ lossType, beta, labelSmoothing: eps }), reference(lossType, beta, eps, lossType === 'ipo'), 5e-5, `${lossType} β=${beta} ε=${eps}`);
      }
    }
  }
});

test('IPO: TRL length-averaged by default, the paper’s sums with lengthNormalize false; lengths required', async () => {
  close(await lossOf({ lossType: 'ipo', beta: 0.1 }), reference('ipo', 0.1, 0, true), 5e-5, 'averaged');
  close(await lossOf({ lossType: 'ipo', beta: 0.1, lengthNormalize: false }), reference('ipo', 0.1, 0, false), 5e-5, 'summed');
  assert.throws(() => dpoLoss({ policyChosen: f32(pc), policyRejected: f32(pr), refChosen: f32(rc), refRejected: f32(rr) }, { lossType: 'ipo' }), /needs chosenLengths and rejectedLengths/);
  assert.throws(() => dpoLoss(inputs(), { labelSmoothing: 0.5 }), /labelSmoothing must be in \[0, 0.5\)/);
});

test('DPO metrics: TRL names and values', async () => {
  const beta = 0.2;
  const { loss, metrics } = dpoLoss(inputs(), { beta });
  loss.dispose();
  const cr = pc.map((x, i) => beta * (x - rc[i]!)), rj = pr.map((x, i) => beta * (x - rr[i]!));
  close(await scalar(metrics['rewards/chosen']), mean64(cr), 1e-5, 'rewards/chosen');
  close(await scalar(metrics['rewards/rejected']), mean64(rj), 1e-5, 'rewards/rejected');
  close(await scalar(metrics['rewards/margins']), mean64(cr.map((x, i) => x - rj[i]!)), 1e-5, 'rewards/margins');
  close(await scalar(metrics['rewards/accuracies']), mean64(cr.map((x, i) => (x > rj[i]! ? 1 : 0))), 0, 'rewards/accuracies');
  close(await scalar(metrics['logps/chosen']), mean64(pc), 1e-6, 'logps/chosen');
  close(await scalar(metrics['logps/rejected']), mean64(pr), 1e-6, 'logps/rejected');
});

test('a gradient step on free log-probs raises every pair’s chosen-vs-rejected margin, for every loss type', async () => {
  for (const lossType of DPO_LOSS_TYPES) {
    const f = (a: Arr, b: Arr) => dpoLoss({ ...inputs(), policyChosen: a, policyRejected: b }, { lossType, beta: 0.1, lengthNormalize: false }).loss;
    const [ga, gb] = await Promise.all(grad(f, { argnums: [0, 1] })(f32(pc), f32(pr)).map(read));
    const lr = 1.0;
    const pc2 = pc.map((x, i) => x - lr * ga[i]!), pr2 = pr.map((x, i) => x - lr * gb[i]!);
    for (let i = 0; i < pc.length; i++) {
      const before = pc[i]! - pr[i]!, after = pc2[i]! - pr2[i]!;
      assert.ok(after > before, `${lossType} pair ${i}: margin ${before} → ${after}`);
      assert.ok(ga[i]! < 0 && gb[i]! > 0, `${lossType} pair ${i}: chosen grad ${ga[i]} rejected grad ${gb[i]}`);
    }
    close(await lossOf({ lossType, beta: 0.1, lengthNormalize: false }), reference(lossType, 0.1, 0, false), 5e-5, lossType);
    const l2 = dpoLoss({ ...inputs({ pc: round32(pc2), pr: round32(pr2) }) }, { lossType, beta: 0.1, lengthNormalize: false });
    for (const m of Object.values(l2.metrics)) m.dispose();
    assert.ok((await scalar(l2.loss)) < reference(lossType, 0.1, 0, false), `${lossType}: loss went down`);
  }
});

test('SimPO equals −log σ(β/|y_c| log π_c − β/|y_r| log π_r − γ), with cDPO smoothing', async () => {
  for (const [beta, gamma, eps] of [[2, 1, 0], [2.5, 1.4, 0.1]] as const) {
    const want = mean64(pc.map((_, i) => {
      const z = (beta * pc[i]!) / lc[i]! - (beta * pr[i]!) / lr[i]! - gamma;
      return -(1 - eps) * logSigmoid64(z) - eps * logSigmoid64(-z);
    }));
    const { loss, metrics } = simpoLoss({ chosenLogps: f32(pc), rejectedLogps: f32(pr), chosenLengths: f32(lc), rejectedLengths: f32(lr) }, { beta, gamma, labelSmoothing: eps });
    close(await scalar(loss), want, 5e-5, `simpo β=${beta} γ=${gamma}`);
    close(await scalar(metrics['rewards/chosen']), mean64(pc.map((x, i) => (beta * x) / lc[i]!)), 1e-5, 'rewards/chosen');
    close(await scalar(metrics['logps/rejected']), mean64(pr.map((x, i) => x / lr[i]!)), 1e-5, 'logps/rejected (average)');
    for (const k of ['rewards/rejected', 'rewards/margins', 'rewards/accuracies', 'logps/chosen'] as const) metrics[k].dispose();
  }
});

test('jit(valueAndGrad) with metrics as aux: DPO (sigmoid, ipo) and SimPO match eager', async () => {
  for (const lossType of ['sigmoid', 'ipo'] as const) {
    const f = (a: Arr, b: Arr, r1: Arr, r2: Arr, n1: Arr, n2: Arr) => {
      const { loss, metrics } = dpoLoss({ policyChosen: a, policyRejected: b, refChosen: r1, refRejected: r2, chosenLengths: n1, rejectedLengths: n2 }, { lossType });
      return [loss, metrics] as [Arr, typeof metrics];
    };
    const step = jit((...xs: Arr[]) => valueAndGrad(f, { hasAux: true, argnums: [0, 1] })(...(xs as [Arr, Arr, Arr, Arr, Arr, Arr])));
    const args = () => [f32(pc), f32(pr), f32(rc), f32(rr), f32(lc), f32(lr)] as const;
    const [[v, aux], [ga, gb]] = step(...args());
    const [[ve, auxe], [gae, gbe]] = valueAndGrad(f, { hasAux: true, argnums: [0, 1] })(...args());
    close(await scalar(v), await scalar(ve), 1e-6, `${lossType} value`);
    close(await read(ga), await read(gae), 1e-6, `${lossType} grad chosen`);
    close(await read(gb), await read(gbe), 1e-6, `${lossType} grad rejected`);
    close(await scalar(aux['rewards/margins']), await scalar(auxe['rewards/margins']), 1e-6, 'aux');
    for (const m of [...Object.values(aux), ...Object.values(auxe)]) if (m.refCount > 0) m.dispose();
    step.dispose();
  }
  const g = (a: Arr, b: Arr, n1: Arr, n2: Arr) => simpoLoss({ chosenLogps: a, rejectedLogps: b, chosenLengths: n1, rejectedLengths: n2 }).loss;
  const sstep = jit((a: Arr, b: Arr, n1: Arr, n2: Arr) => valueAndGrad(g)(a, b, n1, n2));
  const [sv, sg] = sstep(f32(pc), f32(pr), f32(lc), f32(lr));
  const [sve, sge] = valueAndGrad(g)(f32(pc), f32(pr), f32(lc), f32(lr));
  close(await scalar(sv), await scalar(sve), 1e-6, 'simpo value');
  close(await read(sg), await read(sge), 1e-6, 'simpo grad');
  sstep.dispose();
});
