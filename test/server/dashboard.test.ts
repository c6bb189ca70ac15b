// `alignlab dashboard`: the store feed (what changed since the last poll), the page in headless Chromium
// following a real `alignlab train sft` run and a study filling in through the store, and the command
// itself (127.0.0.1 only, exit 130/143 on SIGINT/SIGTERM, clear errors).
//
// The browser tests skip only where Chromium is absent and CI is not set; on CI a missing Chromium fails.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { get as httpGet } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import type { Browser, Page } from 'playwright-core';
import { openStore } from '../../src/store/db.js';
import { finishRun, logMetrics, startRun, truncateMetrics } from '../../src/store/runs.js';
import { recordStudy, recordStudyCheckpoint, recordStudyRun } from '../../src/store/studies.js';
import { recordEvalResult, startEval, updateEvalProgress } from '../../src/store/evals.js';
import { StoreFeed, startDashboard } from '../../src/server/dashboard.js';
import { evalView, STALE_MS } from '../../src/server/dashboard-evals.js';
import { byteLevelTokenizerJson } from '../../src/formats/tokenizer.js';
import { readMetrics } from '../../src/train/loop.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Debian's chromium; ALIGNLAB_CHROMIUM points elsewhere (or at nothing, to check the skip/fail rule below). */
const CHROMIUM = process.env.ALIGNLAB_CHROMIUM ?? '/usr/bin/chromium';
const tmp = mkdtempSync(join(tmpdir(), 'alignlab-dashboard-'));
const onCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';

/** True when Chromium is there; otherwise skips the test (or fails it on CI). */
function needChromium(t: TestContext): boolean {
  if (existsSync(CHROMIUM)) return true;
  if (onCI) assert.fail(`${CHROMIUM} is absent and CI is set: the dashboard must be checked in a browser (apt-get install -y chromium)`);
  console.log(`SKIP: ${CHROMIUM} is absent (apt-get install -y chromium); the dashboard page was not checked in a browser`);
  t.skip(`${CHROMIUM} absent`);
  return false;
}

async function launch(): Promise<Browser> {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** A page that records every request, console error/warning and uncaught error. */
async function watchedPage(browser: Browser) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const requests: string[] = [];
  const problems: string[] = [];
  let navigations = 0;
  page.on('request', (r) => requests.push(r.url()));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('framenavigated', (f) => {
    if (f === page.mainFrame()) navigations++;
  });
  return { page, requests, problems, navigations: () => navigations };
}

/** The number of rows a chart's View holds (the page writes it after each run of the View). */
const count = (page: Page, chart: string, dataset: string) =>
  page.evaluate(([c, d]) => Number(document.getElementById(c!)?.getAttribute(`data-count-${d}`) ?? -1), [chart, dataset]);

