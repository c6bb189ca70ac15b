// `alignlab study`: the DPO-vs-PPO study on its embedded default (SOTU corpus, VADER gold reward).
// Ctrl-C / SIGTERM stop it at once with exit 130 / 143: each finished run is already written (atomically)
// under <out>/runs, and running the same command again keeps those runs and continues.
import { resolve } from 'node:path';
import { resolveStudyConfig } from '../study/config.js';
import { runStudy } from '../study/runner.js';
import { writeReport } from './study-report.js';
import { command, parse } from './args.js';
import { interrupts } from './signals.js';
import { DASHBOARD_HINT } from './dashboard.js';

export const cli = () =>
  command('study', 'run the DPO-vs-PPO study and write its report (finished runs are kept; run again to continue)')
    .option('--config <file>', 'YAML/JSON overriding study defaults')
    .option('--quick', 'about 3 minutes on 2 cores: one seed, fewer settings, shorter runs')
    .option('--device <device>', 'wasm (default) or webgpu')
    .option('--out <dir>', 'output directory (default runs/study, or runs/study-quick with --quick)')
    .option('--cache <dir>', 'cache for the processed corpus and base models (default .alignlab/cache)');

interface Flags {
  config?: string;
  quick?: boolean;
  device?: string;
  out?: string;
  cache?: string;
}

export async function main(argv: string[]): Promise<void> {
  const cmd = cli();
  if (!(await parse(cmd, argv))) return;
  const f = cmd.opts<Flags>();
  const config = resolveStudyConfig({ file: f.config, quick: f.quick });
  const out = resolve(f.out ?? (f.quick ? 'runs/study-quick' : 'runs/study'));
  const t = performance.now();
  console.error(DASHBOARD_HINT);
  const stop = interrupts((sig) => `${sig}: stopping; finished runs are kept in ${out}/runs, run the same command to continue`, { exitAtOnce: true });
  try {
    const { study } = await runStudy({
      config,
      out,
      cacheDir: resolve(f.cache ?? '.alignlab/cache'),
      device: f.device,
      command: ['alignlab', 'study', ...argv].join(' '),
    });
    // The study runs and records; the analysis and the report are written here, above both study/ and report/.
    const report = await writeReport(study, out);
    const minutes = (performance.now() - t) / 60000;
    console.log('');
    if (report.recommendation) console.log(report.recommendation.paragraph);
    console.log(`\n${study.runs.length} runs in ${minutes.toFixed(1)} min → ${out}/report.html, ${out}/report.md`);
  } finally {
    stop.dispose();
  }
}
