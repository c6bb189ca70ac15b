// The generic loop on a tiny 2-layer MLP classifier defined here: training progress, metrics in
// JSONL and SQLite, no leaked references, exact resume after a crash, gradient accumulation and
// the NaN guard.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, np, nn, tree, Rng, type Arr } from '../../src/engine/index.js';
import { train, readMetrics, NonFiniteError, lossEvaluator, type DataSource, type Batch, type StepContext } from '../../src/train/loop.js';
import { ShuffledBatches } from '../../src/data/batching.js';
import { openStore } from '../../src/store/db.js';
import { getRun, getMetric, listRuns } from '../../src/store/runs.js';
import { listCheckpoints } from '../../src/train/checkpoint.js';

const D = 4, H = 16, K = 3;
type Params = { l1: { w: Arr; b: Arr }; l2: { w: Arr; b: Arr } };
type MB = { x: Arr; y: Arr; poison: Arr };
interface Ex { x: number[]; y: number }

before(async () => {
  await initEngine(); // ALIGNLAB_DEVICE, default wasm
});

function dataset(n: number, seed: number): Ex[] {
  const r = new Rng(seed);
  const teacher = Array.from({ length: D * K }, () => r.normal());
  return Array.from({ length: n }, () => {
    const x = Array.from({ length: D }, () => r.normal());
    const logits = Array.from({ length: K }, (_, k) => x.reduce((a, xi, i) => a + xi * teacher[i * K + k]!, 0));
    return { x, y: logits.indexOf(Math.max(...logits)) };
  });
}

function initParams(seed: number): Params {
  const r = new Rng(seed);
  const m = (rows: number, cols: number, s: number) => np.array(Float32Array.from({ length: rows * cols }, () => s * r.normal()), { shape: [rows, cols] });
  return { l1: { w: m(D, H, 0.5), b: np.zeros([H]) }, l2: { w: m(H, K, 0.5), b: np.zeros([K]) } };
}

// Cross-entropy with the jit-safe pick (ENGINE.md §3) + accuracy. `poison` is added to the loss: 0, or NaN to test the guard.
function lossFn(p: Params, b: MB): [Arr, Record<string, Arr>] {
  const h = nn.relu(np.matmul(b.x, p.l1.w).add(p.l1.b));
  const logits = np.matmul(h, p.l2.w).add(p.l2.b);
  const hit = b.y.reshape([-1, 1]).equal(np.arange(K));
  const logp = nn.logSoftmax(logits.ref, -1);
  const loss = np.where(hit.ref, logp, 0).sum(-1).mean().neg().add(b.poison);
  const best = np.argmax(logits, -1).reshape([-1, 1]).equal(np.arange(K));
  const acc = np.logicalAnd(best, hit).astype(np.float32).sum(-1).mean();
  return [loss, { accuracy: acc }];
}

const collate = (items: Ex[], poison = 0): Batch<MB> => ({
  batch: {
    x: np.array(Float32Array.from(items.flatMap((e) => e.x)), { shape: [items.length, D] }),
    y: np.array(Int32Array.from(items.map((e) => e.y)), { dtype: np.int32, shape: [items.length] }),
    poison: np.array(poison),
  },
  tokens: items.length,
});

/** Shuffled batches with noise drawn from the loop's RNG (so resume must restore that RNG too). */
class NoisySource implements DataSource<MB, Params> {
  inner: ShuffledBatches<Ex, MB>;
  constructor(items: Ex[], bs: number, seed: number, private poisonAt = -1) {
    this.inner = new ShuffledBatches({ items, batchSize: bs, seed, collate: (it) => ({ batch: it as never, tokens: 0 }) });
  }
  next(ctx: StepContext<Params>): Batch<MB> {
    const items = this.inner.next().batch as unknown as Ex[];
    const noisy = items.map((e) => ({ y: e.y, x: e.x.map((v) => v + 0.05 * ctx.rng.normal()) }));
    return collate(noisy, ctx.step === this.poisonAt ? NaN : 0);
  }
  state() {
    return this.inner.state();
  }
  restore(s: unknown) {
    this.inner.restore(s);
  }
}

const tmp = () => mkdtempSync(join(tmpdir(), 'alignlab-loop-'));
const base = (dir: string, db: string) => ({
  runDir: join(dir, 'run'),
  lossFn,
  optimizer: { lr: 0.05, weightDecay: 0.01 },
  schedule: { kind: 'cosine' as const, warmupSteps: 2 },
  maxGradNorm: 1.0,
  seed: 7,
  store: db,
  progress: false as const,
  kind: 'test',
});

