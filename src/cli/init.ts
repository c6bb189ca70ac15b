// `alignlab init`: a random model directory of any supported architecture, with a byte-level
// tokenizer, so every command can be tried without downloading anything.
import { ARCHS, tinyConfig, type Arch } from '../model/config.js';
import { initHostParams } from '../model/params.js';
import { saveHFDir } from '../formats/hf.js';
import { byteLevelTokenizerJson } from '../formats/tokenizer.js';
import { parseFlags, need, UsageError } from './args.js';

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv, {
    arch: { type: 'string', default: 'llama' },
    out: { type: 'string' },
    layers: { type: 'number', default: 2 },
    hidden: { type: 'number', default: 64 },
    heads: { type: 'number', default: 4 },
    'kv-heads': { type: 'number' },
    context: { type: 'number', default: 256 },
    seed: { type: 'number', default: 0 },
  });
  if (!(ARCHS as readonly string[]).includes(f.arch)) throw new UsageError(`--arch must be one of ${ARCHS.join(', ')}`);
  const arch = f.arch as Arch;
  const specials = ['<|endoftext|>'];
  const cfg = tinyConfig(arch, {
    vocabSize: 256 + specials.length,
    numLayers: f.layers,
    hiddenSize: f.hidden,
    numHeads: f.heads,
    numKvHeads: f['kv-heads'] ?? f.heads,
    headDim: f.hidden / f.heads,
    intermediateSize: arch === 'gpt2' ? 4 * f.hidden : Math.round((8 * f.hidden) / 3),
    maxPositions: f.context,
    slidingWindow: arch === 'mistral' ? Math.min(f.context, 64) : null,
    eosTokenId: 256,
    bosTokenId: 256,
  });
  const out = need(f.out, 'out');
  await saveHFDir(out, {
    config: cfg,
    params: initHostParams(cfg, f.seed),
    tokenizerJson: byteLevelTokenizerJson(specials),
    tokenizerConfig: { bos_token: specials[0], eos_token: specials[0], model_max_length: f.context },
  });
  console.log(`wrote a random ${arch} model to ${out}`);
}
