import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readGgufFileInfo } from 'node-llama-cpp';
import { GGUFType, ggufGet, permuteRope, readGGUF, writeGGUF, writeGGUFFile } from '../../src/formats/gguf.js';
import { byteLevelTokenizerJson, wordLevelTokenizerJson } from '../../src/formats/tokenizer.js';
import { tinyConfig } from '../../src/formats/config.js';
import { errorOf, randomParams, tmp } from './helpers.js';

const dir = tmp('gguf');
const tokenizerJson = byteLevelTokenizerJson();
const tokenizerConfig = { eos_token: '<|endoftext|>' };

test('permuteRope reorders each head rows as convert_hf_to_gguf.py (reshape(n_head, 2, D/2, ...).swapaxes(1, 2))', () => {
  // 2 heads of D=4, one column: numpy gives rows [0, 2, 1, 3, 4, 6, 5, 7].
  const w = { shape: [8, 1], data: Float32Array.from({ length: 8 }, (_, i) => i) };
  assert.deepEqual([...permuteRope(w, 2).data], [0, 2, 1, 3, 4, 6, 5, 7]);
  // D=6, one head, two columns: rows [0, 3, 1, 4, 2, 5], each row keeps its columns.
  const w2 = { shape: [6, 2], data: Float32Array.from({ length: 12 }, (_, i) => i) };
  assert.deepEqual([...permuteRope(w2, 1).data], [0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11]);
});

test('llama export: metadata keys, tensor names and ggml dims; read back by our reader and by node-llama-cpp', async () => {
  const cfg = tinyConfig('llama', { vocabSize: 260, numKvHeads: 2, tieEmbeddings: false });
  const params = randomParams(cfg, 21);
  const path = join(dir, 'llama.gguf');
  const { arch, warnings } = writeGGUF(path, { config: cfg, params, tokenizerJson, tokenizerConfig });
  assert.equal(arch, 'llama');
  assert.deepEqual(warnings, []);
  const f = readGGUF(path);
  assert.equal(f.version, 3);
  assert.equal(f.alignment, 32);
  assert.equal(f.dataStart % 32, 0);
  const want: Record<string, unknown> = {
    'general.architecture': 'llama',
    'llama.context_length': 64,
    'llama.embedding_length': 32,
    'llama.block_count': 2,
    'llama.feed_forward_length': cfg.intermediateSize,
    'llama.attention.head_count': 4,
    'llama.attention.head_count_kv': 2,
    'llama.rope.freq_base': 10000,
    'llama.rope.dimension_count': 8,
    'tokenizer.ggml.model': 'gpt2',
    'tokenizer.ggml.bos_token_id': 256,
    'tokenizer.ggml.eos_token_id': 256,
  };
  for (const [k, v] of Object.entries(want)) assert.equal(ggufGet(f, k), v, k);
  assert.equal(f.metadata.get('llama.block_count')!.type, GGUFType.UINT32);
  assert.equal(Math.fround(cfg.normEps), ggufGet(f, 'llama.attention.layer_norm_rms_epsilon'));
  const tokens = ggufGet(f, 'tokenizer.ggml.tokens') as string[];
  const types = ggufGet(f, 'tokenizer.ggml.token_type') as number[];
  assert.equal(tokens.length, 260);
  assert.deepEqual([tokens[32], tokens[256], tokens[257], tokens[259]], ['Ġ', '<|endoftext|>', '[PAD257]', '[PAD259]']);
  assert.deepEqual([types[32], types[256], types[257]], [1, 3, 5]); // normal, control, unused
  assert.deepEqual(ggufGet(f, 'tokenizer.ggml.merges'), []);

  const byName = new Map(f.tensors.map((t) => [t.name, t]));
  assert.equal(f.tensors.length, 2 + 1 + 2 * 9);
  assert.deepEqual(byName.get('token_embd.weight')!.ne, [32, 260]);
  assert.deepEqual(byName.get('output.weight')!.ne, [32, 260]);
  assert.deepEqual(byName.get('blk.0.attn_q.weight')!.ne, [32, 32]);
  assert.deepEqual(byName.get('blk.0.attn_k.weight')!.ne, [32, 16]);
  assert.deepEqual(byName.get('blk.1.ffn_down.weight')!.ne, [cfg.intermediateSize, 32]);
  for (const t of f.tensors) assert.equal(t.offset % 32, 0, t.name);
  // Values: the embedding as is; v_proj = the v columns of wqkv, transposed; q rows permuted within each head.
  assert.deepEqual(byName.get('token_embd.weight')!.data, params.wte.data);
  const C = 32, W = (4 + 2 * 2) * 8, wqkv = params.layers[1].wqkv.data;
  const v = byName.get('blk.1.attn_v.weight')!.data!; // row-major [16, 32]
  assert.equal(v[3 * C + 5], wqkv[5 * W + 48 + 3]);
  const q = byName.get('blk.1.attn_q.weight')!.data!; // row 2j+s of head h holds HF row h*8 + s*4 + j
  assert.equal(q[(8 + 2 * 1 + 1) * C + 7], wqkv[7 * W + (8 + 1 * 4 + 1)]);

  // An independent parser (node-llama-cpp's) reads the same structure, and the bytes at its offsets are ours.
  const info = await readGgufFileInfo(path, { logWarnings: false });
  assert.equal(info.version, 3);
  assert.equal(info.tensorCount, f.tensors.length);
  const md = info.metadata as unknown as { llama: { attention: { head_count_kv: number } }; tokenizer: { ggml: { tokens: string[] } } };
  assert.equal(md.llama.attention.head_count_kv, 2);
  assert.equal(md.tokenizer.ggml.tokens.length, 260);
  const bytes = readFileSync(path);
  for (const ti of info.tensorInfo!) {
    const ours = byName.get(ti.name)!;
    assert.deepEqual(ti.dimensions.map(Number), ours.ne, ti.name);
    const off = Number(ti.fileOffset);
    assert.equal(bytes.readFloatLE(off), ours.data![0], ti.name);
    assert.equal(bytes.readFloatLE(off + 4 * (ours.data!.length - 1)), ours.data![ours.data!.length - 1], ti.name);
  }
});