test('trains a tiny MLP: loss falls, metrics go to JSONL and SQLite, param refCounts stay 1', async () => {
  const dir = tmp(), dbPath = join(dir, 'db.sqlite');
  const all = dataset(144, 1), items = all.slice(0, 96), evalItems = all.slice(96); // same teacher
  const ev = lossEvaluator<Params, MB>(lossFn, () => [collate(evalItems.slice(0, 24)), collate(evalItems.slice(24))]);
  const refCounts: number[] = [];
  const STEPS = 60;
  const { params, summary } = await train<Params, MB>({
    ...base(dir, dbPath),
    params: initParams(3),
    data: new NoisySource(items, 16, 5),
    steps: STEPS,
    evalEvery: 20,
    evalFn: ev.evalFn,
    checkpointEvery: 25,
    onStep: (i) => {
      for (const leaf of tree.leaves(i.params as never) as Arr[]) refCounts.push(leaf.refCount);
    },
  });
  ev.dispose();
  const rows = readMetrics(summary.runDir);
  assert.equal(rows.length, STEPS);
  assert.deepEqual(rows.map((r) => r.step), Array.from({ length: STEPS }, (_, i) => i + 1));
  for (const k of ['loss', 'grad_norm', 'learning_rate', 'accuracy', 'tokens']) assert.ok(k in rows[0]!, `metric ${k} logged`);
  const first = rows.slice(0, 5).reduce((a, r) => a + r.loss!, 0) / 5, last = rows.slice(-5).reduce((a, r) => a + r.loss!, 0) / 5;
  assert.ok(last < 0.5 * first, `loss ${first} -> ${last}`);
  assert.deepEqual(rows.filter((r) => 'eval_loss' in r).map((r) => r.step), [20, 40, 60]);
  assert.ok(rows.at(-1)!.eval_accuracy! > 0.8, `eval accuracy ${rows.at(-1)!.eval_accuracy}`);
  // lr follows warmup + cosine to 0 at the last step.
  assert.ok(Math.abs(rows[0]!.learning_rate! - 0.05 / 3) < 1e-12 && rows[2]!.learning_rate === 0.05);
  assert.equal(rows.at(-1)!.tokens, STEPS * 16);
  // No leak and no double free: every param leaf held exactly once after each of the 60 steps.
  assert.equal(refCounts.length, STEPS * 4);
  assert.ok(refCounts.every((c) => c === 1), `refCounts ${[...new Set(refCounts)]}`);
  for (const leaf of tree.leaves(params as never) as Arr[]) assert.equal(leaf.refCount, 1);
  // SQLite: the run row and every metric row.
  const db = openStore(dbPath);
  const run = getRun(db, 'run')!;
  assert.equal(run.status, 'completed');
  assert.equal(run.kind, 'test');
  assert.equal(run.finalMetrics!.loss, rows.at(-1)!.loss);
  assert.equal(run.finalMetrics!.eval_loss, rows.at(-1)!.eval_loss);
  assert.deepEqual(getMetric(db, 'run', 'loss').map((r) => r.value), rows.map((r) => r.loss));
  assert.equal(listRuns(db).length, 1);
  // Checkpoints at 25, 50 and the end (60), only the newest 2 kept.
  assert.deepEqual(listCheckpoints(summary.runDir).map((c) => c.step), [50, 60]);
  assert.equal(summary.status, 'completed');
  assert.equal(summary.step, STEPS);
  assert.ok(summary.tokensPerSec > 0 && summary.peakRssMB > 10 && summary.wallSeconds > 0);
  tree.dispose(params as never);
});

