import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { hfTensorsFromParams, loadHFDir, saveHFDir } from '../../src/formats/hf.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors } from '../../src/formats/safetensors.js';
import { byteLevelTokenizerJson } from '../../src/formats/tokenizer.js';
import { ARCHS, tinyConfig, type ModelConfig } from '../../src/formats/config.js';
import { leavesWithPaths, type HostParams, type HostTensor } from '../../src/engine/tree.js';
import { randomParams, tmp } from './helpers.js';

const tokenizerJson = byteLevelTokenizerJson();

function assertSameParams(a: HostParams, b: HostParams): void {
  const la = leavesWithPaths(a), lb = new Map(leavesWithPaths(b));
  assert.equal(la.length, lb.size);
  for (const [p, x] of la) {
    const y = lb.get(p);
    assert.ok(y, `leaf ${p} missing after load`);
    assert.deepEqual(y.shape, x.shape, p);
    assert.ok(Buffer.from(x.data.buffer, x.data.byteOffset, x.data.byteLength).equals(Buffer.from(y.data.buffer, y.data.byteOffset, y.data.byteLength)), `leaf ${p} differs`);
  }
}

/** Element [i, j] of a 2-D tensor. */
const at = (t: HostTensor, i: number, j: number) => t.data[i * t.shape[1] + j];

function variants(): [string, ModelConfig][] {
  return [
    ...ARCHS.map((a) => [a, tinyConfig(a, { vocabSize: 257 })] as [string, ModelConfig]),
    ['llama-gqa-untied', tinyConfig('llama', { vocabSize: 257, numKvHeads: 2, tieEmbeddings: false })],
    ['llama-tied', tinyConfig('llama', { vocabSize: 257, tieEmbeddings: true })],
    ['gpt2-untied', tinyConfig('gpt2', { vocabSize: 257, tieEmbeddings: false })],
  ];
}

