// The evaluation leaderboard: Markdown and a self-contained HTML page (inline CSS and SVG, nothing fetched)
// built from one list of sections, so both always show the same numbers. Includes the per-axis table, the
// judge's ratings and win rates, per-task tables, and a "Model | Strength | Limitation" table derived
// from the measured axes.
//
// report/ renders what it is handed: an analysed EvalResult (eval/results.ts, types only). It imports no
// evaluation code; which metrics are [0,1] scores comes with the result (TaskResult.unit_metrics).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AxisName } from '../eval/axes.js';
import type { EvalResult } from '../eval/results.js';
import type { Estimate } from '../stats/index.js';

/** The axes in display order, with their names in reports (a Record, so a new axis fails to compile until labelled). */
export const AXIS_LABELS: Record<AxisName, string> = {
  contextual_understanding: 'Contextual understanding',
  response_coherence: 'Response coherence',
  adaptability: 'Adaptability',
};
const AXIS_NAMES = Object.keys(AXIS_LABELS) as AxisName[];

/** A table cell: text, or a number with an optional CI (drawn as a bar in HTML when `unit`). */
export type Cell = string | { est: Estimate; digits: number; unit?: boolean };

export interface Section {
  /** HTML id of the section's table. */
  id: string;
  title: string;
  level: 2 | 3;
  text?: string[];
  head?: string[];
  rows?: Cell[][];
}

const fmt = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : '–');

export function cellText(c: Cell): string {
  if (typeof c === 'string') return c;
  const { value, lo, hi } = c.est;
  if (!Number.isFinite(value)) return '–';
  return Number.isFinite(lo) && Number.isFinite(hi) ? `${fmt(value, c.digits)} [${fmt(lo, c.digits)}, ${fmt(hi, c.digits)}]` : fmt(value, c.digits);
}

function digitsFor(metric: string): number {
  return metric === 'length' || metric === 'perplexity' || metric === 'judge_score' ? 2 : 3;
}

export interface StrengthRow {
  model: string;
  strength: string;
  limitation: string;
}

/**
 * For each model: the axis where it stands highest relative to the field mean (strength) and the one where
 * it stands lowest (limitation), with the numbers. With a single model, relative to its own axes instead.
 */
export function strengthsAndLimitations(r: EvalResult): StrengthRow[] {
  const labels = r.models.map((m) => m.label);
  const fieldMean: Partial<Record<AxisName, number>> = {};
  for (const a of AXIS_NAMES) {
    const xs = labels.map((l) => r.axes[l]?.[a]?.value).filter((x): x is number => x !== undefined && Number.isFinite(x));
    if (xs.length) fieldMean[a] = xs.reduce((p, q) => p + q, 0) / xs.length;
  }
  const relative = labels.length >= 2;
  return labels.map((l) => {
    const mine = AXIS_NAMES.flatMap((a) => {
      const s = r.axes[l]?.[a];
      return s && Number.isFinite(s.value) ? [{ a, s, d: relative ? s.value - fieldMean[a]! : s.value }] : [];
    });
    if (mine.length === 0) return { model: l, strength: '–', limitation: '–' };
    const describe = (x: (typeof mine)[number]) => {
      const base = `${AXIS_LABELS[x.a]} ${cellText({ est: x.s, digits: 2 })}`;
      return relative ? `${base}, ${x.d >= 0 ? '+' : '−'}${Math.abs(x.d).toFixed(2)} vs field mean ${fieldMean[x.a]!.toFixed(2)}` : `${base} (its highest axis)`;
    };
    const best = mine.reduce((p, q) => (q.d > p.d ? q : p));
    const worst = mine.reduce((p, q) => (q.d < p.d ? q : p));
    const limitation = mine.length < 2 ? '– (one axis measured)' : relative ? describe(worst) : `${AXIS_LABELS[worst.a]} ${cellText({ est: worst.s, digits: 2 })} (its lowest axis)`;
    return { model: l, strength: describe(best), limitation };
  });
}

