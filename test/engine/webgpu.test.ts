// The same forward pass on wasm and on webgpu (Dawn; on a CPU machine, OpenGL ES on Mesa llvmpipe).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { devicePut } from '@jax-js/jax';
import { initEngine, takeF32, free, keep } from '../../src/engine/index.js';
import { forward, type Params } from '../../src/model/decoder.js';
import { padBatch, randomTokens, tinyModel, disposeAll } from '../helpers/model.js';

test('llama forward: webgpu equals wasm', async (t) => {
  let ok = true;
  await initEngine('webgpu').catch((e) => {
    ok = false;
    t.skip(`webgpu unavailable here: ${(e as Error).message}`);
  });
  if (!ok) return;
  await initEngine('wasm');
  const { cfg, params } = tinyModel('llama', 5);
  const b = padBatch([randomTokens(9, cfg.vocabSize, 1), randomTokens(6, cfg.vocabSize, 2)], 9, 'right');
  const onWasm = await takeF32(forward(params, cfg, b.ids, b.pos, b.valid));
  const [gp, gi, gpos, gv] = (await devicePut(keep([params, b.ids, b.pos, b.valid]) as never, 'webgpu')) as unknown as [Params, ...ReturnType<typeof padBatch>[keyof ReturnType<typeof padBatch>][]];
  const onGpu = await takeF32(forward(gp, cfg, gi!, gpos!, gv!));
  let worst = 0;
  for (let i = 0; i < onWasm.length; i++) worst = Math.max(worst, Math.abs(onWasm[i]! - onGpu[i]!));
  free([params, gp]);
  disposeAll(b.ids, b.pos, b.valid, gi!, gpos!, gv!);
  assert.equal(onGpu.length, onWasm.length);
  assert.ok(worst < 1e-4, `max |wasm - webgpu| = ${worst}`);
});
