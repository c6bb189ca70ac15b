// `alignlab inspect --model DIR`: what a model directory holds, from config.json and the weight files'
// headers (the tensor data is not read, so this is fast on any size). A truncated or corrupt safetensors
// file, a missing tensor, or a shape that disagrees with config.json is one line naming file and tensor.
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveModelRef } from '../formats/hub.js';
import { readSafetensorsHeader } from '../formats/safetensors.js';
import { configFromHF, paramCount, traits, type ModelConfig } from '../formats/config.js';
import { command, parse } from './args.js';

export const cli = () =>
  command('inspect', 'show a model directory: architecture, sizes, parameter count; checks the weight files against config.json')
    .requiredOption('--model <dir>', 'model directory (config.json, *.safetensors)')
    .option('--json', 'print one JSON object');

export async function main(argv: string[]): Promise<void> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<{ model: string; json: boolean }>();
  const dir = resolveModelRef(f.model); // a pulled hub id (org/name) works too
  const file = join(dir, 'config.json');
  const raw = await readFile(file, 'utf-8').catch(() => {
    throw new Error(`${file}: cannot be read (is ${dir} a model directory?)`);
  });
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(raw);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const c = configFromHF(j, file);
  const t = traits(c);
  const weights = checkWeights(dir, c);
  const info = {
    architecture: c.arch,
    parameters: paramCount(c),
    layers: c.numLayers,
    hidden: c.hiddenSize,
    heads: c.numHeads,
    kvHeads: c.numKvHeads,
    headDim: c.headDim,
    intermediate: c.intermediateSize,
    vocab: c.vocabSize,
    context: c.maxPositions,
    positions: t.learnedPositions ? 'learned' : `rope (theta ${c.ropeTheta})`,
    norm: t.layerNorm ? 'layernorm' : 'rmsnorm',
    mlp: t.moe ? `moe (${c.numExperts} experts, top-${c.expertsPerToken})` : t.geluMlp ? 'gelu' : 'swiglu',
    slidingWindow: c.slidingWindow,
    tiedEmbeddings: c.tieEmbeddings,
    float32MiB: +((paramCount(c) * 4) / 2 ** 20).toFixed(2),
    weights: `${weights.files} file${weights.files === 1 ? '' : 's'}, ${weights.tensors} tensors (${weights.dtypes.join(', ')}), shapes match config.json`,
  };
  if (f.json) console.log(JSON.stringify(info));
  else for (const [k, v] of Object.entries(info)) console.log(`${k.padEnd(15)} ${v}`);
}

/**
 * The tensors a checkpoint of this config holds, by their Hugging Face names, with their shapes: the names
 * formats/hf.ts reads (test/cli/inspect.test.ts checks this list against what saveHFDir writes for every
 * architecture, so the two cannot drift apart). GPT-2 names come with `prefix` ("transformer." or none).
 */
