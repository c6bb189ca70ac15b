// A model directory saved by us and loaded back gives identical logits and generations; bad directories
// fail with errors that name the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine } from '../../src/engine/index.js';
import { LM } from '../../src/model/lm.js';
import { byteLevelTokenizerJson, Tokenizer } from '../../src/formats/tokenizer.js';
import { ALL_ARCHS, tinyModel } from '../helpers/model.js';
import { tinyConfig } from '../../src/formats/config.js';
import { initHostParams } from '../../src/model/params.js';
import { toDevice } from '../../src/model/weights.js';

await initEngine('wasm');
const tok = () => Tokenizer.fromJSON(byteLevelTokenizerJson(), { eos_token: '<|endoftext|>' });

for (const arch of ALL_ARCHS) {
  test(`${arch}: save → load gives identical logits and the same greedy text`, async () => {
    const { cfg, params } = tinyModel(arch, 3, { vocabSize: 257, eosTokenId: 256 });
    const a = new LM(cfg, params, tok(), 'm');
    const dir = mkdtempSync(join(tmpdir(), 'alignlab-lm-'));
    await a.save(dir);
    const b = await LM.load(dir);
    const ids = [72, 101, 108, 108, 111, 44, 32, 119];
    const [la, lb] = [await a.logits(ids), await b.logits(ids)];
    assert.equal(la.length, ids.length * 257);
    assert.deepEqual(lb, la);
    const [ga] = await a.generate(['Hi'], { maxNewTokens: 8, temperature: 0 });
    const [gb] = await b.generate(['Hi'], { maxNewTokens: 8, temperature: 0 });
    assert.deepEqual(gb!.tokenIds, ga!.tokenIds);
    a.dispose();
    b.dispose();
  });
}

test('sampling is seeded, respects max new tokens, and returns per-token log-probs', async () => {
  const { cfg, params } = tinyModel('llama', 5, { vocabSize: 257, eosTokenId: 256 });
  const lm = new LM(cfg, params, tok(), 'm');
  const opts = { maxNewTokens: 12, temperature: 0.9, topK: 50, topP: 0.95, seed: 7 };
  const [x, y] = await Promise.all([lm.generate(['ab', 'c'], opts), lm.generate(['ab', 'c'], opts)]);
  assert.deepEqual(x.map((g) => g.tokenIds), y.map((g) => g.tokenIds));
  for (const g of x) {
    assert.ok(g.tokenIds.length <= 12);
    assert.equal(g.logprobs.length, g.tokenIds.length);
    assert.ok(g.logprobs.every((l) => l <= 0 && Number.isFinite(l)));
  }
  const other = await lm.generate(['ab', 'c'], { ...opts, seed: 8 });
  assert.notDeepEqual(other.map((g) => g.tokenIds), x.map((g) => g.tokenIds), 'a different seed draws differently');
  lm.dispose();
});

test('a stop string (two letters taken from the greedy output) cuts the text right before it', async () => {
  // A random byte-level model writes arbitrary bytes (often U+FFFD); zeroing every LM-head column but a–z makes its
  // greedy output lowercase letters, so the stop string is a real one. The head is [V, C]: row v scores token v.
  const cfg = tinyConfig('llama', { vocabSize: 257, eosTokenId: 256 });
  const host = initHostParams(cfg, 5, 0.2);
  const head = host.lmHead!, V = cfg.vocabSize;
  for (let v = 0; v < V; v++) if (v < 97 || v > 122) head.data.fill(0, v * cfg.hiddenSize, (v + 1) * cfg.hiddenSize);
  const lm = new LM(cfg, toDevice(host), tok(), 'm');
  const [greedy] = await lm.generate(['ab'], { maxNewTokens: 12, temperature: 0 });
  const text = greedy!.text;
  assert.match(text, /^[a-z]{12}$/);
  // The first two-letter window that does not occur earlier: the stop must cut exactly there.
  const at = [...text].findIndex((_, i) => i > 0 && i + 2 <= text.length && !text.slice(0, i + 1).includes(text.slice(i, i + 2)));
  assert.ok(at > 0, `no usable stop string in ${JSON.stringify(text)}`);
  const stop = text.slice(at, at + 2);
  const [cut] = await lm.generate(['ab'], { maxNewTokens: 12, temperature: 0, stop: [stop] });
  assert.equal(cut!.finishReason, 'stop');
  assert.equal(cut!.text, text.slice(0, at), `stop ${JSON.stringify(stop)} in ${JSON.stringify(text)}`);
  lm.dispose();
});

test('a directory with a broken config.json is refused, naming the file and field', async () => {
  const { cfg, params } = tinyModel('llama', 1, { vocabSize: 257 });
  const lm = new LM(cfg, params, tok(), 'm');
  const dir = mkdtempSync(join(tmpdir(), 'alignlab-lm-bad-'));
  await lm.save(dir);
  lm.dispose();
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf-8'));
  delete c.num_attention_heads;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  await assert.rejects(LM.load(dir), /config\.json.*num_attention_heads/);
});
