// Per-token KL(π_θ ‖ π_ref) estimators from sampled tokens, and the KL-coefficient controllers of RLHF.
//
// For a token y ~ π_θ with log-probs logp = log π_θ(y), ref = log π_ref(y) and r = π_ref(y)/π_θ(y) (Schulman 2020,
// "Approximating KL divergence"; TRL `kl_estimator`):
//   k1 = −log r = logp − ref              unbiased, can be negative per token (TRL's default)
//   k2 = ½ (log r)²                        biased, low variance, ≥ 0
//   k3 = (r − 1) − log r                   unbiased and ≥ 0 (GRPO's per-token KL, DeepSeekMath eq. 4)
//
// Ownership: the device functions consume their array arguments; jit-safe.

import { np, type Arr } from '../../engine/index.js';

export type KlEstimator = 'k1' | 'k2' | 'k3';
export const KL_ESTIMATORS: readonly KlEstimator[] = ['k1', 'k2', 'k3'];

/** Per-token KL estimate on the device: logp, refLogp [B,T] → [B,T]. */
export function klEstimate(logp: Arr, refLogp: Arr, estimator: KlEstimator = 'k1'): Arr {
  checkEstimator('klEstimate', estimator);
  const logr = refLogp.sub(logp); // log r = log π_ref − log π_θ
  if (estimator === 'k1') return logr.neg();
  if (estimator === 'k2') return np.square(logr).mul(0.5);
  return np.exp(logr.ref).sub(1).sub(logr); // k3
}

/** The same estimate for one token on the host (float64). */
export function klEstimateHost(logp: number, refLogp: number, estimator: KlEstimator = 'k1'): number {
  checkEstimator('klEstimateHost', estimator);
  const logr = refLogp - logp;
  if (estimator === 'k1') return -logr;
  if (estimator === 'k2') return 0.5 * logr * logr;
  return Math.expm1(logr) - logr; // k3
}

export function checkEstimator(where: string, estimator: string): asserts estimator is KlEstimator {
  if (!(KL_ESTIMATORS as readonly string[]).includes(estimator)) {
    throw new Error(`${where}: unknown KL estimator "${estimator}" (use one of: ${KL_ESTIMATORS.join(', ')})`);
  }
}

// ---- controllers (host-side, stateful, checkpointable) ----------------------------------------

export type KlControllerState =
  | { kind: 'fixed'; value: number }
  | { kind: 'adaptive'; value: number; target: number; horizon: number };

export interface KlController {
  /** The current coefficient β of the −β·KL reward penalty. */
  readonly value: number;
  /** Feed the KL measured on the last rollout batch (per sequence, summed over tokens) and its size. */
  update(currentKl: number, nSteps: number): void;
  state(): KlControllerState;
}

/** A constant coefficient (TRL's PPO default, `kl_coef` 0.05). */
export class FixedKlController implements KlController {
  constructor(public value: number) {}
  update(): void {}
  state(): KlControllerState {
    return { kind: 'fixed', value: this.value };
  }
}

/**
 * Ziegler et al. 2019 ("Fine-Tuning Language Models from Human Preferences", §2.2), as in TRL's AdaptiveKLController:
 *   e_t = clip(KL_t / KL_target − 1, −0.2, 0.2),   β_{t+1} = β_t · (1 + K_β · e_t)   with K_β = n_steps / horizon
 * so β grows while the KL is above target and shrinks while it is below, at most 0.2·n/horizon per update.
 */
export class AdaptiveKlController implements KlController {
  constructor(public value: number, readonly target: number, readonly horizon: number) {
    if (!(target > 0)) throw new Error(`AdaptiveKlController: target must be > 0, got ${target}`);
    if (!(horizon > 0)) throw new Error(`AdaptiveKlController: horizon must be > 0, got ${horizon}`);
  }
  update(currentKl: number, nSteps: number): void {
    if (!Number.isFinite(currentKl)) throw new Error(`AdaptiveKlController.update: KL is ${currentKl}`);
    const err = Math.min(0.2, Math.max(-0.2, currentKl / this.target - 1));
    this.value *= 1 + (err * nSteps) / this.horizon;
  }
  state(): KlControllerState {
    return { kind: 'adaptive', value: this.value, target: this.target, horizon: this.horizon };
  }
}

/** Rebuild a controller from `state()` (checkpoint resume). */
export function klControllerFromState(s: KlControllerState): KlController {
  if (s.kind === 'fixed') return new FixedKlController(s.value);
  if (s.kind === 'adaptive') return new AdaptiveKlController(s.value, s.target, s.horizon);
  throw new Error(`klControllerFromState: unknown kind "${(s as { kind: string }).kind}"`);
}

/** From config: a target KL means adaptive (TRL's `adap_kl_ctrl` with `target`, `horizon` 10000), else fixed. */
export function makeKlController(opts: { initKlCoef: number; target?: number | null; horizon?: number }): KlController {
  return opts.target != null
    ? new AdaptiveKlController(opts.initKlCoef, opts.target, opts.horizon ?? 10000)
    : new FixedKlController(opts.initKlCoef);
}
