import { loadHFDir } from '../formats/hf.js';
import { writeGGUF } from '../formats/gguf.js';
import { command, parse, UsageError } from './args.js';

export const cli = () =>
  command('export', 'write a model directory as one GGUF file for llama.cpp (f32, with the tokenizer)')
    .argument('<format>', 'the file format: gguf')
    .requiredOption('--model <dir>', 'model directory (config.json, *.safetensors, tokenizer.json)')
    .requiredOption('--out <file>', 'the .gguf file to write (a regular file; an existing one is replaced; a symlink is written through)');

export async function main(argv: string[]): Promise<void> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const [format] = cmd.args;
  if (format !== 'gguf') throw new UsageError(`export format must be "gguf", got "${format}" (usage: alignlab export gguf --model DIR --out FILE.gguf)`);
  const { model: dir, out } = cmd.opts<{ model: string; out: string }>();
  const m = await loadHFDir(dir);
  const r = writeGGUF(out, { config: m.config, params: m.params, tokenizerJson: m.tokenizer!.json, tokenizerConfig: m.tokenizer!.config });
  for (const w of r.warnings) console.error(`warning: ${w}`);
  console.log(`wrote ${out} (architecture ${r.arch}, f32)`);
}
