import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { reportTitle } from '../../src/report/index.js';
import { buildStudyReport as buildReport, writeReport } from '../../src/cli/study-report.js';
import { escapeHtml, escapeMd } from '../../src/report/escape.js';
import { inlineSvg } from '../../src/report/render.js';
import { renderSvg } from '../../src/report/charts.js';
import type { StudyResults } from '../../src/study/types.js';
import { DPO_CX, PPO_CX, dpoVsPpo, promptStudy, syntheticStudy } from '../study/synthetic.js';

const CHROMIUM = '/usr/bin/chromium';
const TABLE_IDS = ['criteria', 'per-method', 'matched-kl', 'stability', 'cost', 'complexity', 'samples', 'provenance'];
const CHART_IDS = ['frontier', 'fluency', 'matched-kl', 'learning-curves'];
const FIXED_NOW = () => new Date('2026-01-02T03:04:05Z');

/** DPO, PPO, PPO-GT, best-of-N and GRPO, with a hostile setting label and hostile sample text. */
function fullStudy(): StudyResults {
  const base = { wallSeconds: 40, generationShare: 0.3, seedNoise: 0.01 };
  const s = syntheticStudy([
    { ...base, method: 'dpo', settings: [{ setting: { beta: 0.1 }, klPerStep: 0.6 }, { setting: { beta: 0.5 }, klPerStep: 0.3 }], gain: 0.6, complexity: DPO_CX },
    { ...base, method: 'ppo', settings: [{ setting: { klCoef: 0.05 }, klPerStep: 0.8 }, { setting: { klCoef: '<script>alert(1)</script>' }, klPerStep: 0.4 }], gain: 0.4, complexity: PPO_CX, collapseSeeds: [3] },
    { ...base, method: 'ppo-gt', settings: [{ setting: { klCoef: 0.05 }, klPerStep: 0.8 }], gain: 0.7, complexity: { ...PPO_CX, modelsInMemory: 3 } },
    { ...base, method: 'best-of-n', settings: [{ setting: {}, klPerStep: 0.2 }], gain: 0.5, complexity: { modelsInMemory: 1, hyperparameters: 1, lossLines: 0 } },
    { ...base, method: 'grpo', settings: [{ setting: { groupSize: 8 }, klPerStep: 0.5 }], gain: 0.5, complexity: { modelsInMemory: 3, hyperparameters: 5, lossLines: 20 } },
  ]);
  s.provenance.config = { quick: true, note: '</pre><script>alert(2)</script>' };
  return s;
}

test('escaping: HTML special characters and Markdown structure', () => {
  assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  assert.equal(escapeMd('a|b *c* _d_ <e> [f](g)\nh'), 'a\\|b \\*c\\* \\_d\\_ &lt;e&gt; [f]\\(g) h');
  assert.equal(inlineSvg('<?xml version="1.0"?><svg><clipPath id="c1"/><g clip-path="url(#c1)"/><use href="#c1"/></svg>', 'p'), '<svg><clipPath id="p-c1"/><g clip-path="url(#p-c1)"/><use href="#p-c1"/></svg>');
});

test('vega-lite + vega render SVG in Node without a browser', async () => {
  const svg = await renderSvg({ data: { values: [{ x: 1, y: 2 }, { x: 2, y: 3 }] }, mark: 'point', encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } } });
  assert.match(svg, /^<svg /);
  assert.equal((svg.match(/<path/g) ?? []).filter(Boolean).length >= 2, true);
  console.log(`rendered with Node ${process.version} (vega-lite 6 declares node >= 22; it works here)`);
});

