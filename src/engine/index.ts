// The engine: @jax-js/jax set up for Node, the device choice, PRNG keys, and param-tree helpers.
// jax-js arrays are reference-counted: every use consumes one reference, `.ref` adds one.
// The helpers here (keep, free, tree ops) are the only place the rest of the code needs to know that.

// jax-js calls ES2025 iterator helpers (einsum, dotProductAttention) that Node 20 lacks.
import 'core-js/actual/iterator/map.js';
import 'core-js/actual/iterator/filter.js';
// Must run before @jax-js/jax is first imported: with ALIGNLAB_THREADS > 1 it installs the Worker shim that
// turns on jax-js's wasm thread pool (jax-js decides at import time).
import { checkThreads } from './threads.js';
// Before jax-js compiles its first kernel: fused multiply-add in its reductions if ALIGNLAB_RELAXED_SIMD=1 (relaxed-simd.ts).
import { relaxedSimd } from './relaxed-simd.js';
import * as jax from '@jax-js/jax';
import { cacheKernelInstances } from './instances.js';
import { memoizeKernelPreparation } from './prepared.js';

// jax-js checks `instanceof Float16Array` when creating float64 arrays; Node 20 has no such class.
(globalThis as { Float16Array?: unknown }).Float16Array ??= class Float16Array {};
// One wasm instance per kernel instead of one per dispatch (instances.ts); ALIGNLAB_WASM_INSTANCE_CACHE=0 turns it off.
if ((globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.ALIGNLAB_WASM_INSTANCE_CACHE !== '0') cacheKernelInstances();

export { threadsInfo } from './threads.js';
/** Whether jax-js's wasm kernels accumulate with relaxed SIMD's fused multiply-add (relaxed-simd.ts). */
export const wasmFma = relaxedSimd;
export const { numpy: np, nn, lax, random, tree, jit, grad, valueAndGrad, vmap } = jax;
export type Arr = jax.Array;
export type Device = 'wasm' | 'webgpu' | 'cpu';
export const DEVICES: readonly Device[] = ['wasm', 'webgpu', 'cpu'];

let current: Device | null = null;

/** The device from a flag, else ALIGNLAB_DEVICE, else wasm. */
export function resolveDevice(flag?: string): Device {
  const d = flag ?? process.env.ALIGNLAB_DEVICE ?? 'wasm';
  if (!(DEVICES as readonly string[]).includes(d)) throw new Error(`unknown device "${d}" (use one of: ${DEVICES.join(', ')})`);
  return d as Device;
}

/**
 * Initialise jax-js on a device once per process. `webgpu` goes through Dawn (npm `webgpu`):
 * Vulkan on a GPU machine, OpenGL ES on Mesa llvmpipe on a CPU-only machine (see shared/gpu/README.md).
 */
export async function initEngine(device?: string): Promise<Device> {
  const want = resolveDevice(device);
  if (current === want) return want;
  if (want === 'webgpu') await installWebGPU();
  const got = await jax.init(...(want === 'webgpu' ? (['wasm', 'webgpu'] as const) : ([want] as const)));
  if (!got.includes(want)) throw new Error(`device "${want}" is not available here (available: ${got.join(', ')})`);
  jax.defaultDevice(want);
  // Each Kernel's compiled program looked up once, not re-hashed on every dispatch (prepared.ts).
  if (want === 'wasm') await memoizeKernelPreparation('wasm');
  if (want === 'wasm') await checkThreads();
  current = want;
  return want;
}

export function currentDevice(): Device {
  if (!current) throw new Error('engine not initialised: call initEngine() first');
  return current;
}

let webgpuInstalled = false;
async function installWebGPU(): Promise<void> {
  if (webgpuInstalled) return;
  const backend = process.env.WEBGPU_BACKEND ?? (process.env.ALIGNLAB_WEBGPU_BACKEND || 'auto');
  process.env.EGL_PLATFORM ??= 'surfaceless'; // before Dawn touches EGL (headless llvmpipe)
  const mod = (await import('webgpu')) as unknown as {
    create: (o: string[]) => { requestAdapter: (o?: object) => Promise<unknown>; wgslLanguageFeatures: unknown };
    globals: object;
  };
  Object.assign(globalThis, mod.globals);
  const tryBackend = async (b: string, compat: boolean) => {
    const gpu = mod.create([`backend=${b}`]);
    const opts = compat ? { featureLevel: 'compatibility' } : {};
    const adapter = await gpu.requestAdapter(opts);
    return adapter ? { gpu, opts } : null;
  };
  // A real GPU answers on Vulkan; llvmpipe only through OpenGL ES in compatibility mode.
  const order: [string, boolean][] =
    backend === 'auto' ? [['vulkan', false], ['opengles', true]] : [[backend, backend === 'opengles']];
  let found: { gpu: ReturnType<typeof mod.create>; opts: object } | null = null;
  for (const [b, compat] of order) {
    found = await tryBackend(b, compat).catch(() => null);
    if (found) break;
  }
  if (!found) throw new Error('webgpu: no adapter found (on a CPU machine install mesa-vulkan-drivers libegl1 libgles2)');
  const { gpu, opts } = found;
  const shim = {
    requestAdapter: (o: object = {}) => gpu.requestAdapter({ ...o, ...opts }),
    getPreferredCanvasFormat: () => 'rgba8unorm',
    get wgslLanguageFeatures() {
      return gpu.wgslLanguageFeatures;
    },
  };
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: shim, userAgent: 'node' }, configurable: true, writable: true });
  webgpuInstalled = true;
}

// ---- reference-count helpers -------------------------------------------------------------

/** Add one reference to every array in a tree (jax-js `tree.ref`), returning the same tree. */
export function keep<T>(t: T): T {
  return tree.ref(t as never) as T;
}

/** Drop one reference from every array in a tree. */
export function free(t: unknown): void {
  tree.dispose(t as never);
}

/** Read an array to the host as float32 without consuming the caller's reference. */
export async function readF32(x: Arr): Promise<Float32Array> {
  const d = await x.ref.data();
  return d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>);
}

/** Read and consume. */
export async function takeF32(x: Arr): Promise<Float32Array> {
  const d = await x.data();
  return d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>);
}

export async function takeScalar(x: Arr): Promise<number> {
  return (await x.data())[0] as number;
}

export function f32(data: Float32Array | number[], shape: number[]): Arr {
  return np.array(data instanceof Float32Array ? data : Float32Array.from(data), { shape });
}

export function i32(data: Int32Array | number[], shape: number[]): Arr {
  return np.array(data instanceof Int32Array ? data : Int32Array.from(data), { dtype: np.int32, shape });
}

// ---- PRNG --------------------------------------------------------------------------------

export { Rng } from './rng.js';

/**
 * `jit` with the function's own signature kept (jax-js types its result loosely). The compiled
 * function consumes its array arguments like any jax-js op; `dispose()` frees its cached programs.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function compile<F extends (...args: any[]) => any>(f: F, opts?: { staticArgnums?: number[] }): F & { dispose(): void } {
  return jit(f as never, opts as never) as unknown as F & { dispose(): void };
}
