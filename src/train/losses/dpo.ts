// Direct preference optimization and its variants, as TRL's `DPOTrainer.dpo_loss`.
//
// With sequence log-probs π_c = log π_θ(y_c|x), π_r = log π_θ(y_r|x) and the frozen reference's ρ_c, ρ_r:
//   h = (π_c − ρ_c) − (π_r − ρ_r)                                      (TRL's `logits`)
//   sigmoid  L = −(1−ε) log σ(βh) − ε log σ(−βh)                        DPO, Rafailov et al. 2023 eq. 7; ε > 0 is cDPO
//                                                                       (Mitchell 2023, conservative labels)
//   robust   L = [−(1−ε) log σ(βh) + ε log σ(−βh)] / (1 − 2ε)           Chowdhury et al. 2024 (rDPO): unbiased under
//                                                                       label-flip noise of rate ε
//   hinge    L = max(0, 1 − βh)                                         SLiC-HF, Zhao et al. 2023
//   ipo      L = (h − 1/(2β))²                                          IPO, Azar et al. 2023 eq. 17 (β plays τ)
// and the implicit rewards r_c = β(π_c − ρ_c), r_r = β(π_r − ρ_r) for the metrics.
//
// IPO and length: TRL's DPOTrainer divides every log-prob by the completion length when loss_type="ipo"
// (`all_logps / size_completion`), i.e. IPO runs on *average* per-token log-probs; the paper's eq. 17 uses sums.
// `lengthNormalize` (default: true for ipo, false otherwise) reproduces TRL; give chosenLengths/rejectedLengths.
//
// SimPO, the reference-free relative, lives in simpo.ts and shares `preferenceMetrics`.
//
// Ownership: consumes its array arguments (pass `x.ref` to keep yours); jit-safe. Losses are batch means.

import { np, nn, lax, type Arr } from '../../engine/index.js';
import { logSigmoid } from '../../model/logprobs.js';

export type DpoLossType = 'sigmoid' | 'ipo' | 'hinge' | 'robust';
export const DPO_LOSS_TYPES: readonly DpoLossType[] = ['sigmoid', 'ipo', 'hinge', 'robust'];

export interface DpoInputs {
  /** [B] summed log-probs of the chosen / rejected completions under the policy (differentiable). */
  policyChosen: Arr;
  policyRejected: Arr;
  /** [B] the same under the frozen reference (precomputed once; no gradient is taken through them). */
  refChosen: Arr;
  refRejected: Arr;
  /** [B] completion token counts; needed when `lengthNormalize` is on. */
  chosenLengths?: Arr;
  rejectedLengths?: Arr;
}

export interface DpoOptions {
  /** β: strength of the KL constraint to the reference (TRL default 0.1; the paper used 0.1–0.5). */
  beta?: number;
  /** TRL `loss_type`. Default 'sigmoid'. */
  lossType?: DpoLossType;
  /** ε: assumed probability that a preference label is flipped (cDPO / robust). Default 0; must be < 0.5. */
  labelSmoothing?: number;
  /** Divide the four log-probs by completion length first. Default: true for 'ipo' (as TRL), else false. */
  lengthNormalize?: boolean;
}

export const DPO_DEFAULTS = { beta: 0.1, lossType: 'sigmoid' as DpoLossType, labelSmoothing: 0 };

export type PreferenceMetrics = {
  'rewards/chosen': Arr;
  'rewards/rejected': Arr;
  'rewards/accuracies': Arr;
  'rewards/margins': Arr;
  'logps/chosen': Arr;
  'logps/rejected': Arr;
};

export function dpoLoss(inp: DpoInputs, opts: DpoOptions = {}): { loss: Arr; metrics: PreferenceMetrics } {
  const { beta = DPO_DEFAULTS.beta, lossType = DPO_DEFAULTS.lossType, labelSmoothing: eps = DPO_DEFAULTS.labelSmoothing } = opts;
  const lengthNormalize = opts.lengthNormalize ?? lossType === 'ipo';
  checkOptions('dpoLoss', beta, eps);
  if (!DPO_LOSS_TYPES.includes(lossType)) throw new Error(`dpoLoss: unknown lossType "${lossType}" (use one of: ${DPO_LOSS_TYPES.join(', ')})`);
  let { policyChosen: pc, policyRejected: pr, refChosen: rc, refRejected: rr } = inp;
  const { chosenLengths: lc, rejectedLengths: lr } = inp;
  if (lengthNormalize) {
    if (!lc || !lr) {
      throw new Error(`dpoLoss: lossType "${lossType}" with lengthNormalize needs chosenLengths and rejectedLengths ` +
        '(TRL averages log-probs over completion tokens for IPO); pass lengthNormalize: false if the log-probs are already averaged');
    }
    const nc = np.maximum(lc, 1), nr = np.maximum(lr, 1);
    [pc, rc, pr, rr] = [pc.div(nc.ref), rc.div(nc), pr.div(nr.ref), rr.div(nr)];
  } else {
    lc?.dispose();
    lr?.dispose();
  }
  rc = lax.stopGradient(rc);
  rr = lax.stopGradient(rr);
  const chosenLogratio = pc.ref.sub(rc); //   π_c − ρ_c
  const rejectedLogratio = pr.ref.sub(rr); // π_r − ρ_r
  const h = chosenLogratio.ref.sub(rejectedLogratio.ref);
  let losses: Arr;
  if (lossType === 'ipo') {
    losses = np.square(h.sub(1 / (2 * beta)));
  } else if (lossType === 'hinge') {
    losses = nn.relu(h.mul(-beta).add(1));
  } else {
    const z = h.mul(beta);
    const pos = logSigmoid(z.ref).mul(-(1 - eps)); // −(1−ε) log σ(βh)
    const neg = logSigmoid(z.neg()).mul(eps); //      ε log σ(−βh)
    losses = lossType === 'sigmoid' ? pos.sub(neg) : pos.add(neg).div(1 - 2 * eps);
  }
  const metrics = preferenceMetrics(chosenLogratio.mul(beta), rejectedLogratio.mul(beta), pc, pr);
  return { loss: losses.mean(), metrics };
}

/** TRL's preference metrics: means over the batch of the implicit rewards and log-probs, without gradient. */
export function preferenceMetrics(chosenRewards: Arr, rejectedRewards: Arr, chosenLogps: Arr, rejectedLogps: Arr): PreferenceMetrics {
  const rc = lax.stopGradient(chosenRewards), rr = lax.stopGradient(rejectedRewards);
  return {
    'rewards/chosen': rc.ref.mean(),
    'rewards/rejected': rr.ref.mean(),
    'rewards/accuracies': rc.ref.greater(rr.ref).astype(np.float32).mean(),
    'rewards/margins': rc.sub(rr).mean(),
    'logps/chosen': lax.stopGradient(chosenLogps).mean(),
    'logps/rejected': lax.stopGradient(rejectedLogps).mean(),
  };
}

export function checkOptions(fn: string, beta: number, eps: number): void {
  if (!(beta > 0)) throw new Error(`${fn}: beta must be > 0, got ${beta}`);
  if (!(eps >= 0 && eps < 0.5)) throw new Error(`${fn}: labelSmoothing must be in [0, 0.5), got ${eps}`);
}