test('markdown report: the criteria table, every section, charts as files, escaped text', async () => {
  const study = fullStudy();
  const r = await buildReport(study, { now: FIXED_NOW });
  const md = r.markdown;
  assert.match(md, /^\| Criteria \| DPO \| PPO \| Better \|$/m);
  for (const row of ['Complexity', 'Stability', 'Efficiency', 'Final reward']) assert.match(md, new RegExp(`^\\| ${row}`, 'm'));
  for (const id of CHART_IDS) assert.ok(md.includes(`](${id}.svg)`) && md.includes(`(${id}.vl.json)`), id);
  for (const h of ['## Recommendation', '## Per method', '## Stability', '## Cost', '## Complexity', '## Sample generations', '## Configuration and provenance', '## Resolved configuration']) assert.ok(md.includes(h), h);
  // Table cells come from the analysis: the DPO reward at matched KL with its CI.
  const h = r.analysis.byMethod.dpo!.headline!.reward;
  assert.ok(md.includes(`${h.value.toFixed(3)} [${h.lo.toFixed(3)}, ${h.hi.toFixed(3)}] (3 seeds)`));
  // The criteria table says what the interval is over: this synthetic study has no per-prompt rewards.
  assert.match(md, /^\| Final reward \(at KL ≤ 6\.000 nats; 95% CI over 3 seeds\) \| /m);
  assert.match(md, /95% t intervals over 3 seeds \(Welch–Satterthwaite; variances from 2000 bootstrap resamples of each method's seeds\); no per-prompt rewards/);
  // The per-method table's interval label agrees with its Seeds column for every method (PPO-GT included).
  for (const m of ['DPO', 'PPO', 'PPO-GT', 'GRPO']) assert.match(md, new RegExp(`^\\| ${m} \\| \\d+ \\| 3 \\| [\\d.]+ \\| 0\\.\\d{3} \\[[\\d.-]+, [\\d.-]+\\] \\(3 seeds\\)`, 'm'));
  // The study is named "synthetic": the title adds what it compares.
  assert.match(md, /^# synthetic: DPO vs PPO$/m);
  assert.ok(md.includes(r.recommendation!.paragraph.slice(0, 80)));
  // Every method appears in the per-method table, the hostile label only escaped.
  for (const m of ['DPO', 'PPO', 'PPO-GT', 'Best-of-N', 'GRPO']) assert.match(md, new RegExp(`^\\| ${m} \\|`, 'm'));
  assert.ok(!md.includes('<script>') || md.includes('```json'), 'raw <script> only inside the fenced config block');
  assert.ok(md.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  assert.ok(md.includes('2026-01-02T03:04:05.000Z'));
  // The complexity table says how it was counted, and the degeneration rule is stated.
  assert.match(md, /Models in memory: the parameter trees the trainer keeps for the whole run, read from the trainer for the run's config \(src\/train\/footprint\.ts\)/);
  assert.match(md, /Degenerated: n-gram perplexity of the samples more than 2× the base policy's/);
});

test('report.html opens in headless Chromium: charts render as SVG with marks, every table present, no console errors, no requests', async (t) => {
  if (!existsSync(CHROMIUM)) {
    console.log(`SKIP: ${CHROMIUM} is absent (apt-get install -y chromium); the HTML report was not checked in a browser`);
    t.skip(`${CHROMIUM} absent`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'alignlab-report-'));
  const study = fullStudy();
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
  try {
    const w = await writeReport(study, dir, { now: FIXED_NOW });
    for (const f of [w.files.markdown, w.files.html, w.files.analysis, ...w.files.specs, ...w.files.svgs]) assert.ok(existsSync(f), f);
    const spec = JSON.parse(readFileSync(join(dir, 'frontier.vl.json'), 'utf8'));
    assert.ok(Array.isArray(spec.layer) && spec.layer[0].data.values.length > 0, 'the spec carries its data');

    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('request', (r) => requests.push(r.url()));
    const url = pathToFileURL(w.files.html).href;
    await page.goto(url, { waitUntil: 'load' });

    const info = await page.evaluate(([tableIds, chartIds]) => {
      const charts = (chartIds as string[]).map((id) => {
        const svg = document.querySelector(`#chart-${id} svg`);
        const box = svg?.getBoundingClientRect();
        return {
          id,
          svg: !!svg,
          width: box?.width ?? 0,
          symbols: svg ? svg.querySelectorAll('g.mark-symbol path').length : 0,
          lines: svg ? svg.querySelectorAll('g.mark-line path').length : 0,
          areas: svg ? svg.querySelectorAll('g.mark-area path').length : 0,
        };
      });
      const tables = Object.fromEntries((tableIds as string[]).map((id) => [id, document.querySelectorAll(`table#${id} tbody tr`).length]));
      return {
        charts,
        tables,
        scripts: document.querySelectorAll('script').length,
        recommendation: document.querySelector('#recommendation')?.textContent ?? '',
        criteriaHead: Array.from(document.querySelectorAll('table#criteria thead th'), (th) => th.textContent),
        samplesText: document.querySelector('table#samples')?.textContent ?? '',
        stabilityText: document.querySelector('table#stability')?.textContent ?? '',
        config: document.querySelector('#config')?.textContent ?? '',
      };
    }, [TABLE_IDS, CHART_IDS] as const);
    console.log(`report page: ${JSON.stringify(info.charts)}; table rows ${JSON.stringify(info.tables)}`);

    assert.deepEqual(problems, []);
    assert.deepEqual(requests, [url], 'the page loads nothing but itself');
    assert.equal(info.scripts, 0);
    const checkpoints = study.runs.reduce((n, r) => n + r.checkpoints.length, 0);
    const frontier = info.charts.find((c) => c.id === 'frontier')!;
    assert.ok(frontier.svg && frontier.width > 300);
    assert.ok(frontier.symbols >= checkpoints, `frontier chart: ${frontier.symbols} symbols for ${checkpoints} checkpoints`);
    assert.ok(frontier.lines >= 5, 'one frontier line per method');
    const matched = info.charts.find((c) => c.id === 'matched-kl')!;
    assert.ok(matched.svg && matched.lines >= 2 && matched.areas >= 2, 'matched-KL lines and CI bands');
    const curves = info.charts.find((c) => c.id === 'learning-curves')!;
    assert.ok(curves.svg && curves.lines >= 7 && curves.areas >= 7, 'a line and a band per (method, setting)');
    for (const id of TABLE_IDS) assert.ok(info.tables[id]! > 0, `table ${id}`);
    assert.equal(info.tables.criteria, 4);
    assert.equal(info.tables['per-method'], 6); // base + 5 methods
    assert.deepEqual(info.criteriaHead, ['Criteria', 'DPO', 'PPO', 'Better']);
    assert.equal(info.recommendation, w.recommendation!.paragraph);
    // Hostile text arrives as text.
    assert.ok(info.samplesText.includes('union is strong and <good> & "great"'));
    assert.ok(info.stabilityText.includes('<script>alert(1)</script>'));
    assert.ok(info.config.includes('</pre><script>alert(2)</script>'));
  } finally {
    await browser.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('more than one compared pair: the matched-KL table labels each row with its pair', async () => {
  const r = await buildReport(fullStudy(), { now: FIXED_NOW, analysis: { compare: [['dpo', 'ppo'], ['dpo', 'ppo-gt']] } });
  assert.match(r.markdown, /^\| Comparison \| KL budget \| First \| Second \|/m);
  assert.match(r.markdown, /^\| DPO vs PPO-GT \| /m);
  assert.equal(r.analysis.gridComparisons.length, 16);
});

test('a study without PPO still renders, and says why there is no recommendation', async () => {
  const s = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.5 });
  s.runs = s.runs.filter((r) => r.method === 'dpo');
  const r = await buildReport(s, { now: FIXED_NOW });
  assert.equal(r.recommendation, null);
  assert.match(r.markdown, /No recommendation: the study has no runs of PPO/);
  // Without a partner, DPO's KL range alone sets the budget; the PPO column says it did not run.
  assert.match(r.markdown, /^\| Final reward \(at KL ≤ 6\.000 nats\) \| 0\.\d{3} \[0\.\d{3}, 0\.\d{3}\] \(3 seeds\); improved on the base \| not run \| n\/a \|$/m);
});

test('titles: the study name is not followed by "DPO vs PPO" when it already says so', () => {
  assert.equal(reportTitle('DPO vs PPO: positive continuations of State of the Union sentences', 'DPO', 'PPO'), 'DPO vs PPO: positive continuations of State of the Union sentences');
  assert.equal(reportTitle('sentiment study', 'DPO', 'PPO'), 'sentiment study: DPO vs PPO');
  assert.equal(reportTitle('dpo vs ppo on sotu', 'DPO', 'PPO'), 'dpo vs ppo on sotu');
  assert.equal(reportTitle('DPO vs PPO: x', 'DPO', 'PPO-GT'), 'DPO vs PPO: x: DPO vs PPO-GT');
  assert.equal(reportTitle(undefined, 'DPO', 'PPO'), 'DPO vs PPO');
});

test('per-prompt rewards: the tables show seeds × prompts; one seed without them shows no interval and no test', async () => {
  const s = promptStudy({ shift: { dpo: 0.2, ppo: 0 }, seedSd: 0.02, rngSeed: 2 });
  const r = await buildReport(s, { now: FIXED_NOW });
  const kl = r.analysis.headlineKl!.toFixed(3);
  assert.match(r.markdown, new RegExp(`^\\| Final reward \\(at KL ≤ ${kl.replace('.', '\\.')} nats; 95% CI over 3 seeds × 64 prompts\\) \\| 0\\.\\d{3} \\[[-\\d.]+, [-\\d.]+\\] \\(3 seeds × 64 prompts\\)`, 'm'));
  assert.match(r.markdown, /3 seeds and the 64 held-out prompts, both resampled in each of 2000 iterations, the variance split into seed, prompt and seed × prompt parts/);
  assert.match(r.markdown, /chosen on one half of the prompts and scored on the other \(cross-fitting\)/);
  assert.match(r.markdown, /resamples seeds and the 64 held-out prompts \(paired across methods, KLs included\)/);

  const one = dpoVsPpo({ dpoGain: 0.3, ppoGain: 0.6, seeds: [1] });
  const r1 = await buildReport(one, { now: FIXED_NOW });
  assert.match(r1.markdown, /^\| Final reward \(at KL ≤ 6\.000 nats; no CI: 1 seed, no per-prompt rewards\) \| 0\.\d{3} \(1 seed, no interval\) \| 0\.\d{3} \(1 seed, no interval\) \| not tested \|$/m);
  // Every grid row of the matched-KL table: no interval, not tested.
  const rows = r1.markdown.split('\n').filter((l) => /^\| \d+\.\d{3} \|/.test(l));
  assert.equal(rows.length, 8);
  for (const l of rows) assert.match(l, /\(no interval\) \| n\/a \| not tested \|$/);
  assert.match(r1.markdown, /No CIs: with 1 seed per method and no per-prompt rewards there is nothing to resample, so no difference is tested/);
  assert.doesNotMatch(r1.markdown, /yes: PPO|PPO wins/);
});

test('a cost split whose parts exceed the wall time shows n/a and says why (SimPO\'s backward at 110% before)', async () => {
  const s = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.4 });
  for (const r of s.runs) if (r.method === 'dpo') r.cost.backwardSeconds = 1.1 * r.cost.wallSeconds;
  const r = await buildReport(s, { now: FIXED_NOW });
  assert.match(r.markdown, /^\| DPO \| [^|]+ \| none \| [^|]+ \| [^|]+ \| [^|]+ \| n\/a \| n\/a \| n\/a \| /m);
  assert.match(r.markdown, /DPO: the measured parts add up to more than the run's wall time/);
  assert.doesNotMatch(r.markdown, /\| 110% \|/);
  assert.match(r.markdown, /^\| PPO \| [^|]+ \| reward model [^|]+ \| [^|]+ \| [^|]+ \| [^|]+ \| 60% \| /m);
});

test('the report imports nothing from src/study (the study hands it an analysed result), and stats imports only the PRNG', () => {
  const here = join(import.meta.dirname, '../../src');
  for (const [dir, banned] of [['report', /from '\.\.\/study\//], ['stats', /from '\.\.\/(?!engine\/rng\.js)[^']*'/]] as const) {
    for (const f of readdirSync(join(here, dir)).filter((x) => x.endsWith('.ts'))) {
      const text = readFileSync(join(here, dir, f), 'utf-8');
      assert.doesNotMatch(text, banned, `src/${dir}/${f}`);
    }
  }
});

test('analysis.json opens with the machine-readable verdict: headline, base LM losses, reward-model accuracy with its Wilson CI', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'alignlab-verdict-'));
  try {
    const s = promptStudy({ shift: { dpo: 0.2, ppo: 0 }, seedSd: 0.02, rngSeed: 2 });
    s.baseModel = { heldOutLoss: 3.9, ngramLoss: 4.12 };
    s.rewardModel = { heldOutAccuracy: 0.625, n: 64 };
    const w = await writeReport(s, dir, { now: FIXED_NOW });
    const j = JSON.parse(readFileSync(w.files.analysis, 'utf-8'));
    const c = w.analysis.comparisons[0]!;
    assert.deepEqual(Object.keys(j).slice(0, 3), ['headline', 'base', 'rewardModel']);
    assert.deepEqual(j.headline, { kl: c.kl, dpo: c.aReward.value, ppo: c.bReward.value, diff: c.diff.value, ci: [c.diff.lo, c.diff.hi], significant: c.diff.significant, rule: w.analysis.headlineRule });
    assert.equal(j.headline.significant, true);
    assert.deepEqual(j.base, { heldoutLoss: 3.9, ngramLoss: 4.12 });
    // Wilson 95% for 40 of 64 (by hand in Python): (0.502503786840045, 0.7333401982117536).
    assert.equal(j.rewardModel.accuracy, 0.625);
    assert.equal(j.rewardModel.n, 64);
    assert.ok(Math.abs(j.rewardModel.ci[0] - 0.502503786840045) < 1e-8 && Math.abs(j.rewardModel.ci[1] - 0.7333401982117536) < 1e-8, JSON.stringify(j.rewardModel));
    // Below 0.7 the report says the RM limits PPO(RM).
    assert.match(w.markdown, /0\.625 \[0\.503, 0\.733\] on 64 pairs \(Wilson 95% interval\); below 0\.7: PPO\(RM\) is limited by its reward model/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the reward model\'s cost line reads its sign only when the interval excludes 0', async () => {
  const base = { wallSeconds: 40, generationShare: 0.3, complexity: PPO_CX };
  const study = (ppoGain: number, gtGain: number, seedNoise: number) => syntheticStudy([
    { ...base, seedNoise, method: 'ppo', settings: [{ setting: { klCoef: 0.05 }, klPerStep: 0.5 }], gain: ppoGain },
    { ...base, seedNoise, method: 'ppo-gt', settings: [{ setting: { klCoef: 0.05 }, klPerStep: 0.5 }], gain: gtGain },
  ]);
  const line = async (s: StudyResults) => (await buildReport(s, { now: FIXED_NOW })).markdown.split('\n').find((l) => l.startsWith("| Reward model's cost to PPO |"))!;
  assert.match(await line(study(0.6, 0.2, 0.01)), /PPO − PPO-GT at KL [\d.]+: \+0\.\d+ \[\+[\d.]+, \+[\d.]+\] .*: PPO gained more from the learned reward model than from the gold reward within this KL \|$/);
  assert.match(await line(study(0.2, 0.6, 0.01)), /: −0\.\d+ \[−[\d.]+, −[\d.]+\] .*: the learned reward model cost PPO gold reward within this KL \|$/);
  assert.match(await line(study(0.4, 0.4, 0.3)), /: no significant difference \|$/);
});
