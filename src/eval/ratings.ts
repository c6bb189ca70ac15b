// Ratings from pairwise battles: Bradley–Terry maximum likelihood on an Elo-like scale with bootstrap
// 95% CIs (as Chatbot Arena reports), a win-rate matrix, and AlpacaEval 2's length-controlled win rate.
import { Rng as SeededRng } from '../engine/rng.js';
import { quantile, type Estimate } from '../stats/index.js';

export interface Battle {
  a: string;
  b: string;
  /** 'tie' counts as half a win for each side. */
  winner: 'a' | 'b' | 'tie';
}

export const RATING_DEFAULTS = {
  /** Elo-like scale: a gap of `scale` points means `base`:1 odds (400 and 10, as Elo and Chatbot Arena). */
  scale: 400,
  base: 10,
  /** The mean rating when no anchor model is given. */
  center: 1000,
  /**
   * Virtual tied battles added to every pair of models. Keeps the MLE finite when a model never wins
   * or never loses and joins otherwise disconnected models; negligible against tens of real battles.
   */
  prior: 0.1,
  /** Bootstrap resamples for the CIs. */
  iters: 1000,
  seed: 1234,
};

export type RatingOptions = Partial<typeof RATING_DEFAULTS> & {
  /** Pin one model's rating (e.g. a baseline at 1000) instead of centring the mean. */
  anchor?: { model: string; rating: number };
};

export function modelsOf(battles: Battle[]): string[] {
  const s = new Set<string>();
  for (const b of battles) {
    s.add(b.a);
    s.add(b.b);
  }
  return [...s].sort();
}

/** W[i][j] = wins of i over j, ties counted half to each. */
function winCounts(battles: Battle[], index: Map<string, number>, m: number): number[][] {
  const W = Array.from({ length: m }, () => new Array<number>(m).fill(0));
  for (const b of battles) {
    const i = index.get(b.a)!, j = index.get(b.b)!;
    if (b.winner === 'a') W[i]![j]! += 1;
    else if (b.winner === 'b') W[j]![i]! += 1;
    else {
      W[i]![j]! += 0.5;
      W[j]![i]! += 0.5;
    }
  }
  return W;
}

