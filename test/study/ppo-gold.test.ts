// PPO on the study's gold-reward wiring (issue 8 item 3): a word-level policy (the study's tokenizer builder, EOS
// as a token it may emit) trained with the registry's `word-sentiment` reward (VADER of the detokenized completion,
// PPO-GT's reward) and a fixed KL coefficient, on a toy vocabulary where the optimum is known: completions made
// only of the positive words score about 0.9, a uniform policy about 0.3. PPO must climb towards it.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, tree } from '../../src/engine/index.js';
import { Tokenizer, wordLevelTokenizerJson } from '../../src/formats/tokenizer.js';
import { LM } from '../../src/model/lm.js';
import { rewardFunction } from '../../src/rewards/registry.js';
import { vaderCompound } from '../../src/rewards/vader.js';
import { readMetrics } from '../../src/train/loop.js';
import { trainPpo } from '../../src/train/trainers/ppo.js';
import { tinyModel } from '../helpers/model.js';

before(async () => {
  await initEngine('wasm');
});

const WORDS = ['the', 'we', 'nation', 'and', 'of', 'great', 'good', 'war', 'people', 'law', 'must', 'will'];
const SPECIALS = ['<unk>', '<bos>', '<eos>', '<pad>'];
const BOS = 1, EOS = 2;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const variance = (xs: number[]) => xs.reduce((a, x) => a + (x - mean(xs)) ** 2, 0) / (xs.length - 1);

function policy(seed: number): LM {
  const tok = Tokenizer.fromJSON(wordLevelTokenizerJson(WORDS, SPECIALS), { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>', unk_token: '<unk>' });
  const { cfg, params } = tinyModel('llama', seed, { vocabSize: 16, maxPositions: 16, bosTokenId: BOS, eosTokenId: EOS, padTokenId: 3 });
  return new LM(cfg, params, tok, 'toy-words');
}

test('word-sentiment reads a completion as the study does: positive words score high, EOS and padding do not count', async () => {
  const lm = policy(1);
  const reward = rewardFunction('word-sentiment', { tokenizer: lm.tokenizer });
  const id = (w: string) => SPECIALS.length + WORDS.indexOf(w);
  const completions = [[id('great'), id('good'), EOS], [id('war'), id('war')], [id('the'), id('nation'), EOS]];
  const got = await reward({ prompts: completions.map(() => [BOS, id('we')]), completions, texts: completions.map(() => '') });
  assert.deepEqual(got.map((x) => x.toFixed(4)), ['great good', 'war war', 'the nation'].map((t) => vaderCompound(t).toFixed(4)));
  assert.ok(got[0]! > 0.5 && got[1]! < 0 && got[2] === 0, `signs: ${got.join(', ')}`);
  lm.dispose();
});

test('PPO with a fixed KL coefficient raises the gold word-sentiment reward on a toy vocabulary (PPO-GT wiring)', async () => {
  const lm = policy(5);
  const reward = rewardFunction('word-sentiment', { tokenizer: lm.tokenizer });
  const w = (x: string) => SPECIALS.length + WORDS.indexOf(x);
  const prompts = [[BOS, w('we')], [BOS, w('the')], [BOS, w('nation')], [BOS, w('people'), w('must')]];
  const runDir = mkdtempSync(join(tmpdir(), 'alignlab-ppo-gold-'));
  const ITS = 24, K = 5;
  const r = await trainPpo({
    runDir, store: false, policy: lm, reward, prompts, iterations: ITS,
    batchSize: 32, ppoEpochs: 2, numMiniBatches: 2, maxNewTokens: 5, temperature: 1,
    learningRate: 3e-3, schedule: { kind: 'constant' }, klCoef: 0.05, seed: 11,
  });
  tree.dispose([r.policy, r.value.trunk, r.value.head] as never);
  lm.dispose();
  // One row per update; the rollout's objective/* repeat on each of its 2 epochs × 2 minibatches = 4 rows.
  const scores = readMetrics(runDir).filter((m) => m.step! % 4 === 0).map((m) => m['objective/scores']!);
  assert.equal(scores.length, ITS);
  const first = scores.slice(0, K), last = scores.slice(-K);
  const se = Math.sqrt(variance(first) / K + variance(last) / K);
  assert.ok(mean(last) - mean(first) > Math.max(0.15, 3 * se), `gold reward ${mean(first).toFixed(3)} → ${mean(last).toFixed(3)} (3·SE ${(3 * se).toFixed(3)})`);
});