async function waitForCount(page: Page, chart: string, dataset: string, ok: (n: number) => boolean, what: string, timeout = 60_000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    const n = await count(page, chart, dataset);
    if (ok(n)) return n;
    if (Date.now() - t0 > timeout) assert.fail(`${chart}/${dataset}: ${what}; still ${n} after ${timeout} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- the feed --------------------------------------------------------------------------------------

test('feed: new runs and curve metrics once each; a resumed run replaces its rewritten steps', () => {
  const db = openStore(join(tmp, 'feed.db'));
  const feed = new StoreFeed(db);
  assert.equal(feed.poll(), null, 'an empty store has nothing new');

  startRun(db, { id: 'a', kind: 'dpo' });
  for (let s = 1; s <= 4; s++) logMetrics(db, 'a', s, { loss: 1 / s, 'rewards/margins': s, learning_rate: 1e-3 });
  let u = feed.poll()!;
  assert.deepEqual(u.runs.map((r) => [r.id, r.status]), [['a', 'running']]);
  assert.equal(u.metrics.length, 8, 'loss and rewards/margins for 4 steps; learning_rate is not a curve');
  assert.ok(u.metrics.every(([run, , name]) => run === 'a' && name !== 'learning_rate'));
  assert.equal(feed.poll(), null, 'nothing is sent twice');

  finishRun(db, 'a', 'interrupted', { step: 4, loss: 0.25 });
  startRun(db, { id: 'b', kind: 'sft' });
  logMetrics(db, 'b', 1, { loss: 3 });
  u = feed.poll()!;
  assert.deepEqual(u.runs.map((r) => r.id).sort(), ['a', 'b']);
  assert.deepEqual(u.metrics, [['b', 1, 'loss', 3]]);

  // Resume a from step 2: its steps 3 and 4 are deleted and step 3 is redone with another value.
  startRun(db, { id: 'a', kind: 'dpo' });
  truncateMetrics(db, 'a', 2);
  logMetrics(db, 'a', 3, { loss: 0.9, 'rewards/margins': 9 });
  u = feed.poll()!;
  assert.deepEqual(u.replaceMetrics, ['a'], 'the page must drop the old steps of a');
  const aSteps = u.metrics.filter(([run]) => run === 'a');
  assert.deepEqual([...new Set(aSteps.map(([, step]) => step))].sort(), [1, 2, 3], 'step 4 is gone');
  assert.ok(aSteps.some(([, step, name, v]) => step === 3 && name === 'loss' && v === 0.9));
});

test('feed: when the newest metric rows are deleted (resume of the latest run) the page gets the whole state again', () => {
  const db = openStore(join(tmp, 'feed2.db'));
  startRun(db, { id: 'a', kind: 'sft' });
  for (let s = 1; s <= 4; s++) logMetrics(db, 'a', s, { loss: 1 / s });
  const feed = new StoreFeed(db);
  truncateMetrics(db, 'a', 2);
  logMetrics(db, 'a', 3, { loss: 7 }); // reuses a rowid below the feed's cursor
  const u = feed.poll()!;
  assert.equal(u.reset, true);
  assert.deepEqual(u.metrics.map(([, step, , v]) => [step, v]), [[1, 1], [2, 0.5], [3, 7]]);
});

test('feed: a study is sent whole when any of its rows changes, with each method\'s frontier anchored at the base', () => {
  const db = openStore(join(tmp, 'feed3.db'));
  const feed = new StoreFeed(db);
  recordStudy(db, { id: '/s', name: 'toy', baseReward: 0.1, baseKl: 0 });
  const cp = (run: string, method: string, step: number, kl: number, reward: number) =>
    recordStudyCheckpoint(db, { study: '/s', run, method, setting: {}, seed: 1, step, kl, reward });
  cp('dpo-1', 'dpo', 5, 1, 0.3);
  cp('dpo-1', 'dpo', 10, 2, 0.25); // dominated: more KL, less reward
  cp('ppo-1', 'ppo', 5, 0.5, 0.2);
  let u = feed.poll()!;
  assert.equal(u.studies.length, 1);
  const v = u.studies[0]!;
  assert.equal(v.checkpoints.length, 3);
  assert.deepEqual(v.frontier.filter((p) => p.method === 'DPO').map((p) => [p.kl, p.reward]), [[0, 0.1], [1, 0.3]]);
  assert.deepEqual(v.frontier.filter((p) => p.method === 'PPO').map((p) => [p.kl, p.reward]), [[0, 0.1], [0.5, 0.2]]);
  assert.equal(feed.poll(), null);
  recordStudyRun(db, { study: '/s', run: 'ppo-1', method: 'ppo', seed: 1, status: 'diverged', reason: 'KL NaN' });
  u = feed.poll()!;
  assert.equal(u.studies[0]!.runs.find((r) => r.run === 'ppo-1')!.status, 'diverged');
});

test('evalView: a running evaluation silent for over two minutes is stale; a leaderboard is ranked by rating, then axes', () => {
  const now = Date.parse('2026-12-06T12:00:00Z');
  const row = {
    id: 'e', name: 'n', dir: null, status: 'running' as const, started: '2026-12-06T11:50:00Z', finished: null, phase: 'responses', done: 3, total: 9,
    models: [{ label: 'a', provider: 'local', model: 'a' }, { label: 'b', provider: 'local', model: 'b' }], summary: null, error: null, seq: 1,
  };
  assert.equal(evalView({ ...row, updated: new Date(now - STALE_MS - 1000).toISOString() }, [], now).stale, true);
  assert.equal(evalView({ ...row, updated: new Date(now - 5000).toISOString() }, [], now).stale, false);
  const v = evalView({ ...row, status: 'completed', updated: row.started }, [
    { model: 'a', scope: 'axis', metric: 'sentiment', value: 0.9 },
    { model: 'a', scope: 'rating', metric: 'rating', value: 990, lo: 980, hi: 1000 },
    { model: 'b', scope: 'rating', metric: 'rating', value: 1010 },
  ], now);
  assert.equal(v.stale, false);
  assert.equal(v.primary, 'rating');
  assert.deepEqual(v.scores.map((x) => [x.label, x.score, x.lo]), [['b', 1010, null], ['a', 990, 980]]);
  assert.deepEqual(v.rows, [['b', 1010, null], ['a', 990, 0.9]]);
});

// ---- the page, live ----------------------------------------------------------------------------------

// A tiny model and SFT data, as in test/cli/train.test.ts.
writeFileSync(join(tmp, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson(['<|endoftext|>'])));
writeFileSync(join(tmp, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<|endoftext|>', eos_token: '<|endoftext|>' }));
const words = ['hot', 'cold', 'big', 'small', 'up', 'down'];
writeFileSync(
  join(tmp, 'chat.jsonl'),
  Array.from({ length: 24 }, (_, i) => JSON.stringify({ messages: [{ role: 'user', content: `opposite of ${words[i % 6]}?` }, { role: 'assistant', content: words[(i % 6) ^ 1] }] })).join('\n') + '\n',
);
const model = {
  init: { model_type: 'llama', vocab_size: 257, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 64, bos_token_id: 256, eos_token_id: 256 },
  tokenizer: 'tokenizer.json',
};
writeFileSync(join(tmp, 'sft.yaml'), stringify({ model, seed: 7, learning_rate: 3e-3, per_device_train_batch_size: 4, max_steps: 30, eval_steps: 10, data: { train: 'chat.jsonl', eval_fraction: 0.25 } }));

function cli(args: string[], env: Record<string, string>): { child: ChildProcess; done: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', ...args], { cwd: ROOT, env: { ...process.env, ...env } });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>((res) => child.on('close', (code, signal) => res({ code, signal, out })));
  return { child, done };
}

test('page in Chromium: a real `alignlab train sft` run appears and its loss curve grows without a reload; no console errors; nothing fetched from outside 127.0.0.1', { timeout: 180_000 }, async (t) => {
  if (!needChromium(t)) return;
  const dbPath = join(tmp, 'live.db');
  const dash = await startDashboard({ dbPath, port: 0 });
  const browser = await launch();
  try {
    const { page, requests, problems, navigations } = await watchedPage(browser);
    await page.goto(dash.url, { waitUntil: 'load' });
    await page.waitForSelector('#live.on');
    assert.equal(await waitForCount(page, 'chart-loss', 'table', (n) => n >= 0, 'the chart exists'), 0, 'an empty store: no points yet');
    assert.equal(await page.isVisible('#runs-empty'), true);

    const out = join(tmp, 'run-sft');
    const run = cli(['train', 'sft', '--config', join(tmp, 'sft.yaml'), '--out', out], { ALIGNLAB_DB: dbPath, ALIGNLAB_DEVICE: 'wasm' });
    // The first loss point arrives while the run is going; then more, with no reload in between.
    const first = await waitForCount(page, 'chart-loss', 'table', (n) => n > 0, 'no loss point arrived');
    const r = await run.done;
    assert.equal(r.code, 0, r.out);
    const rows = readMetrics(out);
    const expected = rows.reduce((n, m) => n + Object.keys(m).filter((k) => /loss/.test(k) && Number.isFinite(m[k])).length, 0);
    const last = await waitForCount(page, 'chart-loss', 'table', (n) => n === expected, `expected all ${expected} loss points of the run`);
    console.log(`loss points on the page: ${first} when the first arrived, ${last} at the end (${rows.length} steps in metrics.jsonl)`);
    assert.ok(last > first, `the chart grew from ${first} to ${last} points`);
    assert.equal(navigations(), 1, 'the page was loaded once and never reloaded');
    assert.match(await page.textContent('#runs tbody') ?? '', /run-sft.*completed/);
    assert.match(r.out, /watch live: alignlab dashboard/, 'train prints the dashboard hint');

    // The loss chart drew a line and one symbol per point.
    const marks = await page.evaluate(() => document.querySelectorAll('#chart-loss svg g.mark-symbol.role-mark path').length);
    assert.equal(marks, expected);
    assert.deepEqual(problems, [], 'no console errors or warnings');
    const origin = new URL(dash.url).origin;
    const foreign = requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('data:'));
    assert.deepEqual(foreign, [], 'every request goes to the dashboard on 127.0.0.1');
    assert.ok(requests.some((u) => u.endsWith('/assets/vega.min.js')) && requests.some((u) => u.endsWith('/events')));
  } finally {
    await browser.close();
    await dash.close();
  }
});

test('page in Chromium: a study\'s reward-vs-KL frontier fills in checkpoint by checkpoint', { timeout: 120_000 }, async (t) => {
  if (!needChromium(t)) return;
  const dbPath = join(tmp, 'study.db');
  const db = openStore(dbPath);
  recordStudy(db, { id: '/studies/toy', dir: '/studies/toy', name: 'toy <b>study</b>', baseReward: 0.05, baseKl: 0 });
  const cp = (run: string, method: string, step: number, kl: number, reward: number) =>
    recordStudyCheckpoint(db, { study: '/studies/toy', run, method, setting: { beta: 0.1 }, seed: 1, step, kl, reward });
  cp('dpo-beta=0.1-s1', 'dpo', 0, 0, 0.05);
  const dash = await startDashboard({ dbPath, port: 0, pollMs: 100 });
  const browser = await launch();
  try {
    const { page, problems, requests, navigations } = await watchedPage(browser);
    await page.goto(dash.url, { waitUntil: 'load' });
    await page.waitForSelector('#live.on');
    assert.equal(await waitForCount(page, 'chart-frontier', 'points', (n) => n === 1, 'the first checkpoint'), 1);
    for (let step = 1; step <= 4; step++) {
      cp('dpo-beta=0.1-s1', 'dpo', step * 10, step * 0.5, 0.05 + 0.1 * step);
      cp('ppo-klCoef=0.05-s1', 'ppo', step * 10, step * 0.7, 0.05 + 0.05 * step);
      await waitForCount(page, 'chart-frontier', 'points', (n) => n === 1 + 2 * step, `checkpoint ${step} of both runs`);
    }
    // Frontier: DPO's 5 points (base anchor + 4 increasing) and PPO's 5 (base + 4).
    assert.equal(await waitForCount(page, 'chart-frontier', 'frontier', (n) => n === 10, 'both frontiers'), 10);
    assert.equal(await count(page, 'chart-frontier', 'base'), 1);
    assert.equal(navigations(), 1);
    const title = await page.textContent('#study-title');
    assert.ok(title?.includes('toy <b>study</b>'), 'store text is shown as text, not markup');
    assert.match(await page.textContent('#study-runs tbody') ?? '', /ppo-klCoef=0\.05-s1.*PPO.*beta=0\.1/);
    await page.screenshot({ path: join(tmp, 'dashboard-study.png'), fullPage: true });
    console.log(`screenshot: ${join(tmp, 'dashboard-study.png')}`);
    assert.deepEqual(problems, []);
    const origin = new URL(dash.url).origin;
    assert.deepEqual(requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('data:')), []);
  } finally {
    await browser.close();
    await dash.close();
  }
});

// ---- the command -------------------------------------------------------------------------------------

const waitFor = async (cond: () => boolean, what: string, ms = 30_000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) assert.fail(what);
    await new Promise((r) => setTimeout(r, 50));
  }
};

test('alignlab dashboard: serves on 127.0.0.1 only, refuses other Host names, exits 130 on SIGINT and 143 on SIGTERM', { timeout: 60_000 }, async () => {
  const dbPath = join(tmp, 'cli.db');
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    const d = cli(['dashboard', '--port', '0', '--db', dbPath], {});
    let out = '';
    d.child.stdout!.on('data', (x) => (out += x));
    await waitFor(() => /http:\/\/127\.0\.0\.1:\d+\//.test(out), `no URL printed: ${out}`);
    const url = out.match(/http:\/\/127\.0\.0\.1:\d+\//)![0];
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'/);
    assert.match(await page.text(), /alignlab dashboard/);
    const port = new URL(url).port;
    const misdirected = await new Promise<number | undefined>((res, rej) =>
      httpGet({ host: '127.0.0.1', port, path: '/api/state', headers: { host: `evil.example:${port}` } }, (r) => {
        r.resume();
        res(r.statusCode);
      }).on('error', rej),
    );
    assert.equal(misdirected, 421, 'a request under another host name (DNS rebinding) is refused');
    d.child.kill(sig);
    const r = await d.done;
    assert.equal(r.code, code, `${sig}: ${r.out}`);
  }
});

test('alignlab dashboard: a bad --port is a usage error; a busy port says so in one line', { timeout: 60_000 }, async () => {
  let r = await cli(['dashboard', '--port', '70000'], {}).done;
  assert.equal(r.code, 2);
  assert.match(r.out, /--port must be in 0\.\.65535, got "70000"/);
  const busy = createServer();
  await new Promise<void>((res) => busy.listen(0, '127.0.0.1', () => res()));
  const port = (busy.address() as { port: number }).port;
  try {
    r = await cli(['dashboard', '--port', String(port), '--db', join(tmp, 'busy.db')], {}).done;
    assert.equal(r.code, 1);
    assert.match(r.out, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use`));
    assert.doesNotMatch(r.out, /\n\s+at /, 'no stack trace');
  } finally {
    busy.close();
  }
});