export function buildSections(r: EvalResult): Section[] {
  const labels = r.models.map((m) => m.label);
  const pw = r.pairwise;
  const rating = new Map(pw?.ratings.map((x) => [x.model, x]) ?? []);
  const axisMean = (l: string) => {
    const xs = AXIS_NAMES.map((a) => r.axes[l]?.[a]?.value).filter((x): x is number => x !== undefined && Number.isFinite(x));
    return xs.length ? xs.reduce((p, q) => p + q, 0) / xs.length : -Infinity;
  };
  // Rank by judge rating when there is one, else by the mean of the axes.
  const order = [...labels].sort((a, b) => (pw ? (rating.get(b)?.value ?? -Infinity) - (rating.get(a)?.value ?? -Infinity) : axisMean(b) - axisMean(a)));
  const sections: Section[] = [];

  const head = ['Rank', 'Model'];
  if (pw) head.push('Rating (95% CI)', `Win rate vs ${pw.baseline}`, `LC win rate vs ${pw.baseline}`);
  head.push(...AXIS_NAMES.map((a) => AXIS_LABELS[a]));
  sections.push({
    id: 'leaderboard',
    title: 'Leaderboard',
    level: 2,
    text: [
      `Axes are in [0, 1] with bootstrap 95% CIs over samples (docs/evaluation.md defines them).` +
        (pw ? ` Ratings are Bradley–Terry on an Elo-like scale from ${pw.comparisons} position-swapped comparisons judged by ${pw.judge}.` : ''),
    ],
    head,
    rows: order.map((l, i) => {
      const row: Cell[] = [String(i + 1), l];
      if (pw) {
        const rt = rating.get(l);
        const vb = pw.vs_baseline[l];
        row.push(rt ? { est: rt, digits: 0 } : '–');
        row.push(l === pw.baseline ? '(baseline)' : vb ? { est: { value: vb.winRate, lo: vb.winRateCi[0], hi: vb.winRateCi[1] }, digits: 3, unit: true } : '–');
        row.push(l === pw.baseline ? '(baseline)' : vb ? { est: { value: vb.lcWinRate, lo: vb.ci[0], hi: vb.ci[1] }, digits: 3, unit: true } : '–');
      }
      for (const a of AXIS_NAMES) {
        const s = r.axes[l]?.[a];
        row.push(s ? { est: s, digits: 3, unit: true } : '–');
      }
      return row;
    }),
  });

  sections.push({
    id: 'strengths',
    title: 'Model | Strength | Limitation',
    level: 2,
    text: [
      labels.length >= 2
        ? 'Strength: the axis where the model stands highest relative to the mean of all evaluated models; limitation: where it stands lowest.'
        : 'One model evaluated: strength and limitation are its highest and lowest axes.',
    ],
    head: ['Model', 'Strength', 'Limitation'],
    rows: strengthsAndLimitations(r).map((x) => [x.model, x.strength, x.limitation]),
  });

  const comp = ['breadth', 'type_evenness', 'paraphrase_consistency'];
  sections.push({
    id: 'axis-details',
    title: 'Axis details',
    level: 2,
    text: ['Samples per axis, and the components of adaptability (point estimates).'],
    head: ['Model', ...AXIS_NAMES.map((a) => `n (${AXIS_LABELS[a].toLowerCase()})`), ...comp],
    rows: labels.map((l) => [
      l,
      ...AXIS_NAMES.map((a) => String(r.axes[l]?.[a]?.n ?? 0)),
      ...comp.map((c) => {
        const v = r.axes[l]?.adaptability?.components?.[c];
        return v === undefined ? '–' : v.toFixed(3);
      }),
    ]),
  });

  if (pw) {
    const t = pw.totals;
    sections.push({
      id: 'pairwise',
      title: 'Pairwise judge',
      level: 2,
      text: [
        `Judge ${pw.judge}; every pair asked in both orders. Consistent wins: ${t.a + t.b}; explicit ties: ${t.tie}; ` +
          `inconsistent (verdict flipped with the order, counted as ties): ${t.inconsistent}; unreadable (left out): ${t.invalid}.`,
        'Win rate of the row model against the column model (ties count half):',
      ],
      head: ['Model', ...pw.win_rates.models],
      rows: pw.win_rates.models.map((m, i) => [m, ...pw.win_rates.rate[i]!.map((x, j) => (i === j ? '–' : x === null ? 'n/a' : `${x.toFixed(3)} (${pw.win_rates.count[i]![j]})`))]),
    });
  }

  sections.push({ id: 'tasks', title: 'Tasks', level: 2, text: ['Means over the main prompt with bootstrap 95% CIs; the last column is the primary metric per prompt template (main first, then paraphrases).'] });
  for (const task of r.tasks) {
    const skippedNote = Object.entries(task.skipped).map(([m, why]) => `${m}: not run (${why}).`);
    sections.push({
      id: `task-${task.name}`,
      title: `${task.name}`,
      level: 3,
      text: [`${task.type}, ${task.rows} rows × ${task.templates} template${task.templates > 1 ? 's' : ''}; primary metric ${task.primary_metric}.`, ...skippedNote],
      head: ['Model', ...task.metrics, `${task.primary_metric} by template`],
      rows: labels
        .filter((l) => task.scores[l])
        .map((l) => [
          l,
          ...task.metrics.map((m): Cell => {
            const s = task.scores[l]![m];
            return s ? { est: s, digits: digitsFor(m), unit: task.unit_metrics?.includes(m) ?? false } : '–';
          }),
          task.by_template[l]!.map((x) => fmt(x, 3)).join(' / '),
        ]),
    });
  }

  const info = [
    `${r.models.map((m) => `${m.label} = ${m.provider}`).join('; ')}.`,
    `${r.samples.length} samples, ${r.calls} provider calls, ${r.cache.hits} cache hits, ${(r.wall_ms / 1000).toFixed(1)} s.`,
    ...r.notes,
  ];
  sections.push({ id: 'run', title: 'Run', level: 2, text: info });
  return sections;
}

