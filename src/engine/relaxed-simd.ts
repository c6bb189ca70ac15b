// Fused multiply-add in jax-js's wasm kernels on Node 20.
//
// jax-js 0.1.25 probes WebAssembly for `f32x4.relaxed_madd` (WebAssembly.validate on a tiny module) when it
// compiles its first kernel, and where the probe passes, every float32 sum-of-products reduction (matmul, the
// attention products, the norms' sums of squares) accumulates with relaxed_madd: one fused multiply-add per
// lane on x86 with FMA3 or on ARM, instead of a multiply and an add. Browsers ship relaxed SIMD enabled
// (Chrome 114+), so a browser gets it already; Node 20's V8 (11.3) keeps it behind --experimental-wasm-relaxed-simd,
// and then jax-js falls back to mul + add. Turning the flag on at run time, before the probe, gives the Node CLI the
// fused kernels too.
//
// Opt-in (ALIGNLAB_RELAXED_SIMD=1), not the default: "relaxed" means the result may differ by machine. A fused
// multiply-add rounds once instead of twice, and V8 fuses only where the CPU has FMA, so the same study would give
// bit-different checkpoints on a machine without it, while jax-js's unfused kernels give the same bits on every
// machine. Measured gain on this repo's CPU (bench/relaxed-simd.ts, bench/RESULTS.md): ~12% on a training step, within
// the noise on decoding — too little to give up reproducible numbers by default.

// Node-only (node:v8); the browser build stubs this module like threads.ts.

import { setFlagsFromString } from 'node:v8';

/** The module jax-js validates: one function (v128, v128, v128) → v128 made of f32x4.relaxed_madd. */
const PROBE = '0061736d0100000001080160037b7b7b017b030201000a0d010b00200020012002fd85020b';

function supported(): boolean {
  try {
    return WebAssembly.validate(Buffer.from(PROBE, 'hex'));
  } catch {
    return false;
  }
}

/**
 * Whether jax-js will use relaxed_madd. With ALIGNLAB_RELAXED_SIMD=1 the V8 flag is turned on if needed; otherwise
 * nothing changes (a Node whose V8 ships relaxed SIMD enabled, 22+, has it either way).
 */
export function enableRelaxedSimd(env: Record<string, string | undefined> = process.env): boolean {
  if (env.ALIGNLAB_RELAXED_SIMD === '1' && !supported()) setFlagsFromString('--experimental-wasm-relaxed-simd');
  return supported();
}

export const relaxedSimd = enableRelaxedSimd();
