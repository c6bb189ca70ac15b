import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { main } from '../../src/cli/eval.js';
import { UsageError } from '../../src/cli/args.js';
import { registerProvider } from '../../src/eval/registry.js';
import type { EvalResult } from '../../src/eval/runner.js';
import { ruleFactory } from './helpers/rule-provider.js';

const CHROMIUM = '/usr/bin/chromium';
const EXAMPLES = resolve(import.meta.dirname, '../../examples/tasks');

before(() => registerProvider('rule', ruleFactory));

/** Runs the CLI on the shipped example tasks with two rule-based models and a rule-based judge. */
async function runExamples(): Promise<{ out: string; result: EvalResult }> {
  const d = mkdtempSync(join(tmpdir(), 'alignlab-cli-'));
  const tasks = ['qa_distractors', 'qa_long_context', 'summarization', 'open_generation', 'multiple_choice'].map((t) => join(EXAMPLES, `${t}.yaml`));
  writeFileSync(
    join(d, 'eval.yaml'),
    `name: cli
providers:
  - id: rule:extractive
    label: extractive
  - id: rule:loop
    label: looper
tasks:
${tasks.map((t) => `  - ${t}`).join('\n')}
judge:
  provider: rule:judge
reference: rule:lm
bootstrap: 200
`,
  );
  const out = join(d, 'out');
  const origWrite = process.stderr.write.bind(process.stderr);
  process.stderr.write = (() => true) as typeof process.stderr.write; // keep progress out of the test output
  const stdout = process.stdout.write.bind(process.stdout);
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    await main(['--config', join(d, 'eval.yaml'), '--out', out, '--db', join(d, 'store.db')]);
  } finally {
    process.stderr.write = origWrite;
    process.stdout.write = stdout;
  }
  return { out, result: JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as EvalResult };
}

let run: Promise<{ out: string; result: EvalResult }>;
before(() => {
  run = runExamples();
});

test('alignlab eval on the example tasks writes the leaderboard with CIs and a strength/limitation table', async () => {
  const { out, result } = await run;
  const md = readFileSync(join(out, 'leaderboard.md'), 'utf8');
  assert.equal(result.tasks.length, 5);
  // Leaderboard rows carry axis values with CIs exactly as results.json has them.
  for (const m of ['extractive', 'looper']) {
    const cu = result.axes[m]!.contextual_understanding!;
    assert.ok(md.includes(`${cu.value.toFixed(3)} [${cu.lo.toFixed(3)}, ${cu.hi.toFixed(3)}]`), `${m} CU in the leaderboard`);
    assert.match(md, new RegExp(`^\\| ${m} \\| .+ vs field mean .+ \\| .+ \\|$`, 'm'));
  }
  // Strength/limitation follow from the numbers: the strength's margin over the field is the largest.
  const field = (a: 'contextual_understanding' | 'response_coherence' | 'adaptability') => (result.axes.extractive![a]!.value + result.axes.looper![a]!.value) / 2;
  const margins = (['contextual_understanding', 'response_coherence', 'adaptability'] as const).map((a) => [a, result.axes.extractive![a]!.value - field(a)] as const);
  const best = margins.reduce((p, q) => (q[1] > p[1] ? q : p))[0];
  const label = { contextual_understanding: 'Contextual understanding', response_coherence: 'Response coherence', adaptability: 'Adaptability' }[best];
  assert.match(md, new RegExp(`^\\| extractive \\| ${label} `, 'm'));
  for (const t of ['qa_distractors', 'qa_long_context', 'news_summaries', 'open_generation', 'everyday_mc']) assert.match(md, new RegExp(`^### ${t}$`, 'm'));
  assert.match(md, /Rating \(95% CI\)/);
  assert.ok(result.axes.extractive!.contextual_understanding!.value > result.axes.looper!.contextual_understanding!.value);
});

test('leaderboard.html is self-contained and renders in headless Chromium without requests or errors', async (t) => {
  const { out, result } = await run;
  const html = readFileSync(join(out, 'leaderboard.html'), 'utf8');
  assert.doesNotMatch(html, /<script|<link|\bsrc=|\bhref=|https?:\/\//i);
  if (!existsSync(CHROMIUM)) {
    t.skip(`${CHROMIUM} absent`);
    return;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run'] });
  try {
    const page = await browser.newPage();
    const problems: string[] = [];
    const requests: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('request', (r) => requests.push(r.url()));
    const url = pathToFileURL(join(out, 'leaderboard.html')).href;
    await page.goto(url, { waitUntil: 'load' });
    const info = await page.evaluate(() => ({
      leaderboard: document.querySelectorAll('table#leaderboard tbody tr').length,
      strengths: Array.from(document.querySelectorAll('table#strengths tbody tr'), (tr) => tr.textContent ?? ''),
      tasks: document.querySelectorAll('table[id^="task-"]').length,
      bars: document.querySelectorAll('svg.ci').length,
      barWidth: document.querySelector('svg.ci')?.getBoundingClientRect().width ?? 0,
    }));
    assert.deepEqual(problems, []);
    assert.deepEqual(requests, [url]);
    assert.equal(info.leaderboard, 2);
    assert.equal(info.strengths.length, 2);
    assert.ok(info.strengths[0]!.includes('vs field mean'));
    assert.equal(info.tasks, result.tasks.length);
    assert.ok(info.bars >= 2 * 3 && info.barWidth > 50, `CI bars: ${info.bars}, width ${info.barWidth}`);
  } finally {
    await browser.close();
  }
});

test('alignlab eval: usage errors are clear', async () => {
  await assert.rejects(main([]), (e: Error) => e instanceof UsageError && /--config/.test(e.message));
  await assert.rejects(main(['--config', 'x.yaml', '--bogus']), /unknown flag --bogus/);
  await assert.rejects(main(['--config', '/nonexistent/eval.yaml']), (e: Error) => e.message === '/nonexistent/eval.yaml: file not found');
});

test('examples/eval.yaml is a valid config whose tasks all load', async () => {
  const { loadEvalConfig } = await import('../../src/eval/runner.js');
  const { loadTask } = await import('../../src/eval/tasks/index.js');
  const file = resolve(import.meta.dirname, '../../examples/eval.yaml');
  const cfg = loadEvalConfig(file);
  assert.ok(cfg.providers.length >= 2 && cfg.judge && cfg.reference);
  for (const t of cfg.tasks) assert.ok((await loadTask(resolve(EXAMPLES, '..', t))).samples.length > 0, t);
});