const mdEscape = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderMarkdown(r: EvalResult): string {
  const lines = [`# Evaluation: ${r.name}`, '', `${r.created_at} · ${r.models.length} models · ${r.tasks.length} tasks`, ''];
  for (const s of buildSections(r)) {
    lines.push(`${'#'.repeat(s.level)} ${s.title}`, '');
    for (const t of s.text ?? []) lines.push(t, '');
    if (s.head && s.rows) {
      lines.push(`| ${s.head.map(mdEscape).join(' | ')} |`, `|${s.head.map(() => '---').join('|')}|`);
      for (const row of s.rows) lines.push(`| ${row.map((c) => mdEscape(cellText(c))).join(' | ')} |`);
      lines.push('');
    }
  }
  return lines.join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** A [0,1] value with its CI as a small inline SVG: grey interval, dark tick at the estimate. */
function ciBar(e: Estimate): string {
  const w = 80, x = (v: number) => (Math.min(1, Math.max(0, v)) * w).toFixed(1);
  const interval = Number.isFinite(e.lo) && Number.isFinite(e.hi) ? `<rect x="${x(e.lo)}" y="3" width="${(Number(x(e.hi)) - Number(x(e.lo))).toFixed(1)}" height="6" fill="#b8c4d6"/>` : '';
  return `<svg class="ci" width="${w}" height="12" viewBox="0 0 ${w} 12" role="img" aria-label="${esc(cellText({ est: e, digits: 3 }))}"><rect x="0" y="5" width="${w}" height="2" fill="#e6e9ef"/>${interval}<rect x="${x(e.value)}" y="1" width="2" height="10" fill="#1f3a5f"/></svg>`;
}

function htmlCell(c: Cell): string {
  if (typeof c === 'string') return `<td>${esc(c)}</td>`;
  const bar = c.unit && Number.isFinite(c.est.value) ? ciBar(c.est) : '';
  return `<td class="num">${esc(cellText(c))}${bar ? '<br>' + bar : ''}</td>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1200px;padding:0 1rem;color:#1b1f24}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #d8dde4;padding-bottom:.2rem}h3{font-size:1.05rem;margin-top:1.4rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid #d8dde4;padding:.3rem .55rem;text-align:left;vertical-align:top}
th{background:#f3f5f8}td.num{white-space:nowrap}p{margin:.4rem 0}.meta{color:#5a6572}svg.ci{display:block;margin-top:2px}
`;

export function renderHtml(r: EvalResult): string {
  const body: string[] = [`<h1>Evaluation: ${esc(r.name)}</h1>`, `<p class="meta">${esc(r.created_at)} · ${r.models.length} models · ${r.tasks.length} tasks</p>`];
  for (const s of buildSections(r)) {
    body.push(`<h${s.level}>${esc(s.title)}</h${s.level}>`);
    for (const t of s.text ?? []) body.push(`<p>${esc(t)}</p>`);
    if (s.head && s.rows) {
      body.push(`<table id="${esc(s.id)}">`, `<thead><tr>${s.head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>`, '<tbody>');
      for (const row of s.rows) body.push(`<tr>${row.map(htmlCell).join('')}</tr>`);
      body.push('</tbody></table>');
    }
  }
  return `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>Evaluation: ${esc(r.name)}</title><style>${CSS}</style></head><body>\n${body.join('\n')}\n</body></html>\n`;
}

export function writeLeaderboard(r: EvalResult, out: string): { markdown: string; html: string } {
  mkdirSync(out, { recursive: true });
  const markdown = join(out, 'leaderboard.md');
  const html = join(out, 'leaderboard.html');
  writeFileSync(markdown, renderMarkdown(r));
  writeFileSync(html, renderHtml(r));
  return { markdown, html };
}