test('qwen2, mixtral and gpt2 exports use their llama.cpp names and keys', () => {
  const q = tinyConfig('qwen2', { vocabSize: 257, tieEmbeddings: true });
  const fq = readGGUF((writeGGUF(join(dir, 'q.gguf'), { config: q, params: randomParams(q, 1), tokenizerJson }), join(dir, 'q.gguf')));
  assert.equal(ggufGet(fq, 'general.architecture'), 'qwen2');
  const qn = fq.tensors.map((t) => t.name);
  assert.ok(qn.includes('blk.0.attn_q.bias') && qn.includes('blk.1.attn_v.bias'));
  assert.ok(!qn.includes('output.weight'), 'tied: llama.cpp reuses token_embd');

  const m = tinyConfig('mixtral', { vocabSize: 257 });
  const fm = readGGUF((writeGGUF(join(dir, 'm.gguf'), { config: m, params: randomParams(m, 2), tokenizerJson }), join(dir, 'm.gguf')));
  assert.equal(ggufGet(fm, 'general.architecture'), 'llama');
  assert.equal(ggufGet(fm, 'llama.expert_count'), 4);
  assert.equal(ggufGet(fm, 'llama.expert_used_count'), 2);
  const byName = new Map(fm.tensors.map((t) => [t.name, t]));
  assert.deepEqual(byName.get('blk.0.ffn_gate_inp.weight')!.ne, [32, 4]);
  assert.deepEqual(byName.get('blk.0.ffn_gate_exps.weight')!.ne, [32, m.intermediateSize, 4]);
  assert.deepEqual(byName.get('blk.1.ffn_down_exps.weight')!.ne, [m.intermediateSize, 32, 4]);

  const g = tinyConfig('gpt2', { vocabSize: 257 });
  const fg = readGGUF((writeGGUF(join(dir, 'g.gguf'), { config: g, params: randomParams(g, 3), tokenizerJson }), join(dir, 'g.gguf')));
  assert.equal(ggufGet(fg, 'general.architecture'), 'gpt2');
  assert.equal(ggufGet(fg, 'gpt2.attention.layer_norm_epsilon'), Math.fround(1e-5));
  const gb = new Map(fg.tensors.map((t) => [t.name, t]));
  assert.deepEqual(gb.get('position_embd.weight')!.ne, [32, 64]);
  assert.deepEqual(gb.get('blk.0.attn_qkv.weight')!.ne, [32, 96]);
  assert.ok(gb.has('blk.0.ffn_up.bias') && gb.has('output_norm.bias'));

  const mi = tinyConfig('mistral', { vocabSize: 257 });
  const { warnings } = writeGGUF(join(dir, 'mi.gguf'), { config: mi, params: randomParams(mi, 4), tokenizerJson });
  assert.match(warnings.join(), /no sliding-window attention: its outputs match only for sequences up to 4 tokens/);
});

