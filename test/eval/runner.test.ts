import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStore } from '../../src/store/db.js';
import { evalScores, listEvals, type EvalRow } from '../../src/store/evals.js';
import { startFaultServer } from '../helpers/fault-server.js';
import { registerProvider } from '../../src/eval/registry.js';
import { runEvalFile, type EvalResult, type SampleRecord } from '../../src/eval/runner.js';
import { tokenF1, maxOverGold, repetitionRate } from '../../src/eval/metrics/index.js';
import { mean } from '../../src/stats/index.js';
import { answered, ruleFactory } from './helpers/rule-provider.js';
import { SAMPLES_PER_MODEL, writeEvalConfig, writeTaskFixtures } from './helpers/fixtures.js';

const TASKS = 'tasks: [qa.yaml, gen.yaml, sum.yaml, mc.yaml]\n';
const quiet = { log: () => {} };

before(() => registerProvider('rule', ruleFactory));

function readLogs(out: string): SampleRecord[] {
  const recs: SampleRecord[] = [];
  for (const task of readdirSync(join(out, 'samples')))
    for (const f of readdirSync(join(out, 'samples', task))) recs.push(...readFileSync(join(out, 'samples', task, f), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as SampleRecord));
  return recs;
}

const keyOf = (r: SampleRecord) => `${r.model}|${r.task}|${r.id}`;

test('two models, a judge and a reference model: every sample scored once, aggregates match the logs', async () => {
  const d = writeTaskFixtures();
  const cfg = writeEvalConfig(
    d,
    'eval.yaml',
    `name: full
providers:
  - id: rule:extractive
    label: extractive
  - id: rule:loop
    label: looper
    concurrency: 2
${TASKS}judge:
  provider: rule:judge
reference: rule:lm
bootstrap: 200
out: out
`,
  );
  const db = openStore(join(d, 'store.db'));
  const r = await runEvalFile(cfg, { db, ...quiet });
  const out = join(d, 'out');
  const logs = readLogs(out);
  assert.equal(logs.length, 2 * SAMPLES_PER_MODEL);
  assert.equal(new Set(logs.map(keyOf)).size, logs.length, 'no sample twice');
  for (const f of ['results.json', 'config.resolved.json']) assert.ok(existsSync(join(out, f)), f);

  // Per-task means are the means of the logged per-sample metrics (main prompt only).
  for (const t of r.tasks)
    for (const [model, metrics] of Object.entries(t.scores))
      for (const [m, s] of Object.entries(metrics)) {
        const xs = logs.filter((x) => x.model === model && x.task === t.name && x.template === 0 && x.metrics[m] !== undefined).map((x) => x.metrics[m]!);
        assert.ok(Math.abs(s.value - mean(xs)) < 1e-12, `${t.name}/${model}/${m}`);
        assert.equal(s.n, xs.length);
      }
  // Logged metrics recompute from the logged text.
  for (const x of logs.filter((l) => l.task === 'qa')) assert.equal(x.metrics.f1, maxOverGold(tokenF1, x.output!, x.references));
  for (const x of logs.filter((l) => l.task === 'gen')) assert.equal(x.metrics.repetition_rate, repetitionRate(x.output!, 4));

  const qa = r.tasks.find((t) => t.name === 'qa')!;
  assert.ok(qa.scores.extractive!.f1!.value > qa.scores.looper!.f1!.value, 'extractive answers beat looping ones on QA F1');
  assert.equal(qa.by_template.extractive!.length, 2);
  // Reference perplexity and judge grades reached every text sample; MC used log-likelihoods.
  for (const x of logs.filter((l) => l.task === 'gen' || l.task === 'sum')) {
    assert.ok(Number.isFinite(x.ppl!) && x.ppl! > 1, `ppl of ${keyOf(x)}`);
    assert.ok(typeof x.judge_score === 'number' && x.judge_score >= 1 && x.judge_score <= 10);
    assert.ok(x.metrics.coherence! >= 0 && x.metrics.coherence! <= 1);
  }
  for (const x of logs.filter((l) => l.task === 'mc')) assert.equal(x.choice_logprobs!.length, x.choices!.length);

  // Axes: the looping model is less coherent; all in [0,1] with CIs around the estimate.
  assert.ok(r.axes.extractive!.response_coherence!.value > r.axes.looper!.response_coherence!.value);
  for (const m of ['extractive', 'looper'])
    for (const a of Object.values(r.axes[m]!)) assert.ok(a!.lo <= a!.value && a!.value <= a!.hi && a!.lo >= 0 && a!.hi <= 1);

  // Pairwise: 4 gen + 4 sum prompts, one pair of models → 8 comparisons, 16 judge calls.
  const pw = r.pairwise!;
  assert.equal(pw.comparisons, 8);
  const t = pw.totals;
  assert.equal(t.a + t.b + t.tie + t.inconsistent + t.invalid, 8);
  assert.ok(t.a >= 6, `the variety-preferring judge should favour the non-looping model: ${JSON.stringify(t)}`);
  assert.equal(pw.ratings[0]!.model, 'extractive');
  assert.equal(pw.baseline, 'extractive');
  assert.ok(pw.vs_baseline.looper!.winRate < 0.3);
  const judgeCalls = answered.get('rule:judge')!.length;
  assert.equal(judgeCalls, 16 + 2 * 8, '16 pairwise + one grade per gen/sum sample per model');
  assert.equal(answered.get('rule:lm')!.length, 2 * 8);

  // A second run is free: no provider is called, the results are identical.
  const before = new Map([...answered].map(([k, v]) => [k, v.length]));
  const again = await runEvalFile(cfg, { db, ...quiet });
  for (const [k, v] of answered) assert.equal(v.length, before.get(k), `${k} was called again`);
  assert.equal(again.calls, 0);
  assert.deepEqual(strip(again), strip(r));
  assert.deepEqual(readLogs(out).map((x) => ({ ...x, cached: false })), logs.map((x) => ({ ...x, cached: false })));
});

