// `alignlab init`: a random model directory of any supported architecture, with a byte-level
// tokenizer, so every command can be tried without downloading anything.
import { ARCHS, tinyConfig, type Arch } from '../formats/config.js';
import { initHostParams } from '../model/params.js';
import { saveHFDir } from '../formats/hf.js';
import { byteLevelTokenizerJson } from '../formats/tokenizer.js';
import { command, integer, parse, positiveInteger, UsageError } from './args.js';

export const cli = () =>
  command('init', 'create a small random model directory with a byte-level tokenizer, to try the other commands on')
    .requiredOption('--out <dir>', 'where to write the model directory')
    .option('--arch <arch>', `architecture: ${ARCHS.join(' | ')}`, 'llama')
    .option('--layers <n>', 'decoder layers', positiveInteger, 2)
    .option('--hidden <n>', 'hidden size', positiveInteger, 64)
    .option('--heads <n>', 'attention heads', positiveInteger, 4)
    .option('--kv-heads <n>', 'key/value heads (default: --heads)', positiveInteger)
    .option('--context <n>', 'context length in tokens', positiveInteger, 256)
    .option('--seed <n>', 'seed of the random weights', integer, 0);

interface Flags {
  out: string;
  arch: string;
  layers: number;
  hidden: number;
  heads: number;
  kvHeads?: number;
  context: number;
  seed: number;
}

export async function main(argv: string[]): Promise<void> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<Flags>();
  if (!(ARCHS as readonly string[]).includes(f.arch)) throw new UsageError(`--arch must be one of ${ARCHS.join(', ')}`);
  const arch = f.arch as Arch;
  const specials = ['<|endoftext|>'];
  const cfg = tinyConfig(arch, {
    vocabSize: 256 + specials.length,
    numLayers: f.layers,
    hiddenSize: f.hidden,
    numHeads: f.heads,
    numKvHeads: f.kvHeads ?? f.heads,
    headDim: f.hidden / f.heads,
    intermediateSize: arch === 'gpt2' ? 4 * f.hidden : Math.round((8 * f.hidden) / 3),
    maxPositions: f.context,
    slidingWindow: arch === 'mistral' ? Math.min(f.context, 64) : null,
    eosTokenId: 256,
    bosTokenId: 256,
  });
  const out = f.out;
  await saveHFDir(out, {
    config: cfg,
    params: initHostParams(cfg, f.seed),
    tokenizerJson: byteLevelTokenizerJson(specials),
    tokenizerConfig: { bos_token: specials[0], eos_token: specials[0], model_max_length: f.context },
  });
  console.log(`wrote a random ${arch} model to ${out}`);
}
