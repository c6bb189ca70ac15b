// Hugging Face model directories: config.json + model.safetensors (or shards with model.safetensors.index.json)
// + tokenizer.json/tokenizer_config.json + generation_config.json, with transformers' exact names.
//
// Our layout (src/engine/tree.ts) stores weights [in, out] and fuses q/k/v; HF's nn.Linear stores [out, in]
// and keeps q/k/v apart, while GPT-2's Conv1D is already [in, out]. The mapping is one table per architecture
// (hfTensorsFromParams / paramsFromHFTensors); every leaf is checked against paramShapes(config).

import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { configFromHF, configToHF, paramShapes, traits, type ModelConfig } from './config.js';
import { leavesWithPaths, mapTree, type HostParams, type HostTensor, type LayerParams, type ParamTree } from '../engine/tree.js';
import { f32ByteSize, readSafetensorsHeader, readSafetensors, writeSafetensors, type LoadedTensor } from './safetensors.js';
import { Tokenizer, saveTokenizerFiles, writeJsonAtomic, type TokenizerConfig, type TokenizerJson } from './tokenizer.js';
import { resolveModelRef } from './hub.js';

// ---------------------------------------------------------------------------------------------
// Small host-tensor helpers (row-major float32)

/** Transpose a 2-D [r, c] tensor to [c, r]. */
export function transpose2d(t: HostTensor): HostTensor {
  const [r, c] = t.shape;
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j];
  return { shape: [c, r], data: out };
}

/** Columns [c0, c1) of a 2-D tensor, or elements [c0, c1) of a 1-D one. */
function sliceCols(t: HostTensor, c0: number, c1: number): HostTensor {
  if (t.shape.length === 1) return { shape: [c1 - c0], data: t.data.slice(c0, c1) };
  const [r, c] = t.shape;
  const w = c1 - c0;
  const out = new Float32Array(r * w);
  for (let i = 0; i < r; i++) out.set(t.data.subarray(i * c + c0, i * c + c1), i * w);
  return { shape: [r, w], data: out };
}

/** Concatenate 2-D tensors along columns (or 1-D tensors end to end). */
function concatCols(ts: HostTensor[]): HostTensor {
  if (ts[0].shape.length === 1) {
    const n = ts.reduce((a, t) => a + t.data.length, 0);
    const out = new Float32Array(n);
    let at = 0;
    for (const t of ts) {
      out.set(t.data, at);
      at += t.data.length;
    }
    return { shape: [n], data: out };
  }
  const r = ts[0].shape[0];
  const w = ts.reduce((a, t) => a + t.shape[1], 0);
  const out = new Float32Array(r * w);
  for (let i = 0; i < r; i++) {
    let at = i * w;
    for (const t of ts) {
      const c = t.shape[1];
      out.set(t.data.subarray(i * c, (i + 1) * c), at);
      at += c;
    }
  }
  return { shape: [r, w], data: out };
}

/** Stack equal-shape tensors on a new leading axis. */
function stack(ts: HostTensor[]): HostTensor {
  const n = ts[0].data.length;
  const out = new Float32Array(ts.length * n);
  ts.forEach((t, i) => out.set(t.data, i * n));
  return { shape: [ts.length, ...ts[0].shape], data: out };
}

