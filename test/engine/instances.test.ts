// The wasm instance cache (src/engine/instances.ts): jax-js kernel modules get one instance per memory, reused
// across dispatches; every other module is instantiated afresh, as without the cache.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { np } from '../../src/engine/index.js';
import { kernelInstancesCached } from '../../src/engine/instances.js';

const section = (id: number, bytes: number[]) => [id, bytes.length, ...bytes];
const name = (s: string) => [s.length, ...Buffer.from(s)];
/** A module importing env.memory and exporting one function `exportName` (and a mutable global when asked). */
function module(exportName: string, withGlobal = false): WebAssembly.Module {
  const body = [0x00, 0x0b];
  return new WebAssembly.Module(new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [0x01, 0x60, 0x00, 0x00]),
    ...section(2, [0x01, ...name('env'), ...name('memory'), 0x02, 0x00, 0x01]),
    ...section(3, [0x01, 0x00]),
    ...(withGlobal ? section(6, [0x01, 0x7f, 0x01, 0x41, 0x00, 0x0b]) : []),
    ...section(7, withGlobal ? [0x02, ...name(exportName), 0x00, 0x00, ...name('g'), 0x03, 0x00] : [0x01, ...name(exportName), 0x00, 0x00]),
    ...section(10, [0x01, body.length, ...body]),
  ]));
}

test('kernel-shaped modules reuse one instance per memory; other modules are instantiated afresh', () => {
  assert.equal(kernelInstancesCached(), true, 'importing the engine turns the cache on');
  const memory = new WebAssembly.Memory({ initial: 1 }), other = new WebAssembly.Memory({ initial: 1 });
  const kernel = module('kernel');
  const a = new WebAssembly.Instance(kernel, { env: { memory } });
  assert.equal(new WebAssembly.Instance(kernel, { env: { memory } }), a, 'same module, same memory: reused');
  assert.notEqual(new WebAssembly.Instance(kernel, { env: { memory: other } }), a, 'another memory: its own instance');
  assert.ok(a instanceof WebAssembly.Instance);
  for (const m of [module('run'), module('kernel', true)]) {
    const x = new WebAssembly.Instance(m, { env: { memory } });
    assert.notEqual(new WebAssembly.Instance(m, { env: { memory } }), x, 'not a jax-js kernel module: fresh instances');
  }
});

test('jax-js computes the same values through cached instances, call after call', async () => {
  const x = np.array(Float32Array.from({ length: 384 }, (_, i) => i / 7), { shape: [384] });
  const want = Float32Array.from({ length: 384 }, (_, i) => Math.fround(Math.fround(i / 7) * 2 + 1));
  for (let r = 0; r < 3; r++) assert.deepEqual(await x.ref.mul(2).add(1).data(), want);
  x.dispose();
});