test('page in Chromium: an evaluation\'s progress moves and its leaderboard appears when it completes', { timeout: 120_000 }, async (t) => {
  if (!needChromium(t)) return;
  const dbPath = join(tmp, 'eval.db');
  const db = openStore(dbPath);
  const dash = await startDashboard({ dbPath, port: 0, pollMs: 100 });
  const browser = await launch();
  try {
    const { page, problems, requests, navigations } = await watchedPage(browser);
    await page.goto(dash.url, { waitUntil: 'load' });
    await page.waitForSelector('#live.on');
    const models = [{ label: 'tiny-a', provider: 'local', model: 'a' }, { label: 'tiny-b', provider: 'local', model: 'b' }, { label: 'tiny-<c>', provider: 'local', model: 'c' }];
    startEval(db, { id: 'e1', name: 'toy eval', dir: '/evals/toy', started: new Date().toISOString(), models });
    for (const done of [0, 4, 9]) {
      updateEvalProgress(db, 'e1', { phase: 'responses', done, total: 12 });
      await page.waitForFunction((d) => document.querySelector('[data-eval="e1"] .eval-progress')?.textContent?.includes(`${d} / 12`), done);
    }
    recordEvalResult(db, {
      id: 'e1', name: 'toy eval', dir: '/evals/toy', started: new Date().toISOString(), finished: new Date().toISOString(), models, summary: {},
      scores: [
        { model: 'tiny-a', scope: 'rating', metric: 'rating', value: 1010, lo: 990, hi: 1030 },
        { model: 'tiny-b', scope: 'rating', metric: 'rating', value: 1040, lo: 1020, hi: 1060 },
        { model: 'tiny-<c>', scope: 'rating', metric: 'rating', value: 950, lo: 930, hi: 970 },
        { model: 'tiny-a', scope: 'axis', metric: 'accuracy', value: 0.5 },
        { model: 'tiny-b', scope: 'task:arith', metric: 'exact_match', value: 0.25 },
      ],
    });
    await page.waitForFunction(() => document.querySelector('[data-eval="e1"] .status')?.textContent === 'completed');
    const chartId = await page.evaluate(() => document.querySelector('[data-eval="e1"] .chart')!.id);
    assert.equal(await waitForCount(page, chartId, 'table', (n) => n === 3, 'three rated models'), 3);
    const table = await page.evaluate(() => Array.from(document.querySelectorAll('[data-eval="e1"] table.leaderboard tr'), (tr) => Array.from(tr.children, (c) => c.textContent)));
    assert.deepEqual(table[0], ['model', 'rating', 'accuracy', 'arith exact_match']);
    assert.deepEqual(table.slice(1).map((r) => r[0]), ['tiny-b', 'tiny-a', 'tiny-<c>'], 'ranked by rating, names shown as text');
    assert.deepEqual(table[2], ['tiny-a', '1010', '0.5', '–']);
    assert.equal(navigations(), 1);
    await page.screenshot({ path: join(tmp, 'dashboard-eval.png'), fullPage: true });
    console.log(`screenshot: ${join(tmp, 'dashboard-eval.png')}`);
    assert.deepEqual(problems, []);
    const origin = new URL(dash.url).origin;
    assert.deepEqual(requests.filter((u) => !u.startsWith(origin + '/') && !u.startsWith('data:')), []);
  } finally {
    await browser.close();
    await dash.close();
  }
});
