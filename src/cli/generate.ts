// `alignlab generate --model DIR --prompt TEXT`: sample text. Sampling flags are checked as the server checks
// them; the default length is clamped to what the model's context leaves after the prompt (and says so); without
// --seed a fresh seed is drawn and printed, so any sample can be repeated.
import { randomInt } from 'node:crypto';
import { command, integer, parse, positiveInteger, ranged, UsageError } from './args.js';

const DEFAULT_MAX_NEW_TOKENS = 64;

export const cli = () =>
  command('generate', 'sample text from a model')
    .requiredOption('--model <dir>', 'model directory (config.json, *.safetensors, tokenizer.json)')
    .option('--prompt <text>', 'text to continue', '')
    .option('--max-new-tokens <n>', `tokens to generate at most (default ${DEFAULT_MAX_NEW_TOKENS}, or what the context leaves after the prompt)`, positiveInteger)
    .option('--temperature <t>', '0 = greedy; in 0..2', ranged('in 0..2', (n) => n >= 0 && n <= 2), 1)
    .option('--top-k <k>', 'keep the k most likely tokens (0 or -1 = off)', ranged('an integer >= -1', (n) => n >= -1, integer), 0)
    .option('--top-p <p>', 'nucleus sampling: in (0, 1], 1 = off', ranged('in (0, 1]', (n) => n > 0 && n <= 1), 1)
    .option('--stop <text>', 'stop when the text contains this string')
    .option('--seed <n>', 'sampling seed (default: a fresh one, printed to stderr)', integer)
    .option('--n <n>', 'number of samples', positiveInteger, 1)
    .option('--json', 'one JSON object per sample')
    .option('--device <device>', 'engine device: wasm | webgpu | cpu');

interface Flags {
  model: string;
  prompt: string;
  maxNewTokens?: number;
  temperature: number;
  topK: number;
  topP: number;
  stop?: string;
  seed?: number;
  n: number;
  json?: boolean;
  device?: string;
}

/** The number of new tokens: the flag's, else the default clamped to the context left after the prompt. */
export function maxNewTokens(given: number | undefined, promptTokens: number, context: number): { n: number; note?: string } {
  const room = context - promptTokens;
  if (room < 1) throw new UsageError(`the prompt is ${promptTokens} tokens; the model's context is ${context}, which leaves no room to generate`);
  if (given !== undefined) return { n: given };
  if (DEFAULT_MAX_NEW_TOKENS <= room) return { n: DEFAULT_MAX_NEW_TOKENS };
  return { n: room, note: `--max-new-tokens: the default ${DEFAULT_MAX_NEW_TOKENS} is clamped to ${room} (the model's ${context} positions minus the prompt's ${promptTokens} tokens)` };
}

export async function main(argv: string[]): Promise<void> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<Flags>();
  const { LM } = await import('../model/lm.js');
  const lm = await LM.load(f.model, { device: f.device });
  try {
    const max = maxNewTokens(f.maxNewTokens, lm.encode(f.prompt).length, lm.cfg.maxPositions);
    if (max.note) process.stderr.write(max.note + '\n');
    let seed = f.seed;
    if (seed === undefined && f.temperature > 0) {
      seed = randomInt(2 ** 31);
      process.stderr.write(`seed ${seed} (pass --seed ${seed} to repeat this sample)\n`);
    }
    const stream = f.n === 1 && !f.json;
    if (stream) process.stdout.write(f.prompt);
    const out = await lm.generate(
      Array(f.n).fill(f.prompt),
      { maxNewTokens: max.n, temperature: f.temperature, topK: f.topK > 0 ? f.topK : 0, topP: f.topP, stop: f.stop ? [f.stop] : undefined, seed: seed ?? 0 },
      stream ? (_row, d) => process.stdout.write(d) : undefined,
    );
    if (stream) process.stdout.write('\n');
    else if (f.json) for (const g of out) console.log(JSON.stringify(g));
    else out.forEach((g, i) => console.log(`--- sample ${i} (${g.finishReason}, ${g.tokenIds.length} tokens)\n${f.prompt}${g.text}`));
  } finally {
    lm.dispose();
  }
}
