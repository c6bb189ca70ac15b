// The same forward pass on wasm and on webgpu (Dawn; on a CPU machine, OpenGL ES on Mesa llvmpipe).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { devicePut } from '@jax-js/jax';
import { initEngine, takeF32, free, keep } from '../../src/engine/index.js';
import { forward, type Params } from '../../src/model/decoder.js';
import { padBatch, randomTokens, tinyModel, disposeAll } from '../helpers/model.js';

/**
 * Where WebGPU must work: CI (CI=true), or any machine with the Mesa packages .ci/run installs (llvmpipe
 * gives Dawn an OpenGL ES adapter). There an init error is a failure, never a skip: a broken webgpu path
 * must not read "1 skipped, 0 failed".
 */
function webgpuExpected(): string | null {
  if (process.env.CI === 'true') return 'CI=true';
  const pkgs = ['mesa-vulkan-drivers', 'libegl1', 'libgles2'];
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}\\n', ...pkgs], { encoding: 'utf8' });
  const installed = r.status === 0 && r.stdout.trim().split('\n').filter((l) => l.endsWith('install ok installed')).length === pkgs.length;
  return installed ? `${pkgs.join(', ')} are installed` : null;
}

test('llama forward: webgpu equals wasm', async (t) => {
  const expected = webgpuExpected();
  let ok = true;
  await initEngine('webgpu').catch((e) => {
    const why = (e as Error).message;
    if (expected) assert.fail(`webgpu must initialise here (${expected}) but failed: ${why}`);
    ok = false;
    t.skip(`webgpu unavailable here: ${why}`);
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
