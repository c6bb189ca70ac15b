// `alignlab logits --model DIR --ids 1,2,3 [--json]` (or --text "..."): the full float32 logits at every
// position. Token ids need no tokenizer, so --ids works on a model-only directory (no tokenizer.json);
// the tokenizer is read only for --text.
import { command, parse, UsageError } from './args.js';

export const cli = () =>
  command('logits', 'print the full logits at every position of a sequence')
    .requiredOption('--model <dir>', 'model directory (config.json, *.safetensors; tokenizer.json only for --text)')
    .option('--ids <ids>', 'comma-separated token ids, e.g. 1,2,3')
    .option('--text <text>', 'text to tokenize (needs tokenizer.json)')
    .option('--json', 'print {"ids": [...], "logits": [[...], ...]} instead of the top 5 per position')
    .option('--device <device>', 'engine device: wasm | webgpu | cpu');

interface Flags {
  model: string;
  ids?: string;
  text?: string;
  json?: boolean;
  device?: string;
}

export async function main(argv: string[]): Promise<void> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<Flags>();
  if ((f.ids === undefined) === (f.text === undefined)) throw new UsageError('give either --ids 1,2,3 or --text "..."');
  const { ids, flat, V } = f.ids !== undefined ? await fromIds(f.model, f.ids, f.device) : await fromText(f.model, f.text!, f.device);
  const rows = ids.map((_, t) => Array.from(flat.subarray(t * V, (t + 1) * V)));
  if (f.json) process.stdout.write(JSON.stringify({ ids, logits: rows }) + '\n');
  else
    rows.forEach((r, t) => {
      const top = r.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 5);
      console.log(`${t}\t${ids[t]}\ttop: ${top.map(([v, i]) => `${i}:${v.toFixed(3)}`).join(' ')}`);
    });
}

/** --ids: the weights and config only, through the same decoder forward as LM.logits. */
async function fromIds(dir: string, text: string, device?: string) {
  const [{ loadHFDir }, { compile, i32, initEngine, takeF32 }, { forward }, { toDevice }] = await Promise.all([
    import('../formats/hf.js'),
    import('../engine/index.js'),
    import('../model/decoder.js'),
    import('../model/weights.js'),
  ]);
  await initEngine(device);
  const m = await loadHFDir(dir, { tokenizer: 'skip' });
  const cfg = m.config, V = cfg.vocabSize;
  const ids = text.split(',').map((s) => {
    const n = Number(s.trim());
    if (s.trim() === '' || !Number.isInteger(n) || n < 0 || n >= V) throw new UsageError(`--ids: "${s}" is not a token id in 0..${V - 1}`);
    return n;
  });
  if (ids.length > cfg.maxPositions) throw new UsageError(`--ids: ${ids.length} tokens exceed the model's ${cfg.maxPositions} positions`);
  const T = ids.length;
  const fwd = compile((p: Parameters<typeof forward>[0], x: Parameters<typeof forward>[2], pos: Parameters<typeof forward>[3], valid: Parameters<typeof forward>[4]) => forward(p, cfg, x, pos, valid));
  try {
    // A jit-compiled function consumes all its arguments: the device weights are freed by this call.
    const flat = await takeF32(fwd(toDevice(m.params), i32(ids, [1, T]), i32(ids.map((_, j) => j), [1, T]), i32(ids.map(() => 1), [1, T])));
    return { ids, flat, V };
  } finally {
    fwd.dispose();
  }
}

/** --text: the model with its tokenizer. */
async function fromText(dir: string, text: string, device?: string) {
  const { LM } = await import('../model/lm.js');
  const lm = await LM.load(dir, { device });
  try {
    const ids = lm.encode(text);
    return { ids, flat: await lm.logits(ids), V: lm.cfg.vocabSize };
  } finally {
    lm.dispose();
  }
}
