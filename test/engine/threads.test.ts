// The jax-js Worker shim (src/engine/threads.ts): with the wasm pool on, computations give bit-identical
// results to single-threaded jax-js, the pool is really used, and the process still exits by itself.
// Each configuration runs in its own child process (this file, re-run with THREADS_TEST_CHILD set), because
// the shim has to be installed before @jax-js/jax is first imported and cannot be undone in a process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { installWorkerShim, threadsFromEnv, threadsInfo, checkThreads, type ThreadsInfo } from '../../src/engine/threads.js';

const SELF = fileURLToPath(import.meta.url);
const CHILD = process.env.THREADS_TEST_CHILD;

interface ChildOut {
  info: ThreadsInfo;
  matmul: number[];
  matmulMaxRelErr: number;
  losses: number[];
  grad: number[];
  syncRead: string;
  late?: string;
}

// Deterministic inputs without a PRNG: values in [-1, 1].
const fill = (n: number, k: number) => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + k));

async function child(mode: string): Promise<void> {
  if (mode === 'fast') installWorkerShim({ threads: 2 });
  if (mode === 'fast3') installWorkerShim({ threads: 3 });
  if (mode === 'messages') installWorkerShim({ threads: 2, fast: false });
  // mode 'env': the static import above already installed it from ALIGNLAB_THREADS; 'off': nothing.
  const { np, nn, jit, valueAndGrad, initEngine } = await import('../../src/engine/index.js');
  if (mode === 'late') {
    installWorkerShim({ threads: 2 });
    const late = await checkThreads().then(() => 'no error', (e: Error) => e.message);
    console.log(JSON.stringify({ late }));
    return;
  }
  await initEngine('wasm');
  await checkThreads();
  // 1. A matmul big enough to be split across the pool (192*320 outputs), checked against float64 on the host.
  const [M, K, N] = [192, 256, 320];
  const a = fill(M * K, 1), b = fill(K * N, 2);
  const mm = jit((x: ReturnType<typeof np.array>, y: ReturnType<typeof np.array>) => np.matmul(x, y));
  const out = (await mm(np.array(a, { shape: [M, K] }), np.array(b, { shape: [K, N] })).data()) as Float32Array;
  let maxRel = 0;
  for (let i = 0; i < M; i += 17) for (let j = 0; j < N; j += 13) {
    let s = 0;
    for (let k = 0; k < K; k++) s += a[i * K + k]! * b[k * N + j]!;
    maxRel = Math.max(maxRel, Math.abs(out[i * N + j]! - s) / Math.max(1, Math.abs(s)));
  }
  // 2. Three SGD steps of a jitted two-layer softmax classifier (grad through matmul, tanh, logSoftmax, sum).
  const X = np.array(fill(64 * 96, 3), { shape: [64, 96] }), Y = np.array(Int32Array.from({ length: 64 }, (_, i) => (i * 7) % 10), { dtype: np.int32 });
  let w1 = np.array(fill(96 * 128, 4).map((v) => v * 0.1), { shape: [96, 128] });
  let w2 = np.array(fill(128 * 10, 5).map((v) => v * 0.1), { shape: [128, 10] });
  type A = typeof w1;
  const loss = (p: [A, A], x: A, y: A) => {
    const logp = nn.logSoftmax(np.matmul(np.tanh(np.matmul(x, p[0])), p[1]), -1);
    return np.where(y.reshape([64, 1]).equal(np.arange(10)), logp, 0).sum().neg().div(64);
  };
  const step = jit((w1: A, w2: A, x: A, y: A) => {
    const [l, g] = valueAndGrad(loss)([w1.ref, w2.ref], x, y);
    return [l, w1.sub(g[0].mul(0.1)), w2.sub(g[1].mul(0.1)), g[1]];
  });
  const losses: number[] = [];
  let g2: A | undefined;
  for (let s = 0; s < 3; s++) {
    g2?.dispose();
    let l: A;
    [l, w1, w2, g2] = step(w1, w2, X.ref, Y.ref) as [A, A, A, A];
    losses.push(((await l.data()) as Float32Array)[0]!);
  }
  // 3. jax-js's pool makes work asynchronous: reading the loss waits only for the kernels the loss needs, so
  // other outputs of the same jitted step may still be queued, and a synchronous read of them throws.
  let syncRead = 'ok';
  try {
    g2!.ref.dataSync();
  } catch (e) {
    syncRead = (e as Error).message;
  }
  const grad = Array.from((await g2!.data()) as Float32Array);
  await w1.data(); await w2.data(); X.dispose(); Y.dispose(); mm.dispose(); step.dispose();
  const r: ChildOut = { info: threadsInfo(), matmul: Array.from(out.subarray(0, 2000)), matmulMaxRelErr: maxRel, losses, grad, syncRead };
  console.log(JSON.stringify(r));
  // No process.exit: the test checks that idle pool workers do not keep the process alive.
}