test('word-level vocabularies become llama.cpp WordPiece ("bert") vocabularies with "▁word" tokens', () => {
  const json = wordLevelTokenizerJson(['the', 'cat', '.']);
  const cfg = tinyConfig('llama', { vocabSize: 10 });
  const path = join(dir, 'word.gguf');
  writeGGUF(path, { config: cfg, params: randomParams(cfg, 9), tokenizerJson: json, tokenizerConfig: { bos_token: '<bos>', eos_token: '<eos>', pad_token: '<pad>' } });
  const f = readGGUF(path, { data: false });
  assert.equal(ggufGet(f, 'tokenizer.ggml.model'), 'bert');
  assert.deepEqual(ggufGet(f, 'tokenizer.ggml.tokens'), ['<unk>', '<bos>', '<eos>', '<pad>', '▁the', '▁cat', '▁.', '[PAD7]', '[PAD8]', '[PAD9]']);
  assert.deepEqual(ggufGet(f, 'tokenizer.ggml.token_type'), [3, 3, 3, 3, 1, 1, 1, 5, 5, 5]);
  const ids = ['unknown', 'bos', 'eos', 'padding'].map((k) => ggufGet(f, `tokenizer.ggml.${k}_token_id`));
  assert.deepEqual(ids, [0, 1, 2, 3]);
  assert.equal(ggufGet(f, 'tokenizer.ggml.normalizer.lowercase'), true);
  assert.equal(ggufGet(f, 'tokenizer.ggml.normalizer.strip_accents'), false);
  assert.equal(ggufGet(f, 'tokenizer.ggml.add_sep_token'), false);
  assert.equal(ggufGet(f, 'tokenizer.ggml.merges'), undefined);
});