/** Solves A x = y by Gaussian elimination with partial pivoting (A is small: one row per model). */
function solve(A: number[][], y: number[]): number[] {
  const n = y.length;
  const M = A.map((r, i) => [...r, y[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r;
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = M[r]![c]! / M[c]![c]!;
      for (let k = c; k <= n; k++) M[r]![k]! -= f * M[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= M[r]![k]! * x[k]!;
    x[r] = s / M[r]![r]!;
  }
  return x;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/**
 * Bradley–Terry MLE of log-strengths θ (P(i beats j) = σ(θi − θj)) by Newton's method.
 * The likelihood is concave; the Hessian is singular along θ + c·1, so we add 11ᵀ/m (which fixes the
 * mean at 0) and halve steps that would lower the likelihood.
 */
export function bradleyTerryTheta(W: number[][], prior = RATING_DEFAULTS.prior): number[] {
  const m = W.length;
  const w = W.map((r, i) => r.map((x, j) => (i === j ? 0 : x + prior / 2)));
  const ll = (t: number[]) => {
    let s = 0;
    for (let i = 0; i < m; i++) for (let j = 0; j < m; j++) if (i !== j && w[i]![j]! > 0) s += w[i]![j]! * Math.log(sigmoid(t[i]! - t[j]!));
    return s;
  };
  let theta = new Array<number>(m).fill(0);
  let cur = ll(theta);
  for (let it = 0; it < 100; it++) {
    const g = new Array<number>(m).fill(0);
    const H = Array.from({ length: m }, () => new Array<number>(m).fill(1 / m));
    for (let i = 0; i < m; i++)
      for (let j = 0; j < m; j++) {
        if (i === j) continue;
        const n = w[i]![j]! + w[j]![i]!;
        const p = sigmoid(theta[i]! - theta[j]!);
        g[i]! += w[i]![j]! - n * p;
        H[i]![i]! += n * p * (1 - p);
        H[i]![j]! -= n * p * (1 - p);
      }
    const step = solve(H, g);
    let t = 1, next = theta, nextLl = cur;
    for (; t > 1e-6; t /= 2) {
      next = theta.map((x, i) => x + t * step[i]!);
      nextLl = ll(next);
      if (nextLl >= cur - 1e-12) break;
    }
    const moved = Math.max(...next.map((x, i) => Math.abs(x - theta[i]!)));
    theta = next;
    cur = nextLl;
    if (moved < 1e-10) break;
  }
  const mu = theta.reduce((a, b) => a + b, 0) / m;
  return theta.map((x) => x - mu);
}

function toScale(theta: number[], models: string[], o: typeof RATING_DEFAULTS, anchor?: RatingOptions['anchor']): Record<string, number> {
  const k = o.scale / Math.log(o.base);
  let shift = o.center;
  if (anchor) {
    const i = models.indexOf(anchor.model);
    if (i < 0) throw new Error(`anchor model "${anchor.model}" is not among the rated models (${models.join(', ')})`);
    shift = anchor.rating - k * theta[i]!;
  }
  return Object.fromEntries(models.map((mdl, i) => [mdl, shift + k * theta[i]!]));
}

/** Bradley–Terry ratings on the Elo-like scale: `scale · log_base(strength)`, centred at `center` or anchored. */
export function bradleyTerry(battles: Battle[], opts: RatingOptions = {}, models = modelsOf(battles)): Record<string, number> {
  const o = { ...RATING_DEFAULTS, ...opts };
  const index = new Map(models.map((m, i) => [m, i]));
  return toScale(bradleyTerryTheta(winCounts(battles, index, models.length), o.prior), models, o, opts.anchor);
}

export interface Rating extends Estimate {
  model: string;
  battles: number;
}

/** Ratings with percentile-bootstrap 95% CIs over battles (resampled with replacement, seeded). */
export function ratingsWithCI(battles: Battle[], opts: RatingOptions = {}): Rating[] {
  const o = { ...RATING_DEFAULTS, ...opts };
  const models = modelsOf(battles);
  const index = new Map(models.map((m, i) => [m, i]));
  const point = bradleyTerry(battles, opts, models);
  const rng = new SeededRng(o.seed);
  const draws: number[][] = models.map(() => []);
  const resample = new Array<Battle>(battles.length);
  for (let b = 0; b < o.iters; b++) {
    for (let i = 0; i < battles.length; i++) resample[i] = battles[rng.int(battles.length)]!;
    const r = toScale(bradleyTerryTheta(winCounts(resample, index, models.length), o.prior), models, o, opts.anchor);
    models.forEach((m, i) => draws[i]!.push(r[m]!));
  }
  const played = new Map<string, number>();
  for (const b of battles) {
    played.set(b.a, (played.get(b.a) ?? 0) + 1);
    played.set(b.b, (played.get(b.b) ?? 0) + 1);
  }
  return models
    .map((m, i) => ({ model: m, value: point[m]!, lo: quantile(draws[i]!, 0.025), hi: quantile(draws[i]!, 0.975), battles: played.get(m) ?? 0 }))
    .sort((x, y) => y.value - x.value);
}

/** Win probability of a over b implied by two ratings on the same scale. */
export function expectedWinRate(ra: number, rb: number, scale = RATING_DEFAULTS.scale, base = RATING_DEFAULTS.base): number {
  return 1 / (1 + base ** ((rb - ra) / scale));
}

export interface WinRateMatrix {
  models: string[];
  /** rate[i][j] = (wins of i over j + ties/2) / battles between them; null where they never met. */
  rate: (number | null)[][];
  count: number[][];
}

export function winRateMatrix(battles: Battle[], models = modelsOf(battles)): WinRateMatrix {
  const index = new Map(models.map((m, i) => [m, i]));
  const W = winCounts(battles, index, models.length);
  const count = W.map((r, i) => r.map((x, j) => (i === j ? 0 : x + W[j]![i]!)));
  const rate = W.map((r, i) => r.map((x, j) => (count[i]![j]! > 0 ? x / count[i]![j]! : null)));
  return { models, rate, count };
}

// ---------------------------------------------------------------------------------------------------
// Length-controlled win rate (Dubois et al., 2024, "Length-Controlled AlpacaEval"): regress the judge's
// preference on the model (an intercept, since one model is compared against one baseline) and on
// tanh(Δlength / std(Δlength)); then predict with the length term set to zero. A judge that merely likes
// longer answers moves the length coefficient, not the intercept.

export interface LengthRecord {
  /** Judge preference for the model over the baseline: 1 win, 0 loss, 0.5 tie/inconsistent. */
  preference: number;
  modelLength: number;
  baselineLength: number;
}

export interface LengthControlled {
  /** Plain mean preference. */
  winRate: number;
  /** σ(intercept): the win rate the regression predicts at equal length. */
  lcWinRate: number;
  intercept: number;
  lengthCoef: number;
  /** std of Δlength used to normalise it. */
  lengthStd: number;
  n: number;
}

export const LC_DEFAULTS = {
  /** L2 penalty on the length coefficient only; a little keeps the fit finite when Δlength separates outcomes. */
  l2: 1e-3,
};

export function lengthControlledWinRate(records: LengthRecord[], opts: Partial<typeof LC_DEFAULTS> = {}): LengthControlled {
  const { l2 } = { ...LC_DEFAULTS, ...opts };
  const n = records.length;
  if (n === 0) return { winRate: NaN, lcWinRate: NaN, intercept: NaN, lengthCoef: NaN, lengthStd: NaN, n };
  const deltas = records.map((r) => r.modelLength - r.baselineLength);
  const mu = deltas.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(deltas.reduce((a, d) => a + (d - mu) ** 2, 0) / n);
  const x = deltas.map((d) => (sd > 0 ? Math.tanh(d / sd) : 0));
  const y = records.map((r) => r.preference);
  // Newton's method on the (soft-label) logistic log-likelihood of [intercept, lengthCoef].
  let b0 = 0, b1 = 0;
  for (let it = 0; it < 100; it++) {
    let g0 = 0, g1 = -l2 * n * b1, h00 = 0, h01 = 0, h11 = l2 * n;
    for (let i = 0; i < n; i++) {
      const p = sigmoid(b0 + b1 * x[i]!);
      const r = y[i]! - p, v = p * (1 - p);
      g0 += r;
      g1 += r * x[i]!;
      h00 += v;
      h01 += v * x[i]!;
      h11 += v * x[i]! * x[i]!;
    }
    const det = h00 * h11 - h01 * h01;
    if (!(Math.abs(det) > 1e-12)) {
      // Δlength carries no information (all equal): the intercept alone.
      const d0 = h00 > 0 ? g0 / h00 : 0;
      b0 += d0;
      if (Math.abs(d0) < 1e-10) break;
      continue;
    }
    const d0 = (h11 * g0 - h01 * g1) / det;
    const d1 = (h00 * g1 - h01 * g0) / det;
    b0 += d0;
    b1 += d1;
    if (Math.abs(d0) + Math.abs(d1) < 1e-10) break;
  }
  return { winRate: y.reduce((a, b) => a + b, 0) / n, lcWinRate: sigmoid(b0), intercept: b0, lengthCoef: b1, lengthStd: sd, n };
}

/** LC win rate with a percentile-bootstrap CI over records. */
export function lengthControlledWithCI(records: LengthRecord[], opts: { iters?: number; seed?: number } = {}): LengthControlled & { ci: [number, number]; winRateCi: [number, number] } {
  const { iters = 500, seed = RATING_DEFAULTS.seed } = opts;
  const point = lengthControlledWinRate(records);
  const rng = new SeededRng(seed);
  const lc: number[] = [], wr: number[] = [];
  if (records.length > 0)
    for (let b = 0; b < iters; b++) {
      const draw = records.map(() => records[rng.int(records.length)]!);
      const r = lengthControlledWinRate(draw);
      if (Number.isFinite(r.lcWinRate)) lc.push(r.lcWinRate);
      wr.push(r.winRate);
    }
  return { ...point, ci: [quantile(lc, 0.025), quantile(lc, 0.975)], winRateCi: [quantile(wr, 0.025), quantile(wr, 0.975)] };
}