/** Results without timing fields. */
function strip(r: EvalResult) {
  const { wall_ms: _w, created_at: _c, cache: _k, calls: _n, samples, ...rest } = r;
  return { ...rest, samples: samples.map(({ cached: _x, ...s }) => s) };
}

test('a run that crashes after k responses resumes with every sample answered exactly once', async () => {
  const d = writeTaskFixtures();
  const body = (extra: string) => `name: resume\nproviders:\n  - id: rule:verbose#resume\n    concurrency: 3\n${extra}${TASKS}bootstrap: 50\nout: out\n`;
  const crashing = writeEvalConfig(d, 'crash.yaml', body('    config: { failAfter: 7 }\n'));
  const clean = writeEvalConfig(d, 'clean.yaml', body(''));
  const dbFile = join(d, 'store.db');
  const id = 'rule:verbose#resume';
  answered.delete(id);
  await assert.rejects(runEvalFile(crashing, { db: openStore(dbFile), ...quiet }), /simulated crash after 7 calls/);
  const first = [...answered.get(id)!];
  assert.equal(first.length, 7);
  // Every response that came back is in the store, written as it arrived (checked on a separate connection).
  const raw = new Database(dbFile, { readonly: true });
  assert.equal((raw.prepare("SELECT COUNT(*) AS n FROM eval_cache WHERE provider = ?").get(id) as { n: number }).n, 7);
  raw.close();

  answered.delete(id);
  const resumed = await runEvalFile(clean, { db: openStore(dbFile), ...quiet });
  const second = answered.get(id)!;
  assert.equal(second.length, SAMPLES_PER_MODEL - 7, 'only the missing samples are asked');
  const all = [...first, ...second];
  assert.equal(new Set(all).size, SAMPLES_PER_MODEL, 'each request answered exactly once across both runs');
  assert.equal(resumed.cache.hits, 7);
  const logs = readLogs(join(d, 'out'));
  assert.equal(logs.length, SAMPLES_PER_MODEL);
  assert.equal(new Set(logs.map(keyOf)).size, SAMPLES_PER_MODEL);
  assert.equal(logs.filter((x) => x.cached).length, 7);

  // The resumed result equals an uninterrupted run on an empty store.
  answered.delete(id);
  const fresh = await runEvalFile(clean, { db: openStore(join(d, 'fresh.db')), out: join(d, 'out-fresh'), ...quiet });
  assert.equal(answered.get(id)!.length, SAMPLES_PER_MODEL);
  assert.deepEqual(strip(resumed).tasks, strip(fresh).tasks);
  assert.deepEqual(strip(resumed).axes, strip(fresh).axes);

  // --no-cache asks again for everything.
  answered.delete(id);
  const nc = await runEvalFile(clean, { db: openStore(dbFile), noCache: true, ...quiet });
  assert.equal(answered.get(id)!.length, SAMPLES_PER_MODEL);
  assert.equal(nc.cache.hits, 0);
});

