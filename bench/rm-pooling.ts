// Reward-model held-out pairwise accuracy: pooling ('last' | 'mean') × training-pair subset × lr × steps, on a
// preference file of the study's format (one JSON per line: prompt_index, prompt_ids, chosen_ids, rejected_ids,
// chosen_reward, rejected_reward). Trunk = the shipped base (assets/base) + initHead(seed 99); split by prompt as the
// study splits (splitPairsByPrompt 0.15 / 0.1); the subset is a seeded shuffle of the training pairs; accuracy on
// up to 2,000 held-out pairs (seeded) and 500 training pairs. One line per spec, also appended to --out.
//
//   npx tsx bench/rm-pooling.ts PREFS.jsonl OUT.txt mean:1000:1e-3:200 last:4000:1e-3:300 ...   # pool:pairs:lr:steps
import { readFileSync, appendFileSync } from 'node:fs';
import { initEngine, keep, np, Rng } from '../src/engine/index.js';
import { LM } from '../src/model/lm.js';
import { initHead, type Pooling } from '../src/model/heads.js';
import { RewardModel } from '../src/rewards/model.js';
import { trainRewardModel } from '../src/train/trainers/offline.js';
import { splitPairsByPrompt } from '../src/study/runner.js';
import type { PairExample } from '../src/data/batching.js';

const [prefsFile, outFile, ...specs] = process.argv.slice(2);
if (!prefsFile || !outFile || specs.length === 0) throw new Error('usage: bench/rm-pooling.ts PREFS.jsonl OUT.txt pool:pairs:lr:steps ...');
await initEngine('wasm');
const base = await LM.load('assets/base');
type Row = { prompt_index: number; prompt_ids: number[]; chosen_ids: number[]; rejected_ids: number[]; chosen_reward: number; rejected_reward: number };
const rows = readFileSync(prefsFile, 'utf-8').trim().split('\n').map((l) => JSON.parse(l) as Row)
  .map((r) => ({ promptIndex: r.prompt_index, prompt: r.prompt_ids, chosen: r.chosen_ids, rejected: r.rejected_ids, chosenReward: r.chosen_reward, rejectedReward: r.rejected_reward }));
const pairs = splitPairsByPrompt(rows, 0.15, 0.1);
const shuffled = new Rng(1).shuffle(pairs.train.slice());
const heldOut = new Rng(2).shuffle(pairs.heldOut.slice()).slice(0, 2000);
console.log(`${pairs.train.length} train, ${pairs.valid.length} valid, ${pairs.heldOut.length} held-out pairs (scoring ${heldOut.length})`);

/** Fraction of pairs whose chosen completion scores above the rejected one (prompt lengths passed: 'mean' needs them). */
async function accuracy(rm: RewardModel, ps: PairExample[]): Promise<number> {
  const s = await rm.score(ps.flatMap((p) => [[...p.prompt, ...p.chosen], [...p.prompt, ...p.rejected]]), ps.flatMap((p) => [p.prompt.length, p.prompt.length]));
  let right = 0;
  for (let i = 0; i < ps.length; i++) if (s[2 * i]! > s[2 * i + 1]!) right++;
  return right / ps.length;
}

for (const spec of specs) {
  const [pool, n, lr, steps] = spec.split(':');
  const pooling = pool as Pooling, N = Number(n), LR = Number(lr), S = Number(steps);
  const train = shuffled.slice(0, N);
  const head = initHead(base.cfg, 99);
  const model = { trunk: keep(base.params), head: { w: np.array(head.w.data, { shape: head.w.shape }), b: np.array(head.b.data, { shape: head.b.shape }) } };
  const t0 = performance.now();
  const { params } = await trainRewardModel({
    cfg: base.cfg, model, train, batchSize: 32, T: 24, padId: 3, steps: S, runDir: `${outFile}.runs/${spec.replaceAll(':', '-')}-${Date.now()}`,
    seed: 0, optimizer: { lr: LR }, kind: 'rm', progress: false, store: false, pooling,
  });
  const trainS = (performance.now() - t0) / 1000;
  const rm = new RewardModel(base.cfg, params, undefined, { batchSize: 32, pooling });
  const t1 = performance.now();
  const ho = await accuracy(rm, heldOut), tr = await accuracy(rm, train.slice(0, 500));
  const line = `pooling=${pooling} pairs=${train.length} lr=${LR} steps=${S} epochs=${((S * 32) / train.length).toFixed(1)} heldout_acc=${ho.toFixed(3)} train_acc=${tr.toFixed(3)} train_s=${trainS.toFixed(0)} s_per_step=${(trainS / S).toFixed(2)} score_s=${((performance.now() - t1) / 1000).toFixed(0)}`;
  console.log(line);
  appendFileSync(outFile, line + '\n');
  rm.dispose();
}
