// The study report: analysis → recommendation → tables and charts → report.md + report.html (+ the charts as
// SVG and as Vega-Lite JSON beside them). `writeReport` is what `alignlab study` calls at the end.

import { mkdirSync, writeFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { version as vegaVersion } from 'vega';
import { version as vegaLiteVersion } from 'vega-lite';
import type { AnalysisOptions, StudyAnalysis } from '../study/analysis.js';
import { analyzeStudy } from '../study/analysis.js';
import type { Recommendation, RecommendOptions } from '../study/recommend.js';
import { recommend } from '../study/recommend.js';
import type { Method, StudyResults } from '../study/types.js';
import { METHOD_LABELS, toJson } from '../study/types.js';
import { frontierSpec, learningCurvesSpec, matchedKlSpec, renderSvg, type VlSpec } from './charts.js';
import { renderHtml, renderMarkdown, type Chart, type ReportContent } from './render.js';
import { complexityTable, costTable, criteriaTable, matchedKlTable, perMethodTable, provenanceTable, samplesTable, stabilityTable } from './tables.js';

export interface ReportOptions {
  /** The two methods the headline table and recommendation compare (default dpo vs ppo). */
  a?: Method;
  b?: Method;
  analysis?: AnalysisOptions;
  recommend?: RecommendOptions;
  /** Samples shown per method (default 3). */
  samplesPerMethod?: number;
  /** Clock for the "rendered at" line (tests pass a fixed one). */
  now?: () => Date;
}

export interface Report {
  analysis: StudyAnalysis;
  recommendation: Recommendation | null;
  markdown: string;
  html: string;
  specs: Record<string, VlSpec>;
  svgs: Record<string, string>;
}

const RULES =
  'How the verdicts are decided: final reward — the 95% bootstrap CI of the difference at the matched KL excludes 0 ' +
  '(the bootstrap resamples seeds and, when per-prompt rewards are recorded, the held-out prompts, paired across methods; ' +
  'with one seed and no per-prompt rewards there is no interval and no test); ' +
  'stability — fewer failed runs, else less seed-to-seed spread by an F test at p < 0.05; cost — at least 1.2× less time to one model; ' +
  'complexity — fewer on most of models in memory, hyperparameters and loss lines; overall — the final-reward winner, else the method winning more of the other three.';

const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;

/** The study's name, followed by "A vs B" unless the name already says so. */
export function reportTitle(name: string | undefined, a: Method, b: Method): string {
  const vs = `${METHOD_LABELS[a]} vs ${METHOD_LABELS[b]}`;
  if (!name) return vs;
  return name.toLowerCase().includes(vs.toLowerCase()) ? name : `${name}: ${vs}`;
}

/** Analyse a study and render both reports in memory. */
export async function buildReport(study: StudyResults, o: ReportOptions = {}): Promise<Report> {
  const a = o.a ?? 'dpo', b = o.b ?? 'ppo';
  const analysis = analyzeStudy(study, { compare: [[a, b]], ...o.analysis });
  const has = analysis.byMethod[a] && analysis.byMethod[b];
  const recommendation = has ? recommend(analysis, a, b, o.recommend) : null;
  const specs: Record<string, VlSpec> = {
    frontier: frontierSpec(study, analysis),
    'matched-kl': matchedKlSpec(analysis),
    'learning-curves': learningCurvesSpec(analysis),
  };
  const svgs: Record<string, string> = {};
  for (const [id, spec] of Object.entries(specs)) svgs[id] = await renderSvg(spec);
  const charts: Chart[] = [
    { id: 'frontier', title: 'Reward vs KL frontier', caption: 'Every evaluated checkpoint (faint points) and each method\'s upper-left Pareto frontier (lines), anchored at the base policy (KL 0). Dashed: base reward and the matched KL budget.', svg: svgs.frontier! },
    { id: 'matched-kl', title: 'Reward at matched KL', caption: 'Each seed\'s frontier interpolated on the shared KL grid; mean over seeds with a 95% bootstrap band (resampling seeds and, where recorded, held-out prompts).', svg: svgs['matched-kl']! },
    { id: 'learning-curves', title: 'Learning curves', caption: 'Held-out gold reward against training step, per method and setting: mean over seeds ± 1 sd.', svg: svgs['learning-curves']! },
  ];
  const now = (o.now ?? (() => new Date()))();
  const extra = { 'Report rendered': `${now.toISOString()} with vega ${vegaVersion}, vega-lite ${vegaLiteVersion}` };
  const content: ReportContent = {
    title: reportTitle(study.name, a, b),
    subtitle: `Gold reward: VADER compound score of continuations of ${study.base.n > 0 ? `${study.base.n} ` : ''}held-out sentence prefixes. ${plural(study.runs.length, 'run')} over ${plural(study.provenance.seeds.length, 'seed')} on ${study.provenance.device}; started ${study.provenance.startedAt}.`,
    recommendation: recommendation?.paragraph ?? `No recommendation: the study has no runs of ${[a, b].filter((m) => !analysis.byMethod[m]).map((m) => METHOD_LABELS[m]).join(' and ')}.`,
    rules: RULES,
    criteria: criteriaTable(analysis, recommendation, a, b),
    charts,
    tables: [perMethodTable(analysis), matchedKlTable(analysis), stabilityTable(analysis), costTable(analysis), complexityTable(analysis), samplesTable(study, analysis, o.samplesPerMethod ?? 3), provenanceTable(study, analysis, extra)],
    config: study.provenance.config === undefined ? undefined : JSON.stringify(study.provenance.config, null, 2),
  };
  return { analysis, recommendation, markdown: renderMarkdown(content), html: renderHtml(content), specs, svgs };
}

export interface WrittenReport extends Report {
  files: { markdown: string; html: string; analysis: string; specs: string[]; svgs: string[] };
}

function writeAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/**
 * Write report.md, report.html, analysis.json, <chart>.svg and <chart>.vl.json into outDir.
 * Returns the report and the paths written.
 */
export async function writeReport(study: StudyResults, outDir: string, o: ReportOptions = {}): Promise<WrittenReport> {
  const r = await buildReport(study, o);
  mkdirSync(outDir, { recursive: true });
  const files = { markdown: join(outDir, 'report.md'), html: join(outDir, 'report.html'), analysis: join(outDir, 'analysis.json'), specs: [] as string[], svgs: [] as string[] };
  for (const [id, spec] of Object.entries(r.specs)) {
    const f = join(outDir, `${id}.vl.json`);
    writeAtomic(f, JSON.stringify(spec, null, 2) + '\n');
    files.specs.push(f);
  }
  for (const [id, svg] of Object.entries(r.svgs)) {
    const f = join(outDir, `${id}.svg`);
    writeAtomic(f, svg);
    files.svgs.push(f);
  }
  writeAtomic(files.analysis, toJson({ analysis: r.analysis, recommendation: r.recommendation }, 2) + '\n');
  writeAtomic(files.markdown, r.markdown);
  writeAtomic(files.html, r.html);
  return { ...r, files };
}