/** Item e of a stacked tensor. */
function unstack(t: HostTensor, e: number): HostTensor {
  const inner = t.shape.slice(1);
  const n = inner.reduce((a, d) => a * d, 1);
  return { shape: inner, data: t.data.slice(e * n, (e + 1) * n) };
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
const fmt = (s: number[]) => `[${s.join(', ')}]`;

// ---------------------------------------------------------------------------------------------
// Name mapping

/** HF tensor names and values for our params (what save writes). Tied heads are omitted, as transformers does. */
export function hfTensorsFromParams(config: ModelConfig, params: HostParams): Map<string, HostTensor> {
  checkParams(config, params, 'params');
  const out = new Map<string, HostTensor>();
  const t = traits(config);
  const { numHeads: H, numKvHeads: K, headDim: D } = config;
  if (config.arch === 'gpt2') {
    const p = 'transformer.';
    out.set(`${p}wte.weight`, params.wte);
    out.set(`${p}wpe.weight`, params.wpe!);
    params.layers.forEach((l, i) => {
      const b = `${p}h.${i}.`;
      out.set(`${b}ln_1.weight`, l.ln1.w);
      out.set(`${b}ln_1.bias`, l.ln1.b!);
      out.set(`${b}attn.c_attn.weight`, l.wqkv); // Conv1D: already [in, out]
      out.set(`${b}attn.c_attn.bias`, l.bqkv!);
      out.set(`${b}attn.c_proj.weight`, l.wo);
      out.set(`${b}attn.c_proj.bias`, l.bo!);
      out.set(`${b}ln_2.weight`, l.ln2.w);
      out.set(`${b}ln_2.bias`, l.ln2.b!);
      out.set(`${b}mlp.c_fc.weight`, l.wfc!);
      out.set(`${b}mlp.c_fc.bias`, l.bfc!);
      out.set(`${b}mlp.c_proj.weight`, l.wproj!);
      out.set(`${b}mlp.c_proj.bias`, l.bproj!);
    });
    out.set(`${p}ln_f.weight`, params.lnf.w);
    out.set(`${p}ln_f.bias`, params.lnf.b!);
    if (!config.tieEmbeddings) out.set('lm_head.weight', params.lmHead!);
    return out;
  }
  out.set('model.embed_tokens.weight', params.wte);
  params.layers.forEach((l, i) => {
    const b = `model.layers.${i}.`;
    out.set(`${b}input_layernorm.weight`, l.ln1.w);
    const q = [0, H * D], k = [H * D, (H + K) * D], v = [(H + K) * D, (H + 2 * K) * D];
    out.set(`${b}self_attn.q_proj.weight`, transpose2d(sliceCols(l.wqkv, q[0], q[1])));
    out.set(`${b}self_attn.k_proj.weight`, transpose2d(sliceCols(l.wqkv, k[0], k[1])));
    out.set(`${b}self_attn.v_proj.weight`, transpose2d(sliceCols(l.wqkv, v[0], v[1])));
    if (t.qkvBias) {
      out.set(`${b}self_attn.q_proj.bias`, sliceCols(l.bqkv!, q[0], q[1]));
      out.set(`${b}self_attn.k_proj.bias`, sliceCols(l.bqkv!, k[0], k[1]));
      out.set(`${b}self_attn.v_proj.bias`, sliceCols(l.bqkv!, v[0], v[1]));
    }
    out.set(`${b}self_attn.o_proj.weight`, transpose2d(l.wo));
    out.set(`${b}post_attention_layernorm.weight`, l.ln2.w);
    if (t.moe) {
      out.set(`${b}block_sparse_moe.gate.weight`, transpose2d(l.router!));
      for (let e = 0; e < config.numExperts; e++) {
        const x = `${b}block_sparse_moe.experts.${e}.`;
        out.set(`${x}w1.weight`, transpose2d(unstack(l.egate!, e)));
        out.set(`${x}w2.weight`, transpose2d(unstack(l.edown!, e)));
        out.set(`${x}w3.weight`, transpose2d(unstack(l.eup!, e)));
      }
    } else {
      out.set(`${b}mlp.gate_proj.weight`, transpose2d(l.wgate!));
      out.set(`${b}mlp.up_proj.weight`, transpose2d(l.wup!));
      out.set(`${b}mlp.down_proj.weight`, transpose2d(l.wdown!));
    }
  });
  out.set('model.norm.weight', params.lnf.w);
  if (!config.tieEmbeddings) out.set('lm_head.weight', params.lmHead!);
  return out;
}

/** Where each HF tensor came from, for error messages. */
export type TensorSource = (name: string) => string;

/**
 * Our params from HF tensors. `get(name)` returns a tensor or undefined; `fileOf(name)` names the file
 * a tensor is (or should be) in. Every tensor is shape-checked before it is used.
 */
export function paramsFromHFTensors(config: ModelConfig, get: (name: string) => HostTensor | undefined, fileOf: TensorSource): HostParams {
  const take = (name: string, shape: number[]): HostTensor => {
    const x = get(name);
    if (!x) throw new Error(`${fileOf(name)}: tensor "${name}" is missing (needed for ${config.arch} with this config.json)`);
    if (!sameShape(x.shape, shape)) throw new Error(`${fileOf(name)}: tensor "${name}" has shape ${fmt(x.shape)}, expected ${fmt(shape)} from config.json`);
    return { shape: [...x.shape], data: x.data };
  };
  const shapes = paramShapes(config);
  const t = traits(config);
  const { hiddenSize: C, numHeads: H, numKvHeads: K, headDim: D, intermediateSize: I, vocabSize: V } = config;
  let params: HostParams;
  if (config.arch === 'gpt2') {
    // Accept GPT2LMHeadModel ("transformer.h.0...") and bare GPT2Model ("h.0...") checkpoints.
    const p = get('transformer.wte.weight') ? 'transformer.' : get('wte.weight') ? '' : 'transformer.';
    const ln = (b: string) => ({ w: take(`${b}.weight`, [C]), b: take(`${b}.bias`, [C]) });
    params = {
      wte: take(`${p}wte.weight`, [V, C]),
      wpe: take(`${p}wpe.weight`, [config.maxPositions, C]),
      layers: shapes.layers.map((_, i) => {
        const b = `${p}h.${i}.`;
        return {
          ln1: ln(`${b}ln_1`),
          wqkv: take(`${b}attn.c_attn.weight`, [C, (H + 2 * K) * D]),
          bqkv: take(`${b}attn.c_attn.bias`, [(H + 2 * K) * D]),
          wo: take(`${b}attn.c_proj.weight`, [H * D, C]),
          bo: take(`${b}attn.c_proj.bias`, [C]),
          ln2: ln(`${b}ln_2`),
          wfc: take(`${b}mlp.c_fc.weight`, [C, I]),
          bfc: take(`${b}mlp.c_fc.bias`, [I]),
          wproj: take(`${b}mlp.c_proj.weight`, [I, C]),
          bproj: take(`${b}mlp.c_proj.bias`, [C]),
        };
      }),
      lnf: ln(`${p}ln_f`),
    };
  } else {
    params = {
      wte: take('model.embed_tokens.weight', [V, C]),
      layers: shapes.layers.map((_, i) => {
        const b = `model.layers.${i}.`;
        const q = take(`${b}self_attn.q_proj.weight`, [H * D, C]);
        const k = take(`${b}self_attn.k_proj.weight`, [K * D, C]);
        const v = take(`${b}self_attn.v_proj.weight`, [K * D, C]);
        const l: LayerParams<HostTensor> = {
          ln1: { w: take(`${b}input_layernorm.weight`, [C]) },
          wqkv: concatCols([transpose2d(q), transpose2d(k), transpose2d(v)]),
          wo: transpose2d(take(`${b}self_attn.o_proj.weight`, [C, H * D])),
          ln2: { w: take(`${b}post_attention_layernorm.weight`, [C]) },
        };
        if (t.qkvBias)
          l.bqkv = concatCols([take(`${b}self_attn.q_proj.bias`, [H * D]), take(`${b}self_attn.k_proj.bias`, [K * D]), take(`${b}self_attn.v_proj.bias`, [K * D])]);
        if (t.moe) {
          const E = config.numExperts;
          const x = (e: number, w: string, shape: number[]) => transpose2d(take(`${b}block_sparse_moe.experts.${e}.${w}.weight`, shape));
          l.router = transpose2d(take(`${b}block_sparse_moe.gate.weight`, [E, C]));
          l.egate = stack(Array.from({ length: E }, (_, e) => x(e, 'w1', [I, C])));
          l.eup = stack(Array.from({ length: E }, (_, e) => x(e, 'w3', [I, C])));
          l.edown = stack(Array.from({ length: E }, (_, e) => x(e, 'w2', [C, I])));
        } else {
          l.wgate = transpose2d(take(`${b}mlp.gate_proj.weight`, [I, C]));
          l.wup = transpose2d(take(`${b}mlp.up_proj.weight`, [I, C]));
          l.wdown = transpose2d(take(`${b}mlp.down_proj.weight`, [C, I]));
        }
        return l;
      }),
      lnf: { w: take('model.norm.weight', [C]) },
    };
  }
  if (!config.tieEmbeddings) params.lmHead = take('lm_head.weight', [V, C]);
  checkParams(config, params, 'loaded params');
  return params;
}

/** Check every leaf of a param tree against paramShapes(config): same leaves, same shapes, data of the right length. */
export function checkParams(config: ModelConfig, params: ParamTree<HostTensor>, what = 'params'): void {
  const want = new Map(leavesWithPaths(paramShapes(config)));
  const have = new Map<string, HostTensor>();
  if (params.layers.length !== config.numLayers) throw new Error(`${what}: has ${params.layers.length} layers, config has ${config.numLayers}`);
  mapTree(params, (x, p) => have.set(p, x));
  for (const [p, shape] of want) {
    const x = have.get(p);
    if (!x) throw new Error(`${what}: leaf "${p}" is missing (expected shape ${fmt(shape)})`);
    if (!sameShape(x.shape, shape)) throw new Error(`${what}: leaf "${p}" has shape ${fmt(x.shape)}, expected ${fmt(shape)}`);
    const n = shape.reduce((a, d) => a * d, 1);
    if (x.data.length !== n) throw new Error(`${what}: leaf "${p}" has ${x.data.length} values for shape ${fmt(shape)}`);
  }
  for (const p of have.keys()) if (!want.has(p)) throw new Error(`${what}: leaf "${p}" is not part of a ${config.arch} model with this config`);
}

// ---------------------------------------------------------------------------------------------
// Directories

export interface HFDir {
  config: ModelConfig;
  params: HostParams;
  tokenizer?: Tokenizer;
  generationConfig?: Record<string, unknown>;
  /** The raw config.json object (keys we do not model are kept here). */
  rawConfig: Record<string, unknown>;
  /** Tensors present in the files that the model does not use (buffers such as attn.bias are not listed). */
  unusedTensors: string[];
}

export interface LoadHFOptions {
  /** 'required' (default): a missing tokenizer.json is an error; 'optional': load it when present; 'skip'. */
  tokenizer?: 'required' | 'optional' | 'skip';
}

// Non-parameter buffers some checkpoints carry (GPT-2's causal mask, old rotary caches).
const IGNORED_BUFFERS = /(\.attn\.bias|\.attn\.masked_bias|rotary_emb\.inv_freq)$/;

function readJsonFile(file: string): Record<string, unknown> {
  if (!existsSync(file)) throw new Error(`${file}: missing`);
  let j: unknown;
  try {
    j = JSON.parse(readFileSync(file, 'utf-8'));
  } catch (e) {
    throw new Error(`${file}: is not valid JSON (${(e as Error).message})`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new Error(`${file}: must be a JSON object`);
  return j as Record<string, unknown>;
}

/** Which file holds each tensor: the single model.safetensors, or the shards named by the index. */
function weightFiles(dir: string): Map<string, string[]> {
  const single = join(dir, 'model.safetensors');
  const index = join(dir, 'model.safetensors.index.json');
  const files = new Map<string, string[]>(); // file -> tensor names
  if (existsSync(index)) {
    const j = readJsonFile(index);
    const wm = j.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw new Error(`${index}: field "weight_map" is missing or not an object`);
    for (const [name, f] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof f !== 'string' || f.includes('/') || f.includes('\\')) throw new Error(`${index}: field "weight_map.${name}" must be a file name in the directory, got ${JSON.stringify(f)}`);
      const path = join(dir, f);
      if (!files.has(path)) files.set(path, []);
      files.get(path)!.push(name);
    }
    for (const path of files.keys()) if (!existsSync(path)) throw new Error(`${index}: names shard "${path}", which is missing`);
    return files;
  }
  if (existsSync(single)) return new Map([[single, [...readSafetensorsHeader(single).tensors.keys()]]]);
  const bin = ['pytorch_model.bin', 'model.bin'].find((f) => existsSync(join(dir, f)));
  if (bin) throw new Error(`${join(dir, bin)}: PyTorch pickle weights are not supported; convert the model to safetensors`);
  throw new Error(`${single}: missing (the model directory ${dir} has neither model.safetensors nor model.safetensors.index.json)`);
}

/** Load a Hugging Face model directory. */
export async function loadHFDir(ref: string, opts: LoadHFOptions = {}): Promise<HFDir> {
  const dir = resolveModelRef(ref); // a hub id (org/name) pulled earlier reads from its cached snapshot
  if (!existsSync(dir)) throw new Error(`${dir}: model directory does not exist`);
  const cfgFile = join(dir, 'config.json');
  const rawConfig = readJsonFile(cfgFile);
  const config = configFromHF(rawConfig, cfgFile);
  const files = weightFiles(dir);
  const where = new Map<string, string>();
  const tensors = new Map<string, LoadedTensor>();
  for (const [file, names] of files) {
    const got = readSafetensors(file);
    for (const n of names) {
      const x = got.get(n);
      if (!x) throw new Error(`${file}: tensor "${n}" is missing (the index says it is in this file)`);
      tensors.set(n, x);
      where.set(n, file);
    }
  }
  // A tensor found nowhere is missing from the index when there is one, else from the single file.
  const index = join(dir, 'model.safetensors.index.json');
  const defaultFile = existsSync(index) ? index : [...files.keys()][0];
  const used = new Set<string>();
  const params = paramsFromHFTensors(
    config,
    (n) => {
      const x = tensors.get(n);
      if (x) used.add(n);
      return x;
    },
    (n) => where.get(n) ?? defaultFile,
  );
  const unusedTensors = [...tensors.keys()].filter((n) => !used.has(n) && !IGNORED_BUFFERS.test(n));
  const out: HFDir = { config, params, rawConfig, unusedTensors };
  const mode = opts.tokenizer ?? 'required';
  if (mode !== 'skip' && (mode === 'required' || existsSync(join(dir, 'tokenizer.json')))) out.tokenizer = await Tokenizer.fromDir(dir);
  const genFile = join(dir, 'generation_config.json');
  if (existsSync(genFile)) out.generationConfig = readJsonFile(genFile);
  return out;
}

export interface SaveHFOptions {
  config: ModelConfig;
  params: HostParams;
  tokenizerJson?: TokenizerJson;
  tokenizerConfig?: TokenizerConfig;
  generationConfig?: Record<string, unknown>;
  /** Split the weights into shards of at most this many bytes (a single tensor larger than this gets its own shard). Default 5 GB, as transformers. */
  maxShardBytes?: number;
}

/** Save a Hugging Face model directory that transformers (and loadHFDir) can open. */
export async function saveHFDir(dir: string, o: SaveHFOptions): Promise<{ files: string[] }> {
  const tensors = hfTensorsFromParams(o.config, o.params);
  mkdirSync(dir, { recursive: true });
  const max = o.maxShardBytes ?? 5e9;
  // Greedy sharding in tensor order, as transformers does.
  const shards: [string, HostTensor][][] = [[]];
  let size = 0;
  let total = 0;
  for (const entry of tensors) {
    const b = f32ByteSize(entry[1]);
    total += b;
    if (size > 0 && size + b > max) {
      shards.push([]);
      size = 0;
    }
    shards[shards.length - 1].push(entry);
    size += b;
  }
  const meta = { format: 'pt' }; // transformers refuses safetensors files without this metadata
  const written: string[] = [];
  if (shards.length === 1) {
    writeSafetensors(join(dir, 'model.safetensors'), Object.fromEntries(shards[0]), meta);
    written.push('model.safetensors');
  } else {
    const n = shards.length;
    const weightMap: Record<string, string> = {};
    shards.forEach((s, i) => {
      const f = `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
      writeSafetensors(join(dir, f), Object.fromEntries(s), meta);
      for (const [name] of s) weightMap[name] = f;
      written.push(f);
    });
    await writeJsonAtomic(join(dir, 'model.safetensors.index.json'), { metadata: { total_size: total }, weight_map: weightMap });
    written.push('model.safetensors.index.json');
  }
  // Remove weights of an earlier save that would shadow or mix with these (a stale index wins over model.safetensors).
  for (const f of readdirSync(dir))
    if (/^model(-\d{5}-of-\d{5})?\.safetensors(\.index\.json)?$/.test(f) && !written.includes(f)) rmSync(join(dir, f), { force: true });
  await writeJsonAtomic(join(dir, 'config.json'), configToHF(o.config));
  written.push('config.json');
  if (o.tokenizerJson) {
    await saveTokenizerFiles(dir, o.tokenizerJson, o.tokenizerConfig);
    written.push('tokenizer.json', 'tokenizer_config.json');
  }
  if (o.generationConfig) {
    await writeJsonAtomic(join(dir, 'generation_config.json'), o.generationConfig);
    written.push('generation_config.json');
  }
  return { files: written };
}
