// Markdown and HTML renderings of the same report content: recommendation, tables, charts.
// The HTML page is self-contained and static: inline CSS, inline SVG, no script, and a Content-Security-Policy
// that forbids loading anything, so it shows the same offline as online.

import { escapeHtml, escapeMd } from './escape.js';
import type { Table } from './tables.js';

export interface Chart {
  /** HTML id (chart-<id>) and file stem (<id>.svg, <id>.vl.json). */
  id: string;
  title: string;
  caption: string;
  svg: string;
}

export interface ReportContent {
  title: string;
  /** One line under the title. */
  subtitle: string;
  recommendation: string;
  /** Rules behind the verdicts, shown under the recommendation. */
  rules: string;
  /** The criteria table comes first, the rest after the charts. */
  criteria: Table;
  charts: Chart[];
  tables: Table[];
  /** Pretty-printed resolved config, if any. */
  config?: string;
}

// ---- Markdown ---------------------------------------------------------------------------------

export function tableMd(t: Table): string {
  const row = (cells: readonly string[]) => `| ${cells.map(escapeMd).join(' | ')} |`;
  return [row(t.columns), `|${t.columns.map(() => ' --- |').join('')}`, ...t.rows.map(row), ...(t.note ? ['', `_${escapeMd(t.note)}_`] : [])].join('\n');
}

export function renderMarkdown(c: ReportContent): string {
  const out: string[] = [`# ${escapeMd(c.title)}`, '', escapeMd(c.subtitle), '', '## Recommendation', '', escapeMd(c.recommendation), '', `_${escapeMd(c.rules)}_`, ''];
  out.push(`## ${escapeMd(c.criteria.title)}`, '', tableMd(c.criteria), '');
  for (const ch of c.charts) out.push(`## ${escapeMd(ch.title)}`, '', `![${escapeMd(ch.title)}](${ch.id}.svg)`, '', `_${escapeMd(ch.caption)}_ Vega-Lite spec: [${ch.id}.vl.json](${ch.id}.vl.json)`, '');
  for (const t of c.tables) out.push(`## ${escapeMd(t.title)}`, '', tableMd(t), '');
  if (c.config) out.push('## Resolved configuration', '', '```json', c.config.replace(/```/g, '` ` `'), '```', '');
  return out.join('\n');
}

// ---- HTML -----------------------------------------------------------------------------------

export function tableHtml(t: Table): string {
  const head = `<thead><tr>${t.columns.map((c) => `<th scope="col">${escapeHtml(c)}</th>`).join('')}</tr></thead>`;
  const body = `<tbody>${t.rows.map((r) => `<tr>${r.map((c, i) => (i === 0 ? `<th scope="row">${escapeHtml(c)}</th>` : `<td>${escapeHtml(c)}</td>`)).join('')}</tr>`).join('\n')}</tbody>`;
  return `<table id="${escapeHtml(t.id)}">${head}\n${body}</table>${t.note ? `<p class="note">${escapeHtml(t.note)}</p>` : ''}`;
}

/** Vega's SVG for inlining: drop any XML prolog, and prefix ids so several charts on one page cannot clash. */
export function inlineSvg(svg: string, prefix: string): string {
  return svg
    .replace(/^<\?xml[^>]*>\s*/, '')
    .replace(/\bid="([^"]+)"/g, (_m, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_m, id: string) => `url(#${prefix}-${id})`)
    .replace(/(xlink:)?href="#([^"]+)"/g, (_m, x: string | undefined, id: string) => `${x ?? ''}href="#${prefix}-${id}"`);
}

const CSS = `
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;margin:0;background:#fafafa}
main{max-width:1100px;margin:0 auto;padding:24px 20px 60px;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .5em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#555}.note{color:#666;font-size:.85em;margin:.3em 0 1em}
#recommendation{background:#f3f7fc;border-left:4px solid #1f77b4;padding:10px 14px}
table{border-collapse:collapse;width:100%;font-size:.86em;margin:.3em 0}
th,td{border:1px solid #ddd;padding:4px 7px;text-align:left;vertical-align:top}
thead th{background:#f2f2f2}tbody th{font-weight:600;background:#fbfbfb}
figure{margin:1em 0;overflow-x:auto}figure svg{max-width:100%;height:auto}figcaption{color:#555;font-size:.85em}
pre{background:#f6f6f6;padding:10px;overflow-x:auto;font-size:.8em}
`;

export function renderHtml(c: ReportContent): string {
  const charts = c.charts
    .map((ch) => `<section><h2>${escapeHtml(ch.title)}</h2><figure id="chart-${escapeHtml(ch.id)}">${inlineSvg(ch.svg, `chart-${ch.id}`)}<figcaption>${escapeHtml(ch.caption)}</figcaption></figure></section>`)
    .join('\n');
  const tables = c.tables.map((t) => `<section><h2>${escapeHtml(t.title)}</h2>${tableHtml(t)}</section>`).join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(c.title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
<h1>${escapeHtml(c.title)}</h1>
<p class="sub">${escapeHtml(c.subtitle)}</p>
<section><h2>Recommendation</h2><p id="recommendation">${escapeHtml(c.recommendation)}</p><p class="note">${escapeHtml(c.rules)}</p></section>
<section><h2>${escapeHtml(c.criteria.title)}</h2>${tableHtml(c.criteria)}</section>
${charts}
${tables}
${c.config ? `<section><h2>Resolved configuration</h2><pre id="config">${escapeHtml(c.config)}</pre></section>` : ''}
</main>
</body>
</html>
`;
}
