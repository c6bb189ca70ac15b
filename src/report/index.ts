// The study report: an analysed study (handed over by src/cli/study-report.ts) → tables and charts → report.md +
// report.html (+ the charts as SVG and as Vega-Lite JSON beside them). Nothing here analyses anything.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { version as vegaVersion } from 'vega';
import { version as vegaLiteVersion } from 'vega-lite';
import { writeFileAtomic } from '../formats/atomic.js';
import { fluencySpec, frontierSpec, learningCurvesSpec, matchedKlSpec, renderSvg, type VlSpec } from './charts.js';
import { renderHtml, renderMarkdown, type Chart, type ReportContent } from './render.js';
import type { StudyReportInput } from './study-input.js';
import { complexityTable, costTable, criteriaTable, matchedKlTable, perMethodTable, provenanceTable, samplesTable, stabilityTable } from './tables.js';

export type { StudyReportInput } from './study-input.js';

export interface ReportOptions {
  /** Samples shown per method (default 3). */
  samplesPerMethod?: number;
  /** Clock for the "rendered at" line (tests pass a fixed one). */
  now?: () => Date;
}

export interface Report {
  markdown: string;
  html: string;
  specs: Record<string, VlSpec>;
  svgs: Record<string, string>;
}

const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;

/** The study's name, followed by "A vs B" unless the name already says so. */
export function reportTitle(name: string | undefined, a: string, b: string): string {
  const vs = `${a} vs ${b}`;
  if (!name) return vs;
  return name.toLowerCase().includes(vs.toLowerCase()) ? name : `${name}: ${vs}`;
}

/** Render both reports in memory. */
export async function buildReport(input: StudyReportInput, o: ReportOptions = {}): Promise<Report> {
  const { a, b, analysis } = input;
  const label = (m: string) => input.labels[m] ?? m;
  const specs: Record<string, VlSpec> = {
    frontier: frontierSpec(input),
    fluency: fluencySpec(input),
    'matched-kl': matchedKlSpec(input),
    'learning-curves': learningCurvesSpec(input),
  };
  const svgs: Record<string, string> = {};
  for (const [id, spec] of Object.entries(specs)) svgs[id] = await renderSvg(spec);
  const charts: Chart[] = [
    { id: 'frontier', title: 'Reward vs KL frontier', caption: 'Every evaluated checkpoint (faint points) and each method\'s frontier: the best reward at KL ≤ budget (steps), starting at the base policy (KL 0). Dashed: base reward and the headline KL budget.', svg: svgs.frontier! },
    { id: 'fluency', title: 'Fluency vs KL', caption: `Beside the frontier: how fluent each checkpoint's samples are, against the same KL axis. ${input.degenerationRule}.`, svg: svgs.fluency! },
    { id: 'matched-kl', title: 'Reward at matched KL', caption: 'Each seed\'s best checkpoint within each KL budget (chosen on one half of the held-out prompts, scored on the other, when per-prompt rewards exist); mean over seeds with a 95% bootstrap band (resampling seeds and, where recorded, held-out prompts).', svg: svgs['matched-kl']! },
    { id: 'learning-curves', title: 'Learning curves', caption: 'Held-out gold reward against training step, per method and setting: mean over seeds ± 1 sd.', svg: svgs['learning-curves']! },
  ];
  const now = (o.now ?? (() => new Date()))();
  const extra = { 'Report rendered': `${now.toISOString()} with vega ${vegaVersion}, vega-lite ${vegaLiteVersion}` };
  const p = input.provenance;
  const content: ReportContent = {
    title: reportTitle(input.name, label(a), label(b)),
    subtitle: `Gold reward: VADER compound score of continuations of ${analysis.base.n > 0 ? `${analysis.base.n} ` : ''}held-out sentence prefixes. ${plural(input.runs, 'run')} over ${plural(p.seeds.length, 'seed')} on ${p.device}; started ${p.startedAt}.`,
    recommendation: input.recommendation?.paragraph ?? `No recommendation: the study has no runs of ${[a, b].filter((m) => !analysis.byMethod[m]).map(label).join(' and ')}.`,
    rules: input.rules,
    criteria: criteriaTable(input),
    charts,
    tables: [perMethodTable(input), matchedKlTable(input), stabilityTable(input), costTable(input), complexityTable(input), samplesTable(input, o.samplesPerMethod ?? 3), provenanceTable(input, extra)],
    config: p.config === undefined ? undefined : JSON.stringify(p.config, null, 2),
  };
  return { markdown: renderMarkdown(content), html: renderHtml(content), specs, svgs };
}

export interface WrittenReport extends Report {
  files: { markdown: string; html: string; specs: string[]; svgs: string[] };
}

const writeText = (file: string, text: string) => writeFileAtomic(file, (w) => w(Buffer.from(text, 'utf-8')));

/** Write report.md, report.html, <chart>.svg and <chart>.vl.json into outDir. Returns the report and the paths written. */
export async function writeReport(input: StudyReportInput, outDir: string, o: ReportOptions = {}): Promise<WrittenReport> {
  const r = await buildReport(input, o);
  mkdirSync(outDir, { recursive: true });
  const files = { markdown: join(outDir, 'report.md'), html: join(outDir, 'report.html'), specs: [] as string[], svgs: [] as string[] };
  for (const [id, spec] of Object.entries(r.specs)) {
    const f = join(outDir, `${id}.vl.json`);
    writeText(f, JSON.stringify(spec, null, 2) + '\n');
    files.specs.push(f);
  }
  for (const [id, svg] of Object.entries(r.svgs)) {
    const f = join(outDir, `${id}.svg`);
    writeText(f, svg);
    files.svgs.push(f);
  }
  writeText(files.markdown, r.markdown);
  writeText(files.html, r.html);
  return { ...r, files };
}
