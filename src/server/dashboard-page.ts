// The dashboard's page: HTML, CSS and the script that draws it. The script receives the store's state and
// its changes as server-sent events (/events) and keeps one vega View per chart, changing only its data
// as rows arrive, so the page updates without reloads and without asking again. Text from the store is
// set with textContent only: a run id or a setting label can never become markup.
//
// Each chart's container carries `data-count-<dataset>` = the number of rows its View holds, after the
// View has run with them (what a test, or a curious user, can read to see data arrive).

import { escapeHtml } from '../report/escape.js';

export function pageHtml(dbPath: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>alignlab dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/dashboard.css">
<script src="/assets/vega.min.js"></script>
<script src="/assets/vega-lite.min.js"></script>
<script src="/assets/dashboard.js" defer></script>
</head>
<body>
<header>
  <h1>alignlab dashboard</h1>
  <span class="db" title="SQLite store">${escapeHtml(dbPath)}</span>
  <span id="live" class="live off">connecting…</span>
</header>
<main>
  <section id="runs-section">
    <h2>Training runs</h2>
    <p class="empty" id="runs-empty">No training runs in this store yet. Start one with <code>alignlab train …</code>: it appears here as it runs.</p>
    <div class="split">
      <div class="list"><table id="runs"><thead><tr><th>run</th><th>kind</th><th>status</th><th class="num">step</th><th class="num">loss</th><th>started</th></tr></thead><tbody></tbody></table></div>
      <div class="charts">
        <h3 id="run-title"></h3>
        <div class="chart" id="chart-loss"></div>
        <div class="chart" id="chart-reward"></div>
        <p class="note" id="reward-note"></p>
      </div>
    </div>
  </section>
  <section id="studies-section">
    <h2>Studies</h2>
    <p class="empty" id="studies-empty">No studies in this store yet. <code>alignlab study --quick</code> fills in the reward-vs-KL frontier here checkpoint by checkpoint.</p>
    <div class="split">
      <div class="list"><table id="studies"><thead><tr><th>study</th><th class="num">runs</th><th class="num">checkpoints</th><th>status</th></tr></thead><tbody></tbody></table></div>
      <div class="charts">
        <h3 id="study-title"></h3>
        <div class="chart" id="chart-frontier"></div>
        <table id="study-runs"><thead><tr><th>run</th><th>method</th><th>setting</th><th class="num">seed</th><th>status</th><th class="num">step</th><th class="num">KL</th><th class="num">reward</th></tr></thead><tbody></tbody></table>
      </div>
    </div>
  </section>
  <section id="evals-section">
    <h2>Evaluations</h2>
    <p class="empty" id="evals-empty">No evaluations in this store yet.</p>
    <div id="evals"></div>
  </section>
</main>
</body>
</html>
`;
}

export const PAGE_CSS = `
:root { --fg: #1d2330; --muted: #667085; --line: #e4e7ec; --bg: #f6f7f9; --card: #fff; --accent: #2563eb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: baseline; gap: 16px; padding: 12px 24px; background: var(--card); border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 1; }
h1 { font-size: 18px; margin: 0; }
h2 { font-size: 16px; margin: 0 0 12px; }
h3 { font-size: 14px; margin: 0 0 8px; font-weight: 600; word-break: break-all; }
.db { color: var(--muted); font-family: ui-monospace, monospace; font-size: 12px; flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.live { font-size: 12px; padding: 2px 8px; border-radius: 10px; }
.live.on { background: #dcfce7; color: #166534; }
.live.off { background: #fee2e2; color: #991b1b; }
main { padding: 16px 24px; display: grid; gap: 16px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 16px; }
.split { display: grid; grid-template-columns: minmax(320px, 1fr) minmax(480px, 1.4fr); gap: 16px; align-items: start; }
.list { max-height: 560px; overflow: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
th { color: var(--muted); font-weight: 500; position: sticky; top: 0; background: var(--card); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr.pick { cursor: pointer; }
tbody tr.pick:hover { background: #f1f5ff; }
tbody tr.selected { background: #e0eaff; }
.status { font-size: 12px; padding: 1px 6px; border-radius: 8px; background: #eef2f6; }
.status.running { background: #dbeafe; color: #1e40af; }
.status.completed, .status.ok, .status.finished { background: #dcfce7; color: #166534; }
.status.failed, .status.diverged, .status.collapsed { background: #fee2e2; color: #991b1b; }
.status.stopped, .status.interrupted, .status.unfinished { background: #fef3c7; color: #92400e; }
.empty, .note { color: var(--muted); }
.empty[hidden], .split[hidden] { display: none; }
.chart { min-height: 40px; }
.progress { height: 8px; background: #eef2f6; border-radius: 4px; overflow: hidden; width: 240px; display: inline-block; vertical-align: middle; }
.progress > .bar { display: block; height: 100%; background: var(--accent); }
.eval { border-top: 1px solid var(--line); padding-top: 12px; margin-top: 12px; }
.eval:first-child { border-top: 0; margin-top: 0; padding-top: 0; }
.muted { color: var(--muted); font-weight: 400; font-size: 12px; }
.status.stale { background: #fef3c7; color: #92400e; }
.leaderboard { width: auto; margin-top: 8px; }
code { font-size: 12px; background: #f1f3f5; padding: 1px 4px; border-radius: 4px; }
`;

// Plain ES2020 for the browser (no template literals: this file embeds it in one).
export const PAGE_JS = String.raw`
/* global vega, vegaLite, EventSource */
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  const LOSS = /loss/i;
  const REWARD = /reward|score|margin/i;
  const state = { runs: new Map(), metrics: new Map(), studies: new Map(), evals: null };
  const sel = { run: null, runPinned: false, study: null, studyPinned: false };
  const charts = {};

  function h(tag, props, children) {
    const e = document.createElement(tag);
    for (const k of Object.keys(props || {})) {
      const v = props[k];
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k === 'onclick') e.addEventListener('click', v);
      else e.setAttribute(k, v);
    }
    for (const c of children || []) if (c !== null && c !== undefined) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    return e;
  }
  const td = (text, cls) => h('td', { text: text === undefined || text === null ? '' : String(text), class: cls || '' });
  const badge = (s) => h('span', { class: 'status ' + s, text: s });
  function fmt(x) {
    if (x === null || x === undefined || typeof x !== 'number' || !isFinite(x)) return '–';
    const a = Math.abs(x);
    if (a !== 0 && (a >= 1e5 || a < 1e-3)) return x.toExponential(2);
    return String(Number(x.toPrecision(4)));
  }
  const when = (iso) => (iso ? iso.replace('T', ' ').slice(0, 19) : '');
  const base = (p) => (p || '').split('/').filter(Boolean).pop() || p;

  // ---- charts: one vega View each, created once; data changes go through changesets ----------------

  function makeChart(id, spec) {
    const el = $(id);
    const runtime = vega.parse(vegaLite.compile(spec).spec);
    const view = new vega.View(runtime, { renderer: 'svg' }).initialize(el).hover();
    charts[id] = { view: view, el: el, queue: view.runAsync() };
  }
  function setData(id, name, rows) {
    const c = charts[id];
    c.queue = c.queue
      .then(() => {
        c.view.change(name, vega.changeset().remove(() => true).insert(rows.map((r) => Object.assign({}, r))));
        // resize(): redo the layout, so axis labels that grew with the data stay inside the chart.
        return c.view.resize().runAsync();
      })
      .then(() => c.el.setAttribute('data-count-' + name, String(c.view.data(name).length)))
      .catch((e) => console.error('chart ' + id + ': ' + e.message));
  }
  const q = (field, title) => ({ field: field, type: 'quantitative', title: title, scale: { zero: false } });
  function curveSpec(title) {
    return {
      width: 520, height: 200, title: title, data: { name: 'table' },
      mark: { type: 'line', point: { size: 16 }, strokeWidth: 1.5 },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'step' },
        y: q('value', null),
        color: { field: 'name', type: 'nominal', title: 'metric' },
        tooltip: [{ field: 'name', title: 'metric' }, { field: 'step', type: 'quantitative' }, { field: 'value', type: 'quantitative', format: '.4g' }],
      },
    };
  }
  function frontierSpec() {
    const x = { field: 'kl', type: 'quantitative', title: 'KL(π‖π_ref), nats' };
    const y = { field: 'reward', type: 'quantitative', title: 'gold reward', scale: { zero: false } };
    const color = { field: 'method', type: 'nominal', title: 'method' };
    return {
      width: 520, height: 300,
      title: { text: 'Reward vs KL', subtitle: 'points: checkpoints so far; lines: each method\'s frontier; dashed: the base policy' },
      layer: [
        { data: { name: 'points' }, mark: { type: 'point', filled: true, opacity: 0.45, size: 36 }, encoding: { x: x, y: y, color: color,
          tooltip: [{ field: 'method' }, { field: 'run' }, { field: 'step', type: 'quantitative' }, { field: 'kl', type: 'quantitative', format: '.3f' }, { field: 'reward', type: 'quantitative', format: '.3f' }] } },
        { data: { name: 'frontier' }, mark: { type: 'line', interpolate: 'step-after', strokeWidth: 2 }, encoding: { x: x, y: y, color: color, order: { field: 'order', type: 'quantitative' } } },
        { data: { name: 'base' }, mark: { type: 'rule', strokeDash: [4, 4], color: '#555' }, encoding: { y: { field: 'reward', type: 'quantitative' } } },
      ],
    };
  }
  function leaderboardSpec() {
    const y = { field: 'label', type: 'nominal', sort: { field: 'score', op: 'max', order: 'descending' }, title: null };
    return {
      width: 460, height: { step: 22 }, data: { name: 'table' },
      layer: [
        { mark: { type: 'rule', color: '#222' }, transform: [{ filter: 'datum.lo !== null && datum.hi !== null' }], encoding: { y: y, x: { field: 'lo', type: 'quantitative', title: null, scale: { zero: false } }, x2: { field: 'hi' } } },
        { mark: { type: 'point', filled: true, size: 70, color: '#4c78a8' }, encoding: { y: y, x: { field: 'score', type: 'quantitative', title: null, scale: { zero: false } },
          tooltip: [{ field: 'label', title: 'model' }, { field: 'score', type: 'quantitative', format: '.4g' }, { field: 'lo', type: 'quantitative', format: '.4g' }, { field: 'hi', type: 'quantitative', format: '.4g' }] } },
      ],
    };
  }

  // ---- state ------------------------------------------------------------------------------------------

  function apply(u) {
    if (u.reset) {
      state.runs.clear();
      state.metrics.clear();
      state.studies.clear();
      state.evals = null;
    }
    for (const r of u.runs) state.runs.set(r.id, r);
    for (const id of u.replaceMetrics) state.metrics.delete(id);
    for (const t of u.metrics) {
      let m = state.metrics.get(t[0]);
      if (!m) state.metrics.set(t[0], (m = new Map()));
      m.set(t[1] + '\u0000' + t[2], t);
    }
    for (const s of u.studies) state.studies.set(s.study.id, s);
    if (u.reset || u.evals) state.evals = u.evals;
    render();
  }

  function runStep(r) {
    let step = r.finalMetrics && typeof r.finalMetrics.step === 'number' ? r.finalMetrics.step : 0;
    const m = state.metrics.get(r.id);
    if (m) for (const t of m.values()) if (t[1] > step) step = t[1];
    return step;
  }
  function lastOf(r, name) {
    const m = state.metrics.get(r.id);
    let best = null;
    if (m) for (const t of m.values()) if (t[2] === name && t[3] !== null && (!best || t[1] > best[1])) best = t;
    if (best) return best[3];
    return r.finalMetrics ? r.finalMetrics[name] : undefined;
  }

  // ---- rendering --------------------------------------------------------------------------------------

  function render() {
    renderRuns();
    renderStudies();
    renderEvals();
  }

  function renderRuns() {
    const runs = Array.from(state.runs.values()).sort((a, b) => (a.started < b.started ? 1 : a.started > b.started ? -1 : 0));
    $('runs-empty').hidden = runs.length > 0;
    $('runs-section').querySelector('.split').hidden = runs.length === 0;
    if (!sel.runPinned || !state.runs.has(sel.run)) {
      const live = runs.find((r) => r.status === 'running');
      sel.run = live ? live.id : runs.length ? runs[0].id : null;
    }
    const body = $('runs').tBodies[0];
    body.replaceChildren(...runs.map((r) =>
      h('tr', { class: 'pick' + (r.id === sel.run ? ' selected' : ''), 'data-run': r.id, onclick: () => { sel.run = r.id; sel.runPinned = true; render(); } }, [
        td(r.id), td(r.kind), h('td', {}, [badge(r.status)]), td(runStep(r), 'num'), td(fmt(lastOf(r, 'loss')), 'num'), td(when(r.started)),
      ])));
    const r = sel.run ? state.runs.get(sel.run) : null;
    $('run-title').textContent = r ? r.id + ' (' + r.kind + ', ' + r.status + ')' + (r.error ? ': ' + r.error : '') : '';
    const rows = [];
    const m = r ? state.metrics.get(r.id) : null;
    if (m) for (const t of m.values()) if (t[3] !== null) rows.push({ step: t[1], name: t[2], value: t[3] });
    rows.sort((a, b) => a.step - b.step);
    const rewards = rows.filter((x) => REWARD.test(x.name));
    setData('chart-loss', 'table', rows.filter((x) => LOSS.test(x.name)));
    setData('chart-reward', 'table', rewards);
    $('chart-reward').hidden = rewards.length === 0;
    $('reward-note').textContent = r && rewards.length === 0 ? 'This run logs no reward metrics (' + r.kind + ').' : '';
  }

  function renderStudies() {
    const studies = Array.from(state.studies.values()).sort((a, b) => b.study.seq - a.study.seq);
    $('studies-empty').hidden = studies.length > 0;
    $('studies-section').querySelector('.split').hidden = studies.length === 0;
    if (!sel.studyPinned || !state.studies.has(sel.study)) sel.study = studies.length ? studies[0].study.id : null;
    $('studies').tBodies[0].replaceChildren(...studies.map((s) => {
      const running = s.runs.some((r) => r.status === 'running');
      return h('tr', { class: 'pick' + (s.study.id === sel.study ? ' selected' : ''), 'data-study': s.study.id, title: s.study.id, onclick: () => { sel.study = s.study.id; sel.studyPinned = true; render(); } }, [
        td(base(s.study.dir || s.study.id)), td(s.runs.length, 'num'), td(s.checkpoints.length, 'num'),
        h('td', {}, [badge(s.study.finished ? 'finished' : running ? 'running' : 'unfinished')]),
      ]);
    }));
    const s = sel.study ? state.studies.get(sel.study) : null;
    $('study-title').textContent = s ? (s.study.name || base(s.study.id)) + ' — ' + s.study.id : '';
    const method = new Map(s ? s.runs.map((r) => [r.run, r]) : []);
    const points = s ? s.checkpoints.filter((c) => c.kl !== null && c.reward !== null && method.has(c.run)).map((c) => ({ method: label(method.get(c.run).method), run: c.run, step: c.step, kl: c.kl, reward: c.reward })) : [];
    setData('chart-frontier', 'points', points);
    setData('chart-frontier', 'frontier', s ? s.frontier : []);
    setData('chart-frontier', 'base', s && s.study.baseReward !== null ? [{ reward: s.study.baseReward }] : []);
    const last = new Map();
    if (s) for (const c of s.checkpoints) if (!last.has(c.run) || last.get(c.run).step < c.step) last.set(c.run, c);
    $('study-runs').tBodies[0].replaceChildren(...(s ? s.runs : []).map((r) => {
      const c = last.get(r.run);
      return h('tr', { title: r.reason || '' }, [td(r.run), td(label(r.method)), td(settingLabel(r.setting)), td(r.seed, 'num'), h('td', {}, [badge(r.status)]),
        td(c ? c.step : '', 'num'), td(c ? fmt(c.kl) : '', 'num'), td(c ? fmt(c.reward) : '', 'num')]);
    }));
  }

  const LABELS = { dpo: 'DPO', ipo: 'IPO', simpo: 'SimPO', ppo: 'PPO', 'ppo-gt': 'PPO-GT', grpo: 'GRPO', rloo: 'RLOO', 'best-of-n': 'Best-of-N', base: 'Base' };
  const label = (m) => LABELS[m] || m;
  function settingLabel(s) {
    const keys = Object.keys(s || {}).sort();
    return keys.length ? keys.map((k) => k + '=' + s[k]).join(',') : 'default';
  }

  const evalBoxes = new Map();
  let evalCharts = 0;
  function renderEvals() {
    const list = state.evals && Array.isArray(state.evals.evals) ? state.evals.evals : [];
    $('evals-empty').hidden = list.length > 0;
    const seen = new Set(list.map((e) => e.id));
    for (const [id, box] of evalBoxes) if (!seen.has(id)) { box.root.remove(); evalBoxes.delete(id); }
    list.forEach((ev) => {
      let box = evalBoxes.get(ev.id);
      if (!box) {
        box = { root: h('div', { class: 'eval', 'data-eval': ev.id }), head: h('h3'), progress: h('p', { class: 'eval-progress' }), table: h('table', { class: 'leaderboard' }), chartId: 'chart-eval-' + evalCharts++ };
        box.chart = h('div', { class: 'chart', id: box.chartId });
        box.root.append(box.head, box.progress, box.chart, box.table);
        $('evals').appendChild(box.root);
        makeChart(box.chartId, leaderboardSpec());
        evalBoxes.set(ev.id, box);
      }
      const status = ev.stale ? 'stale' : ev.status;
      box.head.replaceChildren(ev.name + ' ', badge(status), h('span', { class: 'muted', text: '  ' + (ev.dir || '') + '  started ' + when(ev.started) }));
      if (ev.status === 'running') {
        const pct = ev.total > 0 ? Math.min(100, (100 * ev.done) / ev.total) : 0;
        box.progress.replaceChildren((ev.phase || 'starting') + ': ', h('span', { class: 'progress' }, [h('span', { class: 'bar', style: 'width:' + pct.toFixed(1) + '%' })]), ' ' + ev.done + ' / ' + ev.total,
          ev.stale ? ' (no progress written for minutes: the process has probably stopped)' : '');
      } else box.progress.textContent = ev.status === 'failed' ? 'failed: ' + (ev.error || '') : ev.models.length + ' models; finished ' + when(ev.finished) + (ev.primary ? '; ranked by ' + ev.primary : '');
      box.chart.hidden = ev.scores.length === 0;
      setData(box.chartId, 'table', ev.scores);
      box.table.replaceChildren(
        h('thead', {}, [h('tr', {}, ev.columns.map((c, j) => h('th', { text: c, class: j ? 'num' : '' })))]),
        h('tbody', {}, ev.rows.map((row) => h('tr', {}, row.map((v, j) => td(j ? fmt(v) : v, j ? 'num' : ''))))),
      );
      box.table.hidden = ev.rows.length === 0 || ev.columns.length < 2;
    });
  }

  // ---- live connection ---------------------------------------------------------------------------------

  function setLive(on) {
    const el = $('live');
    el.className = 'live ' + (on ? 'on' : 'off');
    el.textContent = on ? 'live' : 'reconnecting…';
  }

  function start() {
    makeChart('chart-loss', curveSpec('loss'));
    makeChart('chart-reward', curveSpec('rewards'));
    makeChart('chart-frontier', frontierSpec());
    const es = new EventSource('/events');
    es.addEventListener('update', (ev) => apply(JSON.parse(ev.data)));
    es.addEventListener('open', () => setLive(true));
    es.addEventListener('error', () => setLive(false));
    window.alignlabDashboard = { state: state, charts: charts };
  }
  start();
})();
`;