// The config.json each variant above must produce, written out by hand with Hugging Face transformers' own keys
// (GPT2Config, LlamaConfig, MistralConfig, Qwen2Config, MixtralConfig) — not computed by our writer.
const ids = { bos_token_id: null, eos_token_id: null, pad_token_id: null };
const GPT2_HF = {
  architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', vocab_size: 257, n_embd: 32, n_layer: 2, n_head: 4, n_inner: 128,
  n_positions: 64, n_ctx: 64, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new', resid_pdrop: 0, embd_pdrop: 0,
  attn_pdrop: 0, tie_word_embeddings: true, torch_dtype: 'float32', ...ids,
};
const LLAMA_HF = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 257, hidden_size: 32, num_hidden_layers: 2,
  num_attention_heads: 4, num_key_value_heads: 4, head_dim: 8, intermediate_size: 72, max_position_embeddings: 64,
  rms_norm_eps: 1e-6, rope_theta: 10000, hidden_act: 'silu', attention_dropout: 0, tie_word_embeddings: false,
  torch_dtype: 'float32', ...ids,
};
const EXPECTED_HF_CONFIG: Record<string, Record<string, unknown>> = {
  gpt2: GPT2_HF,
  llama: LLAMA_HF,
  mistral: { ...LLAMA_HF, architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 4 },
  qwen2: { ...LLAMA_HF, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', use_sliding_window: false, sliding_window: 64 },
  mixtral: {
    ...LLAMA_HF, architectures: ['MixtralForCausalLM'], model_type: 'mixtral', sliding_window: null,
    num_local_experts: 4, num_experts_per_tok: 2, router_aux_loss_coef: 0.02,
  },
  'llama-gqa-untied': { ...LLAMA_HF, num_key_value_heads: 2 },
  'llama-tied': { ...LLAMA_HF, tie_word_embeddings: true },
  'gpt2-untied': { ...GPT2_HF, tie_word_embeddings: false },
};

test('save -> load gives identical params and config for every architecture', async () => {
  for (const [label, cfg] of variants()) {
    const dir = tmp(`hf-${label}`);
    const params = randomParams(cfg, 3);
    await saveHFDir(dir, { config: cfg, params, tokenizerJson, tokenizerConfig: { eos_token: '<|endoftext|>' }, generationConfig: { max_new_tokens: 5 } });
    const got = await loadHFDir(dir);
    assert.deepEqual(got.config, cfg, label);
    assertSameParams(params, got.params);
    assert.deepEqual(got.unusedTensors, []);
    assert.equal(got.tokenizer?.eosId, 256);
    assert.deepEqual(got.generationConfig, { max_new_tokens: 5 });
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf-8')), EXPECTED_HF_CONFIG[label], `${label}: config.json`);
    // transformers only opens safetensors whose metadata says format "pt".
    assert.deepEqual(readSafetensorsHeader(join(dir, 'model.safetensors')).metadata, { format: 'pt' });
  }
});

test('HF tensor names and layouts: Linear weights are [out, in], GPT-2 Conv1D stays [in, out], q/k/v split by heads', () => {
  // llama with GQA: H=4, K=2, D=8, C=32
  const cfg = tinyConfig('llama', { numKvHeads: 2, tieEmbeddings: false });
  const p = randomParams(cfg, 5);
  const t = hfTensorsFromParams(cfg, p);
  const { hiddenSize: C, headDim: D, numHeads: H, numKvHeads: K, intermediateSize: I } = cfg;
  const q = t.get('model.layers.1.self_attn.q_proj.weight')!, k = t.get('model.layers.1.self_attn.k_proj.weight')!, v = t.get('model.layers.1.self_attn.v_proj.weight')!;
  assert.deepEqual([q.shape, k.shape, v.shape], [[H * D, C], [K * D, C], [K * D, C]]);
  const w = p.layers[1].wqkv;
  for (const [r, c] of [[0, 0], [5, 17], [H * D - 1, C - 1]]) assert.equal(at(q, r, c), at(w, c, r));
  for (const [r, c] of [[0, 3], [K * D - 1, 9]]) {
    assert.equal(at(k, r, c), at(w, c, H * D + r));
    assert.equal(at(v, r, c), at(w, c, (H + K) * D + r));
  }
  assert.deepEqual(t.get('model.layers.0.mlp.down_proj.weight')!.shape, [C, I]);
  assert.equal(at(t.get('model.layers.0.mlp.down_proj.weight')!, 3, 7), at(p.layers[0].wdown!, 7, 3));
  assert.equal(at(t.get('lm_head.weight')!, 50, 2), at(p.lmHead!, 50, 2)); // stored as HF stores it
  assert.deepEqual([...t.keys()].filter((n) => !n.startsWith('model.layers.')), ['model.embed_tokens.weight', 'model.norm.weight', 'lm_head.weight']);

  const g = tinyConfig('gpt2');
  const gp = randomParams(g, 6);
  const gt = hfTensorsFromParams(g, gp);
  assert.equal(gt.get('transformer.h.0.attn.c_attn.weight'), gp.layers[0].wqkv, 'Conv1D weight is our layout as is');
  assert.equal(gt.get('transformer.h.1.mlp.c_proj.weight'), gp.layers[1].wproj);
  assert.ok(!gt.has('lm_head.weight'), 'tied GPT-2 has no lm_head');

  const m = tinyConfig('mixtral');
  const mp = randomParams(m, 7);
  const mt = hfTensorsFromParams(m, mp);
  const E = m.numExperts;
  const w1 = mt.get('model.layers.0.block_sparse_moe.experts.2.w1.weight')!; // expert 2's gate, [I, C]
  assert.deepEqual(w1.shape, [m.intermediateSize, m.hiddenSize]);
  const eg = mp.layers[0].egate!; // [E, C, I]
  assert.equal(at(w1, 5, 11), eg.data[2 * m.hiddenSize * m.intermediateSize + 11 * m.intermediateSize + 5]);
  const w2 = mt.get('model.layers.0.block_sparse_moe.experts.3.w2.weight')!; // expert 3's down, [C, I]
  assert.equal(at(w2, 4, 9), mp.layers[0].edown!.data[3 * m.intermediateSize * m.hiddenSize + 9 * m.hiddenSize + 4]);
  assert.deepEqual(mt.get('model.layers.1.block_sparse_moe.gate.weight')!.shape, [E, m.hiddenSize]);

  const qw = tinyConfig('qwen2');
  const qt = hfTensorsFromParams(qw, randomParams(qw, 8));
  assert.deepEqual(qt.get('model.layers.0.self_attn.k_proj.bias')!.shape, [qw.numKvHeads * qw.headDim]);
});

test('sharded save writes an index whose weight_map covers every tensor; re-saving unsharded removes stale shards', async () => {
  const cfg = tinyConfig('qwen2', { vocabSize: 257, tieEmbeddings: false });
  const params = randomParams(cfg, 9);
  const dir = tmp('hf-shard');
  const max = 40_000;
  const { files } = await saveHFDir(dir, { config: cfg, params, tokenizerJson, maxShardBytes: max });
  const shards = files.filter((f) => /^model-\d{5}-of-\d{5}\.safetensors$/.test(f));
  assert.ok(shards.length >= 3, `expected several shards, got ${shards.length}`);
  const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf-8'));
  const all = hfTensorsFromParams(cfg, params);
  assert.deepEqual(Object.keys(index.weight_map).sort(), [...all.keys()].sort());
  let total = 0;
  for (const s of shards) {
    const h = readSafetensorsHeader(join(dir, s));
    const bytes = [...h.tensors.values()].reduce((a, e) => a + e.data_offsets[1] - e.data_offsets[0], 0);
    total += bytes;
    assert.ok(bytes <= max || h.tensors.size === 1, `${s} has ${bytes} bytes in ${h.tensors.size} tensors`);
    for (const n of h.tensors.keys()) assert.equal(index.weight_map[n], s);
  }
  assert.equal(index.metadata.total_size, total);
  assert.ok(!existsSync(join(dir, 'model.safetensors')));
  assertSameParams(params, (await loadHFDir(dir)).params);

  await saveHFDir(dir, { config: cfg, params, tokenizerJson });
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('safetensors')), ['model.safetensors']);
  assertSameParams(params, (await loadHFDir(dir)).params);
});