test('providers without log-likelihoods skip multiple choice with a note; a position-biased judge yields only inconsistent verdicts', async () => {
  const d = writeTaskFixtures();
  const cfg = writeEvalConfig(
    d,
    'eval.yaml',
    `name: skip
providers:
  - id: rule:extractive#nolp
    label: a
    config: { loglikelihood: false }
  - id: rule:verbose#x
    label: b
${TASKS}judge:
  provider: rule:lazy-judge
  grade: false
  baseline: b
bootstrap: 100
out: out
`,
  );
  const lines: string[] = [];
  const r = await runEvalFile(cfg, { db: openStore(join(d, 'store.db')), log: (l) => lines.push(l) });
  const mc = r.tasks.find((t) => t.name === 'mc')!;
  assert.match(mc.skipped.a!, /log-likelihoods/);
  assert.ok(mc.scores.b && !mc.scores.a);
  assert.ok(r.notes.some((n) => n.includes('skipped mc')));
  assert.equal(r.samples.filter((s) => s.model === 'a').length, SAMPLES_PER_MODEL - 5);
  const t = r.pairwise!.totals;
  assert.equal(t.inconsistent, r.pairwise!.comparisons, 'a judge that always says [[A]] is caught by position swapping');
  // All ties → equal ratings; LC and raw win rate exactly 0.5 against the baseline.
  const [x, y] = r.pairwise!.ratings;
  assert.ok(Math.abs(x!.value - y!.value) < 1e-6);
  assert.ok(Math.abs(r.pairwise!.vs_baseline.a!.winRate - 0.5) < 1e-12);
  assert.ok(Math.abs(r.pairwise!.vs_baseline.a!.lcWinRate - 0.5) < 1e-6);
  // Progress lines: done/total, rate and ETA.
  assert.ok(lines.some((l) => /^\[responses\] \d+\/45 \(\d+%\) · [\d.]+\/s · (ETA|done)/.test(l)), lines.join('\n'));
  assert.ok(lines.some((l) => l.startsWith('[responses] 45/45 (100%)')));
});

test('per-provider concurrency limit holds; a bad task file fails before any provider is called', async () => {
  const d = writeTaskFixtures();
  let inFlight = 0, peak = 0;
  registerProvider('slow', (target, id) => ({
    id,
    model: 'slow',
    async complete() {
      inFlight++;
      peak = Math.max(peak, inFlight);
      await new Promise((res) => setTimeout(res, 3));
      inFlight--;
      return { text: 'ok', finishReason: 'stop' as const };
    },
  }));
  const cfg = writeEvalConfig(d, 'c.yaml', `providers:\n  - id: slow:x\n    concurrency: 3\ntasks: [qa.yaml, gen.yaml]\nbootstrap: 0\nout: out\n`);
  const r = await runEvalFile(cfg, { db: openStore(join(d, 's.db')), ...quiet });
  assert.equal(peak, 3);
  assert.equal(r.samples.length, 16);
  // A provider that counts how often it is created and asked: a bad task file must cost neither.
  let created = 0, asked = 0;
  registerProvider('counting', (target, id) => {
    created++;
    return { id, model: 'counting', complete: async () => (asked++, { text: 'ok', finishReason: 'stop' as const }) };
  });
  const bad = writeEvalConfig(d, 'bad.yaml', `providers: [counting:y]\ntasks: [qa.yaml, missing.yaml]\n`);
  await assert.rejects(runEvalFile(bad, { db: openStore(join(d, 's.db')), ...quiet }), (e: Error) => e.message === `${join(d, 'missing.yaml')}: file not found`);
  assert.equal(asked, 0, 'no provider call before the task files are known good');
  assert.equal(created, 0, 'no provider even opened');
  // The same config with the task file fixed does call it: the counter can count.
  await runEvalFile(writeEvalConfig(d, 'good.yaml', `providers: [counting:y]\ntasks: [qa.yaml]\nbootstrap: 0\nout: out-good\n`), { db: openStore(join(d, 's.db')), ...quiet });
  assert.ok((asked as number) > 0, `asked ${asked}`);
  assert.equal(created as number, 1);
  const badCfg = writeEvalConfig(d, 'bad2.yaml', `providers: [slow:y]\ntasks: [qa.yaml]\nconcurency: 2\n`);
  await assert.rejects(runEvalFile(badCfg, { db: openStore(join(d, 's.db')), ...quiet }), /bad2\.yaml:3: field "concurency" is not a known field/);
  await assert.rejects(
    runEvalFile(writeEvalConfig(d, 'bad3.yaml', `providers: [nope:y]\ntasks: [qa.yaml]\n`), { db: openStore(join(d, 's.db')), ...quiet }),
    /unknown provider kind "nope"/,
  );
});