export function expectedTensors(c: ModelConfig, gpt2Prefix = 'transformer.'): Map<string, number[]> {
  const t = traits(c);
  const { hiddenSize: C, numHeads: H, numKvHeads: K, headDim: D, intermediateSize: I, vocabSize: V, numExperts: E } = c;
  const m = new Map<string, number[]>();
  if (c.arch === 'gpt2') {
    const p = gpt2Prefix;
    const ln = (b: string) => (m.set(`${b}.weight`, [C]), m.set(`${b}.bias`, [C]));
    m.set(`${p}wte.weight`, [V, C]).set(`${p}wpe.weight`, [c.maxPositions, C]);
    for (let i = 0; i < c.numLayers; i++) {
      const b = `${p}h.${i}.`;
      ln(`${b}ln_1`);
      ln(`${b}ln_2`);
      m.set(`${b}attn.c_attn.weight`, [C, (H + 2 * K) * D]).set(`${b}attn.c_attn.bias`, [(H + 2 * K) * D]);
      m.set(`${b}attn.c_proj.weight`, [H * D, C]).set(`${b}attn.c_proj.bias`, [C]);
      m.set(`${b}mlp.c_fc.weight`, [C, I]).set(`${b}mlp.c_fc.bias`, [I]).set(`${b}mlp.c_proj.weight`, [I, C]).set(`${b}mlp.c_proj.bias`, [C]);
    }
    ln(`${p}ln_f`);
  } else {
    m.set('model.embed_tokens.weight', [V, C]).set('model.norm.weight', [C]);
    for (let i = 0; i < c.numLayers; i++) {
      const b = `model.layers.${i}.`;
      m.set(`${b}input_layernorm.weight`, [C]).set(`${b}post_attention_layernorm.weight`, [C]);
      m.set(`${b}self_attn.q_proj.weight`, [H * D, C]).set(`${b}self_attn.k_proj.weight`, [K * D, C]).set(`${b}self_attn.v_proj.weight`, [K * D, C]);
      m.set(`${b}self_attn.o_proj.weight`, [C, H * D]);
      if (t.qkvBias) m.set(`${b}self_attn.q_proj.bias`, [H * D]).set(`${b}self_attn.k_proj.bias`, [K * D]).set(`${b}self_attn.v_proj.bias`, [K * D]);
      if (t.moe) {
        m.set(`${b}block_sparse_moe.gate.weight`, [E, C]);
        for (let e = 0; e < E; e++)
          m.set(`${b}block_sparse_moe.experts.${e}.w1.weight`, [I, C]).set(`${b}block_sparse_moe.experts.${e}.w3.weight`, [I, C]).set(`${b}block_sparse_moe.experts.${e}.w2.weight`, [C, I]);
      } else m.set(`${b}mlp.gate_proj.weight`, [I, C]).set(`${b}mlp.up_proj.weight`, [I, C]).set(`${b}mlp.down_proj.weight`, [C, I]);
    }
  }
  if (!c.tieEmbeddings) m.set('lm_head.weight', [V, C]);
  return m;
}

/** Reads every weight file's header (validating offsets against the file size) and checks names and shapes. */
export function checkWeights(dir: string, c: ModelConfig): { files: number; tensors: number; dtypes: string[] } {
  const index = join(dir, 'model.safetensors.index.json'), single = join(dir, 'model.safetensors');
  let files: string[];
  if (existsSync(index)) {
    let j: { weight_map?: Record<string, string> };
    try {
      j = JSON.parse(readFileSync(index, 'utf-8'));
    } catch (e) {
      throw new Error(`${index}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof j.weight_map !== 'object' || j.weight_map === null) throw new Error(`${index}: field "weight_map" is missing or not an object`);
    files = [...new Set(Object.values(j.weight_map))].map((f) => join(dir, String(f)));
  } else if (existsSync(single)) files = [single];
  else throw new Error(`${single}: missing (the model directory ${dir} has neither model.safetensors nor model.safetensors.index.json)`);
  const found = new Map<string, { file: string; shape: number[] }>();
  const dtypes = new Set<string>();
  for (const file of files) {
    if (!existsSync(file)) throw new Error(`${index}: names shard "${file}", which is missing`);
    for (const [name, e] of readSafetensorsHeader(file).tensors) {
      found.set(name, { file, shape: e.shape });
      dtypes.add(e.dtype);
    }
  }
  const prefix = c.arch === 'gpt2' && !found.has('transformer.wte.weight') && found.has('wte.weight') ? '' : 'transformer.';
  for (const [name, shape] of expectedTensors(c, prefix)) {
    const got = found.get(name);
    if (!got) throw new Error(`${files.length === 1 ? files[0] : index}: tensor "${name}" is missing (needed for ${c.arch} with this config.json)`);
    if (got.shape.length !== shape.length || got.shape.some((d, i) => d !== shape[i]))
      throw new Error(`${got.file}: tensor "${name}" has shape [${got.shape.join(', ')}], but config.json implies [${shape.join(', ')}]`);
  }
  return { files: files.length, tensors: found.size, dtypes: [...dtypes].sort() };
}
