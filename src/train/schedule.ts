// Learning-rate schedules as host-side functions of the update index. The loop evaluates the
// schedule on the host and passes the value to the jitted step as a scalar array (no recompilation).
//
// `step` is the 0-based index of the update about to be made (0 for the first update).
// Warmup is linear from lr/(warmup+1) up to lr, nanoGPT-style, so the first update is not wasted at
// lr = 0 (HF's get_*_schedule_with_warmup starts at exactly 0). Decay follows HF: cosine or linear from
// the peak at the end of warmup to `minLrRatio·lr` at `totalSteps`.

export type ScheduleKind = 'constant' | 'cosine' | 'linear';

export interface ScheduleOptions {
  kind: ScheduleKind;
  /** Peak learning rate. */
  lr: number;
  warmupSteps?: number;
  /** Number of updates of the whole run: where decay reaches its floor. */
  totalSteps: number;
  /** Floor of the decay as a fraction of lr (0 = decay to zero, as HF does). */
  minLrRatio?: number;
}

export type Schedule = (step: number) => number;

/** lr for every step after warmup. */
export function constant(lr: number, warmupSteps = 0): Schedule {
  return (s) => (s < warmupSteps ? (lr * (s + 1)) / (warmupSteps + 1) : lr);
}

/** Linear warmup, then half a cosine from lr down to minLrRatio·lr at totalSteps. */
export function warmupCosine(lr: number, warmupSteps: number, totalSteps: number, minLrRatio = 0): Schedule {
  const floor = lr * minLrRatio;
  return (s) => {
    if (s < warmupSteps) return (lr * (s + 1)) / (warmupSteps + 1);
    const progress = Math.min(1, (s - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
    return floor + (lr - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
  };
}

/** Linear warmup, then a straight line from lr down to minLrRatio·lr at totalSteps. */
export function warmupLinear(lr: number, warmupSteps: number, totalSteps: number, minLrRatio = 0): Schedule {
  const floor = lr * minLrRatio;
  return (s) => {
    if (s < warmupSteps) return (lr * (s + 1)) / (warmupSteps + 1);
    const progress = Math.min(1, (s - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
    return lr - (lr - floor) * progress;
  };
}

export function makeSchedule(o: ScheduleOptions): Schedule {
  const w = o.warmupSteps ?? 0;
  if (!(o.lr >= 0)) throw new Error(`schedule: lr must be >= 0, got ${o.lr}`);
  if (w < 0 || !Number.isInteger(w)) throw new Error(`schedule: warmupSteps must be a non-negative integer, got ${w}`);
  switch (o.kind) {
    case 'constant':
      return constant(o.lr, w);
    case 'cosine':
      return warmupCosine(o.lr, w, o.totalSteps, o.minLrRatio ?? 0);
    case 'linear':
      return warmupLinear(o.lr, w, o.totalSteps, o.minLrRatio ?? 0);
    default:
      throw new Error(`schedule: unknown kind "${(o as { kind: string }).kind}" (use constant, cosine or linear)`);
  }
}
