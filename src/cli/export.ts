import { loadHFDir } from '../formats/hf.js';
import { writeGGUF } from '../formats/gguf.js';
import { parseFlags, need, UsageError } from './args.js';

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv, { model: { type: 'string' }, out: { type: 'string' } });
  const [format] = f._;
  if (format !== 'gguf') throw new UsageError(`export format must be "gguf" (usage: alignlab export gguf --model DIR --out FILE.gguf)`);
  const dir = need(f.model, 'model'), out = need(f.out, 'out');
  const m = await loadHFDir(dir);
  const r = writeGGUF(out, { config: m.config, params: m.params, tokenizerJson: m.tokenizer!.json, tokenizerConfig: m.tokenizer!.config });
  for (const w of r.warnings) console.error(`warning: ${w}`);
  console.log(`wrote ${out} (architecture ${r.arch}, f32)`);
}
