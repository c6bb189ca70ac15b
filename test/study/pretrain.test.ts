// `alignlab study pretrain`: a base written with PROVENANCE.json, continued by --init with a new schedule (steps,
// tokens and time counted over both stages, the first stage's provenance kept), and an --init whose model or
// vocabulary differs refused in one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveStudyConfig } from '../../src/study/config.js';
import { pretrainBase, readProvenance } from '../../src/study/pretrain.js';

const tmp = mkdtempSync(join(tmpdir(), 'alignlab-pretrain-'));
const cache = join(tmp, 'cache');
const config = (model: Record<string, number>) => {
  const f = join(tmp, `c-${model.hidden}.yaml`);
  writeFileSync(f, JSON.stringify({ corpus: { vocabSize: 300 }, model: { layers: 1, heads: 2, kvHeads: 1, intermediate: 32, context: 16, ...model } }));
  return resolveStudyConfig({ file: f });
};
const quiet = () => {};

test('study pretrain --init continues a base: provenance counts both stages; a mismatched base is refused', { timeout: 10 * 60_000 }, async () => {
  const cfg = config({ hidden: 16 });
  const first = await pretrainBase({ config: cfg, out: join(tmp, 'a'), cacheDir: cache, steps: 3, batchSize: 2, lr: 1e-3, warmup: 1, log: quiet });
  assert.equal(first.training.steps, 3);
  assert.equal(first.init, undefined);
  assert.ok(first.heldOut.loss > 0 && first.ngram.heldOutLoss > 0);
  const second = await pretrainBase({ config: cfg, out: join(tmp, 'b'), cacheDir: cache, steps: 2, batchSize: 2, lr: 1e-3, warmup: 1, init: join(tmp, 'a'), log: quiet });
  assert.equal(second.training.steps, 5);
  assert.equal(second.training.tokensSeen, first.training.tokensSeen + 2 * 2 * 16);
  assert.ok(second.training.wallSeconds > first.training.wallSeconds);
  assert.equal(second.init!.provenance.training.steps, 3);
  assert.deepEqual(readProvenance(join(tmp, 'b'))!.training, second.training);
  await assert.rejects(
    pretrainBase({ config: config({ hidden: 32 }), out: join(tmp, 'c'), cacheDir: cache, steps: 1, batchSize: 2, lr: 1e-3, warmup: 1, init: join(tmp, 'a'), log: quiet }),
    /config\.json: field hiddenSize: --init must match this study's model and corpus config/,
  );
});