test('resume after a crash continues exactly: metrics and final params equal an uninterrupted run, bit for bit', async () => {
  const items = dataset(64, 11);
  const STEPS = 12;
  const common = { steps: STEPS, gradAccum: 2, checkpointEvery: 3, evalEvery: 4 };
  const evalItems = dataset(16, 12);
  const mkEval = () => lossEvaluator<Params, MB>(lossFn, () => [collate(evalItems)]);

  const dA = tmp();
  const evA = mkEval();
  const a = await train<Params, MB>({ ...base(dA, join(dA, 'db')), ...common, params: initParams(4), data: new NoisySource(items, 8, 9), evalFn: evA.evalFn });
  evA.dispose();

  const dB = tmp();
  const evB = mkEval();
  await assert.rejects(
    train<Params, MB>({
      ...base(dB, join(dB, 'db')),
      ...common,
      params: initParams(4),
      data: new NoisySource(items, 8, 9),
      evalFn: evB.evalFn,
      onStep: (i) => {
        if (i.step === 7) throw new Error('simulated crash');
      },
    }),
    /simulated crash/,
  );
  const db = openStore(join(dB, 'db'));
  assert.equal(getRun(db, 'run')!.status, 'failed');
  assert.equal(getRun(db, 'run')!.error, 'simulated crash');
  assert.equal(readMetrics(join(dB, 'run')).length, 7); // step 7 was logged before the crash
  assert.deepEqual(listCheckpoints(join(dB, 'run')).map((c) => c.step), [3, 6]);
  // Resume with fresh (different) initial params: they only serve as a template and must be replaced.
  const b = await train<Params, MB>({
    ...base(dB, join(dB, 'db')),
    ...common,
    params: initParams(99),
    data: new NoisySource(items, 8, 9),
    evalFn: evB.evalFn,
    resume: true,
  });
  evB.dispose();
  assert.equal(b.summary.startStep, 6);
  assert.equal(b.summary.step, STEPS);
  const ra = readMetrics(join(dA, 'run')), rb = readMetrics(join(dB, 'run'));
  assert.equal(rb.length, STEPS);
  assert.deepEqual(rb, ra); // every logged value, including eval_* and grad_norm, identical
  const pa = tree.leaves(a.params as never) as Arr[], pb = tree.leaves(b.params as never) as Arr[];
  for (let i = 0; i < pa.length; i++) assert.deepEqual(await pb[i]!.ref.data(), await pa[i]!.ref.data());
  assert.equal(getRun(db, 'run')!.status, 'completed');
  assert.equal(getMetric(db, 'run', 'loss').length, STEPS);
  tree.dispose([a.params, b.params] as never);
});

test('gradient accumulation over 2 micro-batches of 8 equals one batch of 16', async () => {
  const items = dataset(32, 21);
  const run = async (bs: number, A: number) => {
    const d = tmp();
    const src = new ShuffledBatches({ items, batchSize: bs, seed: 1, shuffle: false, collate: (it: Ex[]) => collate(it) });
    const r = await train<Params, MB>({ ...base(d, join(d, 'db')), params: initParams(5), data: src, steps: 4, gradAccum: A, store: false });
    return r;
  };
  const one = await run(16, 1), acc = await run(8, 2);
  const ra = readMetrics(one.summary.runDir), rb = readMetrics(acc.summary.runDir);
  for (let i = 0; i < 4; i++) {
    assert.ok(Math.abs(ra[i]!.loss! - rb[i]!.loss!) < 1e-5, `loss step ${i + 1}: ${ra[i]!.loss} vs ${rb[i]!.loss}`);
    assert.ok(Math.abs(ra[i]!.grad_norm! - rb[i]!.grad_norm!) < 1e-5 * ra[i]!.grad_norm!, `grad_norm step ${i + 1}`);
  }
  const pa = tree.leaves(one.params as never) as Arr[], pb = tree.leaves(acc.params as never) as Arr[];
  let maxDiff = 0;
  for (let i = 0; i < pa.length; i++) {
    const x = await pa[i]!.ref.data(), y = await pb[i]!.ref.data();
    for (let k = 0; k < x.length; k++) maxDiff = Math.max(maxDiff, Math.abs(x[k]! - y[k]!));
  }
  assert.ok(maxDiff < 1e-5, `max param diff ${maxDiff}`);
  tree.dispose([one.params, acc.params] as never);
});

test('NaN guard: a loss that turns NaN at step 5 stops with the step named and keeps the last good checkpoint', async () => {
  const dir = tmp(), dbPath = join(dir, 'db');
  const items = dataset(64, 31);
  const err = await train<Params, MB>({
    ...base(dir, dbPath),
    params: initParams(6),
    data: new NoisySource(items, 8, 3, 5),
    steps: 20,
    checkpointEvery: 2,
    keepCheckpoints: 5,
  }).then(
    () => assert.fail('should have thrown'),
    (e: unknown) => e as NonFiniteError,
  );
  assert.ok(err instanceof NonFiniteError, String(err));
  assert.equal(err.step, 5);
  assert.match(err.message, /step 5: loss = NaN/);
  const runDir = join(dir, 'run');
  assert.equal(err.lastCheckpoint, join(runDir, 'checkpoints', 'step-00000004'));
  assert.ok(err.message.includes(err.lastCheckpoint!));
  assert.deepEqual(listCheckpoints(runDir).map((c) => c.step), [2, 4]);
  const state = JSON.parse(readFileSync(join(err.lastCheckpoint!, 'state.json'), 'utf-8'));
  assert.equal(state.step, 4);
  assert.equal(readMetrics(runDir).length, 4); // the NaN step is not logged as if it were good
  const run = getRun(openStore(dbPath), 'run')!;
  assert.equal(run.status, 'failed');
  assert.match(run.error!, /step 5/);
  assert.ok(!readdirSync(join(runDir, 'checkpoints')).some((n) => n.includes('tmp')));
});

