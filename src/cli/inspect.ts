import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { configFromHF, paramCount, traits } from '../model/config.js';
import { parseFlags, need } from './args.js';

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv, { model: { type: 'string' }, json: { type: 'boolean', default: false } });
  const dir = need(f.model, 'model');
  const file = join(dir, 'config.json');
  const raw = await readFile(file, 'utf-8').catch(() => {
    throw new Error(`${file}: cannot be read (is ${dir} a model directory?)`);
  });
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(raw);
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  const c = configFromHF(j, file);
  const t = traits(c);
  const info = {
    architecture: c.arch,
    parameters: paramCount(c),
    layers: c.numLayers,
    hidden: c.hiddenSize,
    heads: c.numHeads,
    kvHeads: c.numKvHeads,
    headDim: c.headDim,
    intermediate: c.intermediateSize,
    vocab: c.vocabSize,
    context: c.maxPositions,
    positions: t.learnedPositions ? 'learned' : `rope (theta ${c.ropeTheta})`,
    norm: t.layerNorm ? 'layernorm' : 'rmsnorm',
    mlp: t.moe ? `moe (${c.numExperts} experts, top-${c.expertsPerToken})` : t.geluMlp ? 'gelu' : 'swiglu',
    slidingWindow: c.slidingWindow,
    tiedEmbeddings: c.tieEmbeddings,
    float32MiB: +((paramCount(c) * 4) / 2 ** 20).toFixed(2),
  };
  if (f.json) console.log(JSON.stringify(info));
  else for (const [k, v] of Object.entries(info)) console.log(`${k.padEnd(15)} ${v}`);
}
