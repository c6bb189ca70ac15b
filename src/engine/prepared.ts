// Workaround (jax-js 0.1.25): every run of a jitted program prepares each of its kernels again. The wasm backend's
// `prepareKernel(kernel)` computes `FpHash.hash(kernel)`, a BigInt polynomial hash over the kernel's whole
// expression tree, to look its compiled module up in a cache — for every dispatch, though a jitted program hands it
// the same Kernel object each run. On a batch-1 decode step of the 10.8M bench model (186 kernels) that hashing is
// ~11% of the step (bench/prepare-kernel.ts). An Executable is immutable (the kernel and its compiled program), so
// the prepared one can be kept per Kernel object: the hash runs once per kernel instead of once per dispatch.
//
// jax-js exports no handle on its backends; `getBackend` lives in its internal chunk. We find that chunk the way
// its index.js imports it and patch only the wasm backend instance. If the pinned version's layout is not found,
// nothing is patched and jax-js runs as shipped (`kernelPreparationMemoized()` says which).
// Node-only (node:fs); the browser build stubs this module like threads.ts. ALIGNLAB_KERNEL_PREPARE_CACHE=0 turns it off.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

interface PreparingBackend {
  prepareKernel(kernel: object): Promise<unknown>;
  prepareKernelSync(kernel: object): unknown;
}

let active = false;
let enabled = true;

/** `getBackend` from jax-js's internal chunk, found through the import line of its dist/index.js; null if absent. */
async function internalGetBackend(): Promise<((device: string) => unknown) | null> {
  try {
    const index = createRequire(import.meta.url).resolve('@jax-js/jax').replace(/index\.cjs$/, 'index.js');
    const m = /import \{([^}]*)\} from "\.\/(backend-[\w-]+\.js)"/.exec(readFileSync(index, 'utf8'));
    const alias = m && /(?:^|,)\s*(\w+) as getBackend\s*(?:,|$)/.exec(m[1]!)?.[1];
    if (!m || !alias) return null;
    const chunk = (await import(pathToFileURL(join(dirname(index), m[2]!)).href)) as Record<string, unknown>;
    const fn = chunk[alias];
    return typeof fn === 'function' && fn.name === 'getBackend' ? (fn as (device: string) => unknown) : null;
  } catch {
    return null;
  }
}

/** Keep each Kernel's prepared Executable on the `device` backend (call after jax-js's init). Idempotent. */
export async function memoizeKernelPreparation(device: string, env: Record<string, string | undefined> = process.env): Promise<boolean> {
  if (active || env.ALIGNLAB_KERNEL_PREPARE_CACHE === '0') return active;
  const getBackend = await internalGetBackend();
  const be = getBackend?.(device) as PreparingBackend | undefined;
  if (!be || typeof be.prepareKernel !== 'function' || typeof be.prepareKernelSync !== 'function') return false;
  const prepare = be.prepareKernel.bind(be), prepareSync = be.prepareKernelSync.bind(be);
  const memo = new WeakMap<object, unknown>();
  be.prepareKernel = async (kernel) => {
    if (!enabled) return prepare(kernel);
    let exe = memo.get(kernel);
    if (exe === undefined) memo.set(kernel, (exe = await prepare(kernel)));
    return exe;
  };
  be.prepareKernelSync = (kernel) => {
    if (!enabled) return prepareSync(kernel);
    let exe = memo.get(kernel);
    if (exe === undefined) memo.set(kernel, (exe = prepareSync(kernel)));
    return exe;
  };
  active = true;
  return true;
}

/** Whether prepared kernels are kept (the workaround found jax-js's backend and is switched on). */
export function kernelPreparationMemoized(): boolean {
  return active && enabled;
}

/** Switch the memo off and on at run time (bench/prepare-kernel.ts's A/B; no effect when it is not installed). */
export function setKernelPreparationMemo(on: boolean): void {
  enabled = on;
}