test('a hung request against an HTTP server: retried after the first-byte timeout, the progress line keeps printing while it waits, every sample answered once', async () => {
  const srv = await startFaultServer({ schedule: (a) => (a.n === 0 ? { kind: 'hang' } : { kind: 'ok' }) });
  try {
    const d = writeTaskFixtures();
    const cfg = writeEvalConfig(
      d,
      'hang.yaml',
      `name: hang\nproviders:\n  - id: openai-compat:${srv.baseUrl}#m\n    config: { first_byte_timeout_ms: 2500, base_delay_ms: 5, max_delay_ms: 20 }\ntasks: [qa.yaml]\nbootstrap: 0\nout: out\n`,
    );
    const lines: string[] = [];
    const r = await runEvalFile(cfg, { db: openStore(join(d, 's.db')), log: (l) => lines.push(l), heartbeatMs: 100 });
    assert.equal(r.samples.length, 12);
    for (const s of r.samples) assert.equal(s.output, `answer to ${s.messages!.at(-1)!.content}`);
    // The hung first request arrived twice (hang, then the retry); every prompt was answered exactly once.
    assert.equal(srv.arrivals.length, 13);
    assert.equal(srv.answered.length, 12);
    assert.equal(new Set(srv.answered.map((a) => a.prompt)).size, 12);
    assert.equal(srv.arrivals.filter((a) => a.prompt === srv.arrivals[0]!.prompt).length, 2);
    // While the hung request waited, the heartbeat kept printing the progress line with the oldest wait (≥ 1 s;
    // only heartbeat lines carry "waiting on"; under load other requests may be the slow ones, which is fine).
    const beats = lines.filter((l) => /^\[responses\] \d+\/12 \(\d+%\) .* · waiting on \d+ requests?, oldest [1-9]\d*s$/.test(l));
    assert.ok(beats.length >= 2, lines.join('\n'));
  } finally {
    await srv.close();
  }
});

test('evaluations are recorded in the store: running while they run, then completed with every reported number; a failure is recorded as failed', async () => {
  const d = writeTaskFixtures();
  const db = openStore(join(d, 'rec.db'));
  const seen: EvalRow[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((res) => (release = res));
  registerProvider('gated', (target, id) => ({
    id,
    model: 'gated',
    async complete(req) {
      if (req.messages?.at(-1)?.content.includes('Pavel')) {
        seen.push(listEvals(db)); // in flight: the evaluation is visible as running
        await gate;
      }
      return { text: 'Pavel', finishReason: 'stop' as const };
    },
  }));
  const cfg = writeEvalConfig(d, 'rec.yaml', `name: rec\nproviders:\n  - id: gated:a\n    label: a\ntasks: [qa.yaml]\nbootstrap: 100\nout: out\n`);
  const p = runEvalFile(cfg, { db, ...quiet, progressEveryMs: 0 });
  while (seen.length === 0) await new Promise((res) => setTimeout(res, 5));
  release();
  const r = await p;
  const during = seen[0]!.find((e) => e.name === 'rec')!;
  assert.equal(during.status, 'running');
  assert.deepEqual(during.models, [{ label: 'a', provider: 'gated:a', model: 'gated' }]);
  const [row] = listEvals(db).filter((e) => e.name === 'rec');
  assert.equal(row!.status, 'completed');
  assert.equal(row!.dir, join(d, 'out'));
  assert.deepEqual((row!.summary as EvalResult).tasks, JSON.parse(JSON.stringify(r.tasks)));
  const scores = evalScores(db, row!.id);
  const cu = r.axes.a!.contextual_understanding!;
  assert.deepEqual(scores.find((s) => s.scope === 'axis' && s.metric === 'contextual_understanding'), { model: 'a', scope: 'axis', metric: 'contextual_understanding', value: cu.value, lo: cu.lo, hi: cu.hi, n: cu.n });
  const f1 = r.tasks[0]!.scores.a!.f1!;
  assert.deepEqual(scores.find((s) => s.scope === 'task:qa' && s.metric === 'f1'), { model: 'a', scope: 'task:qa', metric: 'f1', value: f1.value, lo: f1.lo, hi: f1.hi, n: f1.n });
  // A second run of the same config is a second row: earlier results are never overwritten.
  await runEvalFile(cfg, { db, ...quiet });
  assert.equal(listEvals(db).filter((e) => e.name === 'rec' && e.status === 'completed').length, 2);

  const failing = writeEvalConfig(d, 'fail.yaml', `name: failing\nproviders:\n  - id: rule:verbose#rec\n    config: { failAfter: 2 }\ntasks: [qa.yaml]\nout: out-fail\n`);
  await assert.rejects(runEvalFile(failing, { db, ...quiet }), /simulated crash/);
  const [bad] = listEvals(db).filter((e) => e.name === 'failing');
  assert.equal(bad!.status, 'failed');
  assert.match(bad!.error!, /simulated crash after 2 calls/);
});