test('export refuses tokenizers llama.cpp cannot represent and vocabularies larger than the model', () => {
  const cfg = tinyConfig('llama', { vocabSize: 300 });
  const params = randomParams(cfg, 5);
  const otherPre = { ...wordLevelTokenizerJson(['a', 'b']), pre_tokenizer: { type: 'Whitespace' } };
  assert.throws(() => writeGGUF(join(dir, 'w.gguf'), { config: cfg, params, tokenizerJson: otherPre }), /a WordLevel tokenizer maps onto llama\.cpp's WordPiece tokenizer only with the BertPreTokenizer/);
  const unigram = { ...tokenizerJson, model: { type: 'Unigram', vocab: [['a', 0]] } };
  assert.throws(() => writeGGUF(join(dir, 'u.gguf'), { config: cfg, params, tokenizerJson: unigram }), /supported tokenizers are byte-level BPE .* got model type "Unigram"/);
  const small = tinyConfig('llama', { vocabSize: 200 });
  assert.throws(() => writeGGUF(join(dir, 's.gguf'), { config: small, params: randomParams(small, 6), tokenizerJson }), /tokenizer has token id 256 but the model's vocab_size is 200/);
  const q = tinyConfig('qwen2', { vocabSize: 257, headDim: 16 });
  assert.throws(() => writeGGUF(join(dir, 'qh.gguf'), { config: q, params: randomParams(q, 7), tokenizerJson }), /llama\.cpp's qwen2 needs num_attention_heads × head_dim/);
});

test('corrupt GGUF files fail with an error naming the file and the field', () => {
  const cfg = tinyConfig('llama', { vocabSize: 257 });
  const good = join(dir, 'good.gguf');
  writeGGUF(good, { config: cfg, params: randomParams(cfg, 8), tokenizerJson });
  const bytes = readFileSync(good);
  const variant = (name: string, edit: (b: Buffer) => Buffer) => {
    const p = join(dir, name);
    writeFileSync(p, edit(Buffer.from(bytes)));
    return p;
  };
  const cases: [string, (b: Buffer) => Buffer, RegExp][] = [
    ['magic.gguf', (b) => (b.write('GGML', 0), b), /magic is "GGML", expected "GGUF"/],
    ['v1.gguf', (b) => (b.writeUInt32LE(1, 4), b), /version 1 is not supported/],
    ['v9.gguf', (b) => (b.writeUInt32LE(9, 4), b), /version 9 is not supported/],
    ['header.gguf', (b) => b.subarray(0, 10), /tensor count runs past the end of the file/],
    ['ntensors.gguf', (b) => (b.writeBigUInt64LE(1n << 40n, 8), b), /tensor count 1099511627776 cannot fit/],
    ['keylen.gguf', (b) => (b.writeBigUInt64LE(1n << 33n, 24), b), /metadata key #0 string length 8589934592 runs past the end of the file/],
    ['type.gguf', (b) => (b.writeUInt32LE(77, 24 + 8 + 'general.architecture'.length), b), /metadata "general\.architecture" has unknown value type 77/],
    ['cut-meta.gguf', (b) => b.subarray(0, 2000), /runs past the end of the file/],
    ['cut-data.gguf', (b) => b.subarray(0, b.length - 100), /tensor "output\.weight" data .* runs past the end of the file .*: truncated/],
  ];
  for (const [name, edit, re] of cases) {
    const p = variant(name, edit);
    const msg = errorOf(() => readGGUF(p));
    assert.ok(msg.startsWith(`${p}: `) && re.test(msg), `${name}: got "${msg}"`);
  }
});

test('writeGGUFFile writes arbitrary metadata types that read back identically', () => {
  const p = join(dir, 'kv.gguf');
  writeGGUFFile(
    p,
    [
      ['a.u8', { type: GGUFType.UINT8, value: 200 }],
      ['a.i16', { type: GGUFType.INT16, value: -300 }],
      ['a.i64', { type: GGUFType.INT64, value: -(2n ** 40n) }],
      ['a.f64', { type: GGUFType.FLOAT64, value: Math.PI }],
      ['a.bool', { type: GGUFType.BOOL, value: true }],
      ['a.str', { type: GGUFType.STRING, value: 'héllo 🦙' }],
      ['a.arr', { type: GGUFType.ARRAY, arrayType: GGUFType.FLOAT32, value: [1.5, -2] }],
    ],
    [{ name: 't', shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) }],
  );
  const f = readGGUF(p);
  assert.deepEqual([...f.metadata.entries()].map(([k, v]) => [k, v.value]), [
    ['a.u8', 200],
    ['a.i16', -300],
    ['a.i64', -(2n ** 40n)],
    ['a.f64', Math.PI],
    ['a.bool', true],
    ['a.str', 'héllo 🦙'],
    ['a.arr', [1.5, -2]],
  ]);
  assert.deepEqual(f.tensors[0].ne, [3, 2]);
  assert.deepEqual([...f.tensors[0].data!], [1, 2, 3, 4, 5, 6]);
});
