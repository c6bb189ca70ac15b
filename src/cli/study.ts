// `alignlab study`: the DPO-vs-PPO study on its embedded default (SOTU corpus, VADER gold reward).
import { resolve } from 'node:path';
import { resolveStudyConfig } from '../study/config.js';
import { runStudy } from '../study/runner.js';
import { parseFlags } from './args.js';

export async function main(argv: string[]): Promise<void> {
  const f = parseFlags(argv, {
    config: { type: 'string', help: 'YAML/JSON overriding study defaults' },
    quick: { type: 'boolean', default: false, help: 'about 3 minutes on 2 cores: one seed, fewer settings, shorter runs' },
    device: { type: 'string', help: 'wasm (default) or webgpu' },
    out: { type: 'string', help: 'output directory (default runs/study, or runs/study-quick with --quick)' },
    cache: { type: 'string', help: 'cache for the processed corpus and base models (default .alignlab/cache)' },
  });
  const config = resolveStudyConfig({ file: f.config, quick: f.quick });
  const out = resolve(f.out ?? (f.quick ? 'runs/study-quick' : 'runs/study'));
  const t = performance.now();
  const { report, study } = await runStudy({
    config,
    out,
    cacheDir: resolve(f.cache ?? '.alignlab/cache'),
    device: f.device,
    command: ['alignlab', 'study', ...argv].join(' '),
  });
  const minutes = (performance.now() - t) / 60000;
  console.log('');
  if (report.recommendation) console.log(report.recommendation.paragraph);
  console.log(`\n${study.runs.length} runs in ${minutes.toFixed(1)} min → ${out}/report.html, ${out}/report.md`);
}
