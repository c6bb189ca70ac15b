// ModelConfig: the one description of a decoder that every part of alignlab reads.
// It is derived from (and written back to) Hugging Face config.json with HF's exact keys,
// so a directory we save opens in transformers and one transformers saves opens here.
import { ConfigError } from './errors.js';
import type { LayerParams, Norm, ParamTree } from '../engine/tree.js';

export type Arch = 'gpt2' | 'llama' | 'mistral' | 'qwen2' | 'mixtral';
export const ARCHS: readonly Arch[] = ['gpt2', 'llama', 'mistral', 'qwen2', 'mixtral'];

export interface ModelConfig {
  arch: Arch;
  vocabSize: number;
  hiddenSize: number; // C
  numLayers: number;
  numHeads: number;
  numKvHeads: number; // < numHeads means grouped-query attention
  headDim: number;
  intermediateSize: number;
  maxPositions: number;
  normEps: number;
  ropeTheta: number; // unused by gpt2 (learned positions)
  slidingWindow: number | null; // mistral: a query sees at most this many most recent keys (itself included)
  tieEmbeddings: boolean;
  numExperts: number; // 0 = dense MLP; mixtral: number of local experts
  expertsPerToken: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  padTokenId: number | null;
}

/** Architecture traits, named so decoder.ts reads as "if the arch has X". */
export const traits = (c: ModelConfig) => ({
  learnedPositions: c.arch === 'gpt2',
  layerNorm: c.arch === 'gpt2', // else RMSNorm
  geluMlp: c.arch === 'gpt2', // else SwiGLU
  qkvBias: c.arch === 'gpt2' || c.arch === 'qwen2',
  outBias: c.arch === 'gpt2', // attention output and MLP biases
  moe: c.arch === 'mixtral' && c.numExperts > 0,
});

// The project's one ConfigError (formats/errors.ts), re-exported for callers that import it from here.
export { ConfigError };

type Json = Record<string, unknown>;

const MODEL_TYPES: Record<string, Arch> = {
  gpt2: 'gpt2',
  llama: 'llama',
  mistral: 'mistral',
  qwen2: 'qwen2',
  mixtral: 'mixtral',
};

