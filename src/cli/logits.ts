import { LM } from '../model/lm.js';
import { parseFlags, need, UsageError } from './args.js';

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv, { model: { type: 'string' }, ids: { type: 'string' }, text: { type: 'string' }, json: { type: 'boolean', default: false }, device: { type: 'string' } });
  const lm = await LM.load(need(f.model, 'model'), { device: f.device });
  let ids: number[];
  if (f.ids !== undefined) {
    ids = f.ids.split(',').map((s) => {
      const n = Number(s.trim());
      if (!Number.isInteger(n) || n < 0 || n >= lm.cfg.vocabSize) throw new UsageError(`--ids: "${s}" is not a token id in 0..${lm.cfg.vocabSize - 1}`);
      return n;
    });
  } else if (f.text !== undefined) ids = lm.encode(f.text);
  else throw new UsageError('give --ids 1,2,3 or --text "..."');
  if (ids.length === 0) throw new UsageError('--ids is empty');
  const V = lm.cfg.vocabSize, flat = await lm.logits(ids);
  const rows = ids.map((_, t) => Array.from(flat.subarray(t * V, (t + 1) * V)));
  lm.dispose();
  if (f.json) process.stdout.write(JSON.stringify({ ids, logits: rows }) + '\n');
  else
    rows.forEach((r, t) => {
      const top = r.map((v, i) => [v, i] as const).sort((a, b) => b[0] - a[0]).slice(0, 5);
      console.log(`${t}\t${ids[t]}\ttop: ${top.map(([v, i]) => `${i}:${v.toFixed(3)}`).join(' ')}`);
    });
}
