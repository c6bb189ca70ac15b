import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveModelRef } from '../formats/hub.js';
import { configFromHF, paramCount, traits } from '../model/config.js';
import { command, parse } from './args.js';

export const cli = () =>
  command('inspect', 'show a model directory: architecture, sizes, parameter count; checks the weight files against config.json')
    .requiredOption('--model <dir>', 'model directory (config.json, *.safetensors)')
    .option('--json', 'print one JSON object');

export async function main(argv: string[]): Promise<void> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<{ model: string; json: boolean }>();
  const dir = resolveModelRef(f.model); // a pulled hub id (org/name) works too
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
