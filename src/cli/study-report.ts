// The study command's last stage: analyse the results, write the recommendation, hand the analysed study to the
// report renderer (src/report), and write analysis.json beside the report. It lives in cli/ because it joins two
// folders that must not import each other: study/ sits below report/ and report/ imports nothing from study/.

import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { writeFileAtomic } from '../formats/atomic.js';
import { buildReport, writeReport as renderReport, type Report, type ReportOptions, type StudyReportInput, type WrittenReport as WrittenFiles } from '../report/index.js';
import { analyzeStudy, verdictJson, type AnalysisOptions, type StudyAnalysis } from '../study/analysis.js';
import { pointsOf } from '../study/frontier.js';
import { recommend, type Recommendation, type RecommendOptions } from '../study/recommend.js';
import { DEGENERATION_RULE, finalReward } from '../study/stability.js';
import type { Method, Run, StudyResults } from '../study/types.js';
import { METHOD_LABELS, toJson } from '../study/types.js';

export interface PublishOptions extends ReportOptions {
  /** The two methods the headline table and recommendation compare (default dpo vs ppo). */
  a?: Method;
  b?: Method;
  analysis?: AnalysisOptions;
  recommend?: RecommendOptions;
}

const RULES =
  'How the verdicts are decided: first, whether each method improved on the base policy at all (reward minus the base\'s significantly above 0 at some KL budget up to the method\'s reach, Holm-corrected over those budgets); ' +
  'final reward — at a KL budget fixed before any difference is looked at (the smaller of the two methods\' reaches), each seed contributes its best checkpoint within the budget, chosen on one half of the held-out prompts and scored on the other; ' +
  'the 95% bootstrap CI of the difference (resampling seeds and prompts, paired across methods, KLs included) must exclude 0; other budgets are read with Holm-adjusted p-values; ' +
  'with one seed and no per-prompt rewards there is no interval and no test, and then no recommendation; ' +
  'stability — fewer failed runs, else less seed-to-seed spread by an F test at p < 0.05; cost — at least 1.2× less time to one model; ' +
  'complexity — fewer on most of models in memory, hyperparameters and loss lines; overall — the final-reward winner; with no significant reward difference, the method that improved on the base when only one did, else the method winning more of stability, cost and complexity; never a method chosen on cost when reward could not be compared.';

/** How complexity is counted (src/train/footprint.ts). */
export const COMPLEXITY_RULE =
  'Models in memory: the parameter trees the trainer keeps for the whole run, read from the trainer for the run\'s config (src/train/footprint.ts). ' +
  'Hyperparameters: the keys of the method\'s config section that the study sets or sweeps for the run (the reward source excluded). ' +
  'Loss lines: non-blank, non-comment lines of the method\'s loss module under src/train/losses/ (the same count from src and dist).';

/** The run whose final reward is the median of its method's runs: representative, not cherry-picked. */
export function medianRun(runs: readonly Run[]): Run | undefined {
  const rs = runs.filter((r) => r.samples.length > 0 && Number.isFinite(finalReward(r))).sort((x, y) => finalReward(x) - finalReward(y) || x.id.localeCompare(y.id));
  return rs[Math.floor((rs.length - 1) / 2)] ?? runs.find((r) => r.samples.length > 0);
}

/** The analysed study in the shape the report renders. */
export function reportInput(study: StudyResults, analysis: StudyAnalysis, recommendation: Recommendation | null, a: Method, b: Method): StudyReportInput {
  const samples: StudyReportInput['samples'][number][] = [];
  if (study.baseSamples?.length) samples.push({ method: 'base', runId: 'base policy', samples: study.baseSamples });
  for (const m of analysis.methods) {
    const r = medianRun(study.runs.filter((x) => x.method === m));
    if (r) samples.push({ method: m, runId: r.id, samples: r.samples });
  }
  return {
    name: study.name,
    a,
    b,
    labels: METHOD_LABELS,
    analysis,
    recommendation,
    rules: RULES,
    complexityRule: COMPLEXITY_RULE,
    degenerationRule: DEGENERATION_RULE.replace(/^./, (c) => c.toUpperCase()),
    points: pointsOf(study.runs).map((p) => ({ method: study.runs.find((r) => r.id === p.runId)!.method, setting: p.setting, seed: p.seed, step: p.step, kl: p.kl, reward: p.reward, fluency: p.fluency, eosRate: p.eosRate, length: p.length })),
    samples,
    runs: study.runs.length,
    provenance: study.provenance,
  };
}

export interface StudyReport extends Report {
  analysis: StudyAnalysis;
  recommendation: Recommendation | null;
  input: StudyReportInput;
}

/** Analyse a study and render both reports in memory. */
export async function buildStudyReport(study: StudyResults, o: PublishOptions = {}): Promise<StudyReport> {
  const a = o.a ?? 'dpo', b = o.b ?? 'ppo';
  const analysis = analyzeStudy(study, { compare: [[a, b]], ...o.analysis });
  const recommendation = analysis.byMethod[a] && analysis.byMethod[b] ? recommend(analysis, a, b, o.recommend) : null;
  const input = reportInput(study, analysis, recommendation, a, b);
  return { ...(await buildReport(input, o)), analysis, recommendation, input };
}

export interface WrittenReport extends StudyReport {
  files: WrittenFiles['files'] & { analysis: string };
}

/**
 * Analyse the study and write report.md, report.html, the charts and analysis.json into outDir. analysis.json
 * opens with the machine-readable verdict (headline, base, rewardModel), then the full analysis and recommendation.
 */
export async function writeReport(study: StudyResults, outDir: string, o: PublishOptions = {}): Promise<WrittenReport> {
  const a = o.a ?? 'dpo', b = o.b ?? 'ppo';
  const analysis = analyzeStudy(study, { compare: [[a, b]], ...o.analysis });
  const recommendation = analysis.byMethod[a] && analysis.byMethod[b] ? recommend(analysis, a, b, o.recommend) : null;
  const input = reportInput(study, analysis, recommendation, a, b);
  mkdirSync(outDir, { recursive: true });
  const written = await renderReport(input, outDir, o);
  const file = join(outDir, 'analysis.json');
  const json = toJson({ ...verdictJson(analysis), analysis, recommendation }, 2) + '\n';
  writeFileAtomic(file, (w) => w(Buffer.from(json, 'utf-8')));
  return { ...written, analysis, recommendation, input, files: { ...written.files, analysis: file } };
}