test('stop from onStep and abort both checkpoint and record their status; bad resume/restart are refused', async () => {
  const items = dataset(32, 41);
  const dir = tmp(), dbPath = join(dir, 'db');
  const r = await train<Params, MB>({ ...base(dir, dbPath), params: initParams(7), data: new NoisySource(items, 8, 1), steps: 10, onStep: (i) => (i.step === 3 ? 'stop' : undefined) });
  assert.equal(r.summary.status, 'stopped');
  assert.deepEqual(listCheckpoints(join(dir, 'run')).map((c) => c.step), [3]);
  assert.equal(getRun(openStore(dbPath), 'run')!.status, 'stopped');
  tree.dispose(r.params as never);
  // A fresh run into a directory that holds checkpoints would mix two runs: refused.
  await assert.rejects(train<Params, MB>({ ...base(dir, dbPath), params: initParams(7), data: new NoisySource(items, 8, 1), steps: 10 }), /already holds checkpoints/);
  const ac = new AbortController();
  const r2 = await train<Params, MB>({
    ...base(dir, dbPath),
    params: initParams(7),
    data: new NoisySource(items, 8, 1),
    steps: 10,
    resume: true,
    signal: ac.signal,
    onStep: (i) => {
      if (i.step === 5) ac.abort();
    },
  });
  assert.equal(r2.summary.status, 'interrupted');
  assert.equal(r2.summary.startStep, 3);
  assert.equal(listCheckpoints(join(dir, 'run')).at(-1)!.step, 5);
  tree.dispose(r2.params as never);
  const empty = tmp();
  await assert.rejects(
    train<Params, MB>({ ...base(empty, join(empty, 'db')), params: initParams(7), data: new NoisySource(items, 8, 1), steps: 2, resume: true }),
    /no checkpoint to resume from/,
  );
  assert.ok(existsSync(dbPath));
});

test('an abort from a timer or signal handler stops the run within a step (the loop yields to the event loop)', async () => {
  const items = dataset(32, 43);
  const dir = tmp(), dbPath = join(dir, 'db');
  const ac = new AbortController();
  let firedAfter = -1, lastStep = 0;
  // A signal handler runs as a macrotask, like this timer: it can fire only when the loop returns to the event loop.
  const r = await train<Params, MB>({
    ...base(dir, dbPath),
    params: initParams(7),
    data: new NoisySource(items, 8, 1),
    steps: 200,
    signal: ac.signal,
    onStep: (i) => {
      lastStep = i.step;
      if (i.step === 2)
        setTimeout(() => {
          firedAfter = lastStep;
          ac.abort();
        }, 0);
    },
  });
  assert.ok(firedAfter >= 2 && firedAfter < 200, `the timer fired after step ${firedAfter}`);
  assert.equal(r.summary.status, 'interrupted');
  assert.equal(r.summary.step, firedAfter, 'stopped right after the step during which the abort arrived');
  assert.equal(listCheckpoints(join(dir, 'run')).at(-1)!.step, r.summary.step);
  assert.equal(getRun(openStore(dbPath), 'run')!.status, 'interrupted');
  tree.dispose(r.params as never);
});

test('resuming a completed run is refused and changes nothing (metrics, store row, checkpoints)', async () => {
  const items = dataset(32, 44);
  const dir = tmp(), dbPath = join(dir, 'db');
  const done = await train<Params, MB>({ ...base(dir, dbPath), params: initParams(7), data: new NoisySource(items, 8, 1), steps: 4 });
  assert.equal(done.summary.status, 'completed');
  tree.dispose(done.params as never);
  const metrics = readFileSync(join(dir, 'run', 'metrics.jsonl'), 'utf-8');
  const row = getRun(openStore(dbPath), 'run')!;
  await assert.rejects(
    train<Params, MB>({ ...base(dir, dbPath), params: initParams(7), data: new NoisySource(items, 8, 1), steps: 4, resume: true }),
    /already complete \(step 4 of 4\); nothing to resume/,
  );
  assert.equal(readFileSync(join(dir, 'run', 'metrics.jsonl'), 'utf-8'), metrics);
  assert.deepEqual(getRun(openStore(dbPath), 'run'), row);
  assert.deepEqual(listCheckpoints(join(dir, 'run')).map((c) => c.step), [4]);
});
