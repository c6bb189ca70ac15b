import { LM } from '../model/lm.js';
import { parseFlags, need } from './args.js';

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv, {
    model: { type: 'string' },
    prompt: { type: 'string', default: '' },
    'max-new-tokens': { type: 'number', default: 64 },
    temperature: { type: 'number', default: 1 },
    'top-k': { type: 'number', default: 0 },
    'top-p': { type: 'number', default: 1 },
    stop: { type: 'string' },
    seed: { type: 'number', default: 0 },
    n: { type: 'number', default: 1 },
    json: { type: 'boolean', default: false },
    device: { type: 'string' },
  });
  const lm = await LM.load(need(f.model, 'model'), { device: f.device });
  const stream = f.n === 1 && !f.json;
  if (stream) process.stdout.write(f.prompt);
  const out = await lm.generate(Array(f.n).fill(f.prompt), {
    maxNewTokens: f['max-new-tokens'],
    temperature: f.temperature,
    topK: f['top-k'],
    topP: f['top-p'],
    stop: f.stop ? [f.stop] : undefined,
    seed: f.seed,
  }, stream ? (_row, d) => process.stdout.write(d) : undefined);
  lm.dispose();
  if (stream) process.stdout.write('\n');
  else if (f.json) for (const g of out) console.log(JSON.stringify(g));
  else out.forEach((g, i) => console.log(`--- sample ${i} (${g.finishReason}, ${g.tokenIds.length} tokens)\n${f.prompt}${g.text}`));
}