function runChild(mode: string, env: NodeJS.ProcessEnv = {}): Promise<{ out: ChildOut; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const e: NodeJS.ProcessEnv = { ...process.env, THREADS_TEST_CHILD: mode, ...env };
    if (!('ALIGNLAB_THREADS' in env)) delete e.ALIGNLAB_THREADS;
    const c = spawn(process.execPath, ['--import', 'tsx', SELF], { env: e, stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 });
    let out = '', err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('close', (code, signal) => {
      if (code !== 0) return reject(new Error(`child ${mode} ended with ${signal ?? `code ${code}`} (a hang is killed after 120 s)\n${err.slice(-3000)}`));
      try {
        resolve({ out: JSON.parse(out.trim().split('\n').pop()!) as ChildOut, ms: Date.now() - t0 });
      } catch {
        reject(new Error(`child ${mode} printed no JSON: ${out.slice(-500)}\n${err.slice(-2000)}`));
      }
    });
  });
}

if (CHILD) {
  await child(CHILD);
} else {
  test('ALIGNLAB_THREADS parsing', () => {
    assert.equal(threadsFromEnv({}), 1);
    assert.equal(threadsFromEnv({ ALIGNLAB_THREADS: '' }), 1);
    assert.equal(threadsFromEnv({ ALIGNLAB_THREADS: '0' }), 1);
    assert.equal(threadsFromEnv({ ALIGNLAB_THREADS: ' 3 ' }), 3);
    assert.ok(threadsFromEnv({ ALIGNLAB_THREADS: 'auto' }) >= 1);
    assert.throws(() => threadsFromEnv({ ALIGNLAB_THREADS: 'two' }), /ALIGNLAB_THREADS must be 'auto' or an integer 1\.\.256, got "two"/);
    assert.throws(() => threadsFromEnv({ ALIGNLAB_THREADS: '1.5' }), /ALIGNLAB_THREADS/);
  });

  test('threaded jax-js gives the single-threaded results, uses the pool, and exits by itself', async () => {
    const off = await runChild('off');
    assert.equal(off.out.info.threads, 1);
    assert.equal(off.out.info.workersStarted, 0);
    assert.ok(off.out.matmulMaxRelErr < 1e-5, `matmul vs float64 host: ${off.out.matmulMaxRelErr}`);
    assert.ok(off.out.losses[2]! < off.out.losses[0]!, `SGD should lower the loss: ${off.out.losses}`);
    assert.equal(off.out.syncRead, 'ok'); // single-threaded jax-js computes synchronously
    const modes = [['fast', 2, {}], ['fast3', 3, {}], ['messages', 2, {}], ['env', 2, { ALIGNLAB_THREADS: '2' }]] as const;
    for (const [mode, threads, env] of modes) {
      const on = await runChild(mode, env);
      assert.equal(on.out.info.threads, threads, mode);
      // fast: slot 0 is the main thread, the others worker_threads; all count as pool slots created.
      assert.equal(on.out.info.workersStarted, threads, `${mode}: pool slots created`);
      assert.equal(on.out.info.fast, mode !== 'messages');
      // Splitting a kernel by output ranges does not change any element's arithmetic: bit-identical.
      assert.deepEqual(on.out.matmul, off.out.matmul, `${mode}: matmul`);
      assert.deepEqual(on.out.losses, off.out.losses, `${mode}: losses`);
      assert.deepEqual(on.out.grad, off.out.grad, `${mode}: gradient`);
      assert.match(on.out.syncRead, /cannot read synchronously from a slot with async work/, mode);
    }
  });

  test('installing the shim after @jax-js/jax was imported fails with a clear error', async () => {
    const { out } = await runChild('late');
    assert.match(out.late!, /installed after @jax-js\/jax had been imported/);
  });
}
