import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { initEngine, np, tree, type Arr } from '../../src/engine/index.js';
import { saveCheckpoint, loadCheckpoint, listCheckpoints, latestCheckpoint, pruneCheckpoints, readTrainerState } from '../../src/train/checkpoint.js';
import { adamw } from '../../src/train/optim.js';

before(async () => {
  await initEngine(); // ALIGNLAB_DEVICE, default wasm
});

const mk = (seed: number) => ({
  wte: np.array(Float32Array.from({ length: 12 }, (_, i) => Math.sin(seed + i)), { shape: [4, 3] }),
  layers: [{ w: np.array(Float32Array.from({ length: 6 }, (_, i) => seed * 10 + i), { shape: [3, 2] }), g: np.ones([2]) }],
});

test('save → load restores params, optimizer state and trainer state exactly; files are plain safetensors', async () => {
  const runDir = mkdtempSync(join(tmpdir(), 'alignlab-ckpt-'));
  const params = mk(1);
  const opt = adamw();
  const state = opt.init(params) as { m: ReturnType<typeof mk>; v: ReturnType<typeof mk> };
  state.m.wte.dispose();
  state.m.wte = np.full([4, 3], 0.25);
  const dir = await saveCheckpoint(runDir, params, state, { step: 7, rng: 123456, data: { epoch: 1, index: 2 }, tokens: 99 });
  assert.equal(dir, join(runDir, 'checkpoints', 'step-00000007'));
  // Borrowed, not consumed.
  for (const x of tree.leaves([params, state] as never) as Arr[]) assert.equal(x.refCount, 1);
  // An independent read of the safetensors header: 8-byte little-endian length, then JSON.
  const buf = readFileSync(join(dir, 'model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf-8'));
  assert.deepEqual(Object.keys(header).filter((k) => k !== '__metadata__'), ['wte', 'layers.0.w', 'layers.0.g']);
  assert.deepEqual(header['layers.0.w'], { dtype: 'F32', shape: [3, 2], data_offsets: [48, 72] });
  const w = new Float32Array(buf.buffer.slice(buf.byteOffset + 8 + n + 48, buf.byteOffset + 8 + n + 72));
  assert.deepEqual(Array.from(w), [10, 11, 12, 13, 14, 15]);

  const template = mk(2); // different values, same shapes
  const loaded = loadCheckpoint(dir, template, { m: template, v: template });
  const same = async (x: unknown, y: unknown) => {
    const a = tree.leaves(x as never) as Arr[], b = tree.leaves(y as never) as Arr[];
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++) assert.deepEqual(await a[i]!.ref.data(), await b[i]!.ref.data());
  };
  await same(loaded.params, params);
  await same(loaded.optState, state);
  assert.deepEqual(loaded.state, { version: 1, step: 7, rng: 123456, data: { epoch: 1, index: 2 }, tokens: 99 });
  tree.dispose([params, state, template, loaded.params, loaded.optState] as never);
});

test('a checkpoint that does not match the model is refused with the tensor named', async () => {
  const runDir = mkdtempSync(join(tmpdir(), 'alignlab-ckpt-'));
  const p = mk(1);
  const dir = await saveCheckpoint(runDir, p, { m: p, v: p }, { step: 1, rng: 1, data: null, tokens: 0 });
  const wrong = { ...mk(1), wte: np.zeros([5, 3]) };
  assert.throws(() => loadCheckpoint(dir, wrong, { m: wrong, v: wrong }), /model\.safetensors: tensor "wte" has shape \[4, 3\], the model expects \[5, 3\]/);
  const extra = { ...mk(1), lmHead: np.zeros([3, 4]) };
  assert.throws(() => loadCheckpoint(dir, extra, { m: extra, v: extra }), /tensor "lmHead" is missing/);
  writeFileSync(join(dir, 'state.json'), JSON.stringify({ version: 1, step: 'x', rng: 1, tokens: 0 }));
  assert.throws(() => readTrainerState(dir), /state\.json: field "step" must be a number/);
  tree.dispose([p, wrong, extra] as never);
});

test('latest/prune ignore half-written temporaries and keep the newest', async () => {
  const runDir = mkdtempSync(join(tmpdir(), 'alignlab-ckpt-'));
  const p = { w: np.ones([2]) };
  for (const s of [2, 4, 6, 8]) await saveCheckpoint(runDir, p, { m: p, v: p }, { step: s, rng: s, data: null, tokens: s });
  mkdirSync(join(runDir, 'checkpoints', 'step-00000010.tmp-999')); // a crash mid-save
  mkdirSync(join(runDir, 'checkpoints', 'step-00000012')); // no state.json: incomplete
  assert.equal(latestCheckpoint(runDir)!.step, 8);
  pruneCheckpoints(runDir, 2);
  assert.deepEqual(listCheckpoints(runDir).map((c) => c.step), [6, 8]);
  assert.ok(!readdirSync(join(runDir, 'checkpoints')).some((n) => n.includes('.tmp-')));
  assert.equal(latestCheckpoint(join(runDir, 'none')), null);
  p.w.dispose();
});