test('GPT-2 checkpoints without the "transformer." prefix and with attention-mask buffers load', async () => {
  const cfg = tinyConfig('gpt2', { vocabSize: 257 });
  const params = randomParams(cfg, 10);
  const dir = tmp('hf-gpt2-bare');
  await saveHFDir(dir, { config: cfg, params, tokenizerJson });
  const t = readSafetensors(join(dir, 'model.safetensors'));
  const renamed: Record<string, HostTensor> = {};
  for (const [n, x] of t) renamed[n.replace(/^transformer\./, '')] = x;
  for (let i = 0; i < cfg.numLayers; i++) {
    renamed[`h.${i}.attn.bias`] = { shape: [1, 1, 4, 4], data: new Float32Array(16).fill(1) };
    renamed[`h.${i}.attn.masked_bias`] = { shape: [], data: Float32Array.of(-1e4) };
  }
  writeSafetensors(join(dir, 'model.safetensors'), renamed, { format: 'pt' });
  const got = await loadHFDir(dir);
  assertSameParams(params, got.params);
  assert.deepEqual(got.unusedTensors, []);
});

test('bad directories fail with errors naming the file and the field or tensor', async () => {
  const cfg = tinyConfig('llama', { vocabSize: 257 });
  const params = randomParams(cfg, 11);
  const fresh = async () => {
    const d = tmp('hf-bad');
    await saveHFDir(d, { config: cfg, params, tokenizerJson });
    return d;
  };
  const editConfig = (d: string, f: (j: Record<string, unknown>) => void) => {
    const j = JSON.parse(readFileSync(join(d, 'config.json'), 'utf-8'));
    f(j);
    writeFileSync(join(d, 'config.json'), JSON.stringify(j));
  };
  let d = await fresh();
  editConfig(d, (j) => delete j.hidden_size);
  await assert.rejects(loadHFDir(d), (e: Error) => e.message === `${join(d, 'config.json')}: field "hidden_size" is missing`);

  d = await fresh();
  editConfig(d, (j) => (j.model_type = 'bert'));
  await assert.rejects(loadHFDir(d), (e: Error) => e.message.startsWith(`${join(d, 'config.json')}: field "model_type" "bert" is not a supported architecture`));

  d = await fresh();
  writeFileSync(join(d, 'config.json'), '{"model_type": "llama",');
  await assert.rejects(loadHFDir(d), (e: Error) => e.message.startsWith(`${join(d, 'config.json')}: is not valid JSON`));

  d = await fresh();
  rmSync(join(d, 'tokenizer.json'));
  await assert.rejects(loadHFDir(d), (e: Error) => e.message.startsWith(`${join(d, 'tokenizer.json')}: missing`));
  assert.equal((await loadHFDir(d, { tokenizer: 'optional' })).tokenizer, undefined);

  d = await fresh();
  rmSync(join(d, 'model.safetensors'));
  await assert.rejects(loadHFDir(d), (e: Error) => e.message.startsWith(`${join(d, 'model.safetensors')}: missing`));

  d = await fresh();
  const file = join(d, 'model.safetensors');
  const t = Object.fromEntries(readSafetensors(file));
  delete t['model.layers.1.mlp.up_proj.weight'];
  writeSafetensors(file, t, { format: 'pt' });
  await assert.rejects(loadHFDir(d), (e: Error) => e.message.startsWith(`${file}: tensor "model.layers.1.mlp.up_proj.weight" is missing`));

  d = await fresh();
  const f2 = join(d, 'model.safetensors');
  const t2: Record<string, HostTensor> = Object.fromEntries(readSafetensors(f2));
  t2['model.layers.0.self_attn.k_proj.weight'] = { shape: [16, 32], data: new Float32Array(512) };
  writeSafetensors(f2, t2, { format: 'pt' });
  await assert.rejects(loadHFDir(d), (e: Error) => e.message === `${f2}: tensor "model.layers.0.self_attn.k_proj.weight" has shape [16, 32], expected [32, 32] from config.json`);

  d = await fresh();
  writeFileSync(join(d, 'model.safetensors'), Buffer.from([1, 2, 3, 4]));
  await assert.rejects(loadHFDir(d), (e: Error) => e.message.startsWith(`${join(d, 'model.safetensors')}: file is truncated`));

  await assert.rejects(loadHFDir(join(d, 'nope')), /model directory does not exist/);
  await assert.rejects(saveHFDir(tmp('hf-badsave'), { config: cfg, params: { ...params, lnf: { w: { shape: [3], data: new Float32Array(3) } } } }), /leaf "lnf\.w" has shape \[3\], expected \[32\]/);
});