function num(j: Json, file: string, key: string, fallback?: number): number {
  const v = j[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError(file, key, 'is missing');
  }
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(file, key, `must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function optId(j: Json, key: string): number | null {
  const v = j[key];
  if (typeof v === 'number') return v;
  if (Array.isArray(v) && typeof v[0] === 'number') return v[0];
  return null;
}

/** Parse an HF config.json object. `file` is used in error messages. */
export function configFromHF(j: Json, file = 'config.json'): ModelConfig {
  const mt = j.model_type;
  if (typeof mt !== 'string') throw new ConfigError(file, 'model_type', 'is missing');
  const arch = MODEL_TYPES[mt];
  if (!arch) throw new ConfigError(file, 'model_type', `"${mt}" is not a supported architecture (supported: ${ARCHS.join(', ')})`);
  let cfg: ModelConfig;
  if (arch === 'gpt2') {
    const C = num(j, file, 'n_embd');
    const H = num(j, file, 'n_head');
    cfg = {
      arch,
      vocabSize: num(j, file, 'vocab_size'),
      hiddenSize: C,
      numLayers: num(j, file, 'n_layer'),
      numHeads: H,
      numKvHeads: H,
      headDim: C / H,
      intermediateSize: num(j, file, 'n_inner', 4 * C),
      maxPositions: num(j, file, 'n_positions'),
      normEps: num(j, file, 'layer_norm_epsilon', 1e-5),
      ropeTheta: 0,
      slidingWindow: null,
      tieEmbeddings: j.tie_word_embeddings !== false,
      numExperts: 0,
      expertsPerToken: 0,
      bosTokenId: optId(j, 'bos_token_id'),
      eosTokenId: optId(j, 'eos_token_id'),
      padTokenId: optId(j, 'pad_token_id'),
    };
    if (j.activation_function !== undefined && j.activation_function !== 'gelu_new' && j.activation_function !== 'gelu_pytorch_tanh')
      throw new ConfigError(file, 'activation_function', `"${String(j.activation_function)}" is not supported (gelu_new)`);
  } else {
    const C = num(j, file, 'hidden_size');
    const H = num(j, file, 'num_attention_heads');
    const sw = j.sliding_window;
    const useSw = arch === 'mistral' || (arch === 'qwen2' && j.use_sliding_window === true);
    cfg = {
      arch,
      vocabSize: num(j, file, 'vocab_size'),
      hiddenSize: C,
      numLayers: num(j, file, 'num_hidden_layers'),
      numHeads: H,
      numKvHeads: num(j, file, 'num_key_value_heads', H),
      headDim: num(j, file, 'head_dim', C / H),
      intermediateSize: num(j, file, 'intermediate_size'),
      maxPositions: num(j, file, 'max_position_embeddings'),
      normEps: num(j, file, 'rms_norm_eps', 1e-6),
      ropeTheta: num(j, file, 'rope_theta', 10000),
      slidingWindow: useSw && typeof sw === 'number' ? sw : null,
      tieEmbeddings: j.tie_word_embeddings === true,
      numExperts: arch === 'mixtral' ? num(j, file, 'num_local_experts') : 0,
      expertsPerToken: arch === 'mixtral' ? num(j, file, 'num_experts_per_tok') : 0,
      bosTokenId: optId(j, 'bos_token_id'),
      eosTokenId: optId(j, 'eos_token_id'),
      padTokenId: optId(j, 'pad_token_id'),
    };
    if (j.rope_scaling !== undefined && j.rope_scaling !== null)
      throw new ConfigError(file, 'rope_scaling', 'is not supported yet (only plain RoPE)');
    const act = j.hidden_act;
    if (act !== undefined && act !== 'silu') throw new ConfigError(file, 'hidden_act', `"${String(act)}" is not supported (silu)`);
  }
  validateConfig(cfg, file);
  return cfg;
}

export function validateConfig(c: ModelConfig, file = 'config'): void {
  const pos = (k: keyof ModelConfig) => {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(file, String(k), `must be a positive integer, got ${String(v)}`);
  };
  (['vocabSize', 'hiddenSize', 'numLayers', 'numHeads', 'numKvHeads', 'headDim', 'intermediateSize', 'maxPositions'] as const).forEach(pos);
  if (c.numHeads % c.numKvHeads !== 0) throw new ConfigError(file, 'num_key_value_heads', `(${c.numKvHeads}) must divide num_attention_heads (${c.numHeads})`);
  if (c.arch === 'gpt2' && c.headDim * c.numHeads !== c.hiddenSize) throw new ConfigError(file, 'n_head', 'must divide n_embd');
  if (c.arch !== 'gpt2' && c.headDim % 2 !== 0) throw new ConfigError(file, 'head_dim', 'must be even for RoPE');
  if (c.arch === 'mixtral' && (c.expertsPerToken < 1 || c.expertsPerToken > c.numExperts))
    throw new ConfigError(file, 'num_experts_per_tok', `must be in 1..num_local_experts (${c.numExperts})`);
}

/** Write an HF config.json object with the keys transformers expects for this architecture. */
export function configToHF(c: ModelConfig): Json {
  const ids = { bos_token_id: c.bosTokenId, eos_token_id: c.eosTokenId, pad_token_id: c.padTokenId };
  if (c.arch === 'gpt2') {
    return {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      vocab_size: c.vocabSize,
      n_embd: c.hiddenSize,
      n_layer: c.numLayers,
      n_head: c.numHeads,
      n_inner: c.intermediateSize,
      n_positions: c.maxPositions,
      n_ctx: c.maxPositions,
      layer_norm_epsilon: c.normEps,
      activation_function: 'gelu_new',
      resid_pdrop: 0,
      embd_pdrop: 0,
      attn_pdrop: 0,
      tie_word_embeddings: c.tieEmbeddings,
      torch_dtype: 'float32',
      ...ids,
    };
  }
  const names: Record<Exclude<Arch, 'gpt2'>, string> = {
    llama: 'LlamaForCausalLM',
    mistral: 'MistralForCausalLM',
    qwen2: 'Qwen2ForCausalLM',
    mixtral: 'MixtralForCausalLM',
  };
  const out: Json = {
    architectures: [names[c.arch]],
    model_type: c.arch,
    vocab_size: c.vocabSize,
    hidden_size: c.hiddenSize,
    num_hidden_layers: c.numLayers,
    num_attention_heads: c.numHeads,
    num_key_value_heads: c.numKvHeads,
    head_dim: c.headDim,
    intermediate_size: c.intermediateSize,
    max_position_embeddings: c.maxPositions,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    hidden_act: 'silu',
    attention_dropout: 0,
    tie_word_embeddings: c.tieEmbeddings,
    torch_dtype: 'float32',
    ...ids,
  };
  if (c.arch === 'mistral' || c.arch === 'mixtral') out.sliding_window = c.slidingWindow;
  if (c.arch === 'qwen2') {
    out.use_sliding_window = c.slidingWindow !== null;
    out.sliding_window = c.slidingWindow ?? c.maxPositions;
  }
  if (c.arch === 'mixtral') {
    out.num_local_experts = c.numExperts;
    out.num_experts_per_tok = c.expertsPerToken;
    out.router_aux_loss_coef = 0.02;
  }
  return out;
}

/** A small config for tests and the study; overrides win. */
export function tinyConfig(arch: Arch, o: Partial<ModelConfig> = {}): ModelConfig {
  const C = o.hiddenSize ?? 32;
  const H = o.numHeads ?? 4;
  const cfg: ModelConfig = {
    arch,
    vocabSize: 64,
    hiddenSize: C,
    numLayers: 2,
    numHeads: H,
    numKvHeads: arch === 'gpt2' ? H : H,
    headDim: C / H,
    intermediateSize: arch === 'gpt2' ? 4 * C : 2 * C + 8,
    maxPositions: 64,
    normEps: arch === 'gpt2' ? 1e-5 : 1e-6,
    ropeTheta: arch === 'gpt2' ? 0 : 10000,
    slidingWindow: arch === 'mistral' ? 4 : null,
    tieEmbeddings: arch === 'gpt2',
    numExperts: arch === 'mixtral' ? 4 : 0,
    expertsPerToken: arch === 'mixtral' ? 2 : 0,
    bosTokenId: null,
    eosTokenId: null,
    padTokenId: null,
    ...o,
  };
  validateConfig(cfg, 'tinyConfig');
  return cfg;
}

/** Parameter count of a config, without materializing it. */
export function paramCount(c: ModelConfig): number {
  const t = traits(c);
  const C = c.hiddenSize, D = c.headDim, H = c.numHeads, K = c.numKvHeads, I = c.intermediateSize;
  const norm = t.layerNorm ? 2 * C : C;
  const attn = C * (H + 2 * K) * D + (t.qkvBias ? (H + 2 * K) * D : 0) + H * D * C + (t.outBias ? C : 0);
  const dense = t.geluMlp ? C * I + I + I * C + C : 3 * C * I;
  const mlp = t.moe ? C * c.numExperts + c.numExperts * 3 * C * I : dense;
  const layer = 2 * norm + attn + mlp;
  const emb = c.vocabSize * C + (t.learnedPositions ? c.maxPositions * C : 0);
  const head = c.tieEmbeddings ? 0 : c.vocabSize * C;
  return emb + c.numLayers * layer + norm + head;
}

/** Shapes of every leaf for a config: the single source of truth used by init, loading and checks. */
export function paramShapes(c: ModelConfig): ParamTree<number[]> {
  const t = traits(c);
  const C = c.hiddenSize, D = c.headDim, H = c.numHeads, K = c.numKvHeads, I = c.intermediateSize, E = c.numExperts;
  const norm = (): Norm<number[]> => (t.layerNorm ? { w: [C], b: [C] } : { w: [C] });
  const layer = (): LayerParams<number[]> => {
    const l: LayerParams<number[]> = { ln1: norm(), wqkv: [C, (H + 2 * K) * D], wo: [H * D, C], ln2: norm() };
    if (t.qkvBias) l.bqkv = [(H + 2 * K) * D];
    if (t.outBias) l.bo = [C];
    if (t.geluMlp) Object.assign(l, { wfc: [C, I], bfc: [I], wproj: [I, C], bproj: [C] });
    else if (t.moe) Object.assign(l, { router: [C, E], egate: [E, C, I], eup: [E, C, I], edown: [E, I, C] });
    else Object.assign(l, { wgate: [C, I], wup: [C, I], wdown: [I, C] });
    return l;
  };
  const p: ParamTree<number[]> = { wte: [c.vocabSize, C], layers: Array.from({ length: c.numLayers }, layer), lnf: norm() };
  if (t.learnedPositions) p.wpe = [c.maxPositions, C];
  if (!c.tieEmbeddings) p.lmHead = [c.vocabSize, C]; // as HF's lm_head and like wte: see decoder.ts lmHead
  return p;
}
