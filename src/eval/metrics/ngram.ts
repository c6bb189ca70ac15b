// An interpolated Kneser–Ney n-gram language model over token ids: the independent fluency model of the study.
//
// Why it exists: a neural base policy is only worth aligning if it models the language better than counting does.
// The study fits this model on the base policy's own training sentences and vocabulary, tunes its discounts on a
// validation split, and compares both on held-out sentences in nats per predicted token. It also scores samples
// (the perplexity of a policy's continuations under a model that no method trains against).
//
// Model (Chen & Goodman 1999, "interpolated Kneser–Ney"; KenLM's rule for n-grams that start with <bos>):
//   P_k(w | h) = max(a_k(h w) − D_k, 0) / A_k(h) + D_k · T_k(h) / A_k(h) · P_{k−1}(w | h'),   P_0(w) = 1 / V
// where h' drops the oldest token of h, a_n are raw counts, a_k (k < n) are continuation counts (how many distinct
// tokens precede the k-gram), except k-grams that start with <bos>, which cannot be extended left and keep their raw
// counts; A_k(h) = Σ_w a_k(h w), T_k(h) = #{w : a_k(h w) > 0}. A history never seen at level k falls through to k−1.
// Each sentence is padded with n−1 <bos> tokens on the left; the first real token (usually <bos> itself) is context only.

export interface KneserNeyOptions {
  /** n: the longest n-gram (2 = bigram). */
  order: number;
  /** Size of the id space; ids must be in [0, vocabSize). The lowest level is uniform over it. */
  vocabSize: number;
  /** The begin-of-sentence id sentences start with (used for left padding). */
  bosId: number;
  /** One absolute discount per level 1..n, each in (0, 1). Default 0.75 everywhere. */
  discounts?: number[];
}

interface Level {
  /** Adjusted count of each k-gram, keyed by its ids folded base V. */
  counts: Map<number, number>;
  /** Per history (k−1 ids folded): [Σ counts, number of distinct continuations]. */
  hist: Map<number, [number, number]>;
}

export interface NgramScore {
  /** Total negative log-likelihood in nats. */
  nats: number;
  /** Predicted tokens (every token after the first of each sentence). */
  tokens: number;
  /** nats / tokens. */
  perToken: number;
}

export class KneserNey {
  readonly order: number;
  readonly vocabSize: number;
  readonly bosId: number;
  discounts: number[];
  private readonly levels: Level[]; // levels[k-1] for k = 1..n
  /** V^k for k = 0..n (keys fold ids base V). */
  private readonly pow: number[];

  constructor(sentences: readonly (readonly number[])[], o: KneserNeyOptions) {
    const { order: n, vocabSize: V, bosId } = o;
    if (!(Number.isInteger(n) && n >= 1)) throw new Error(`KneserNey: order must be an integer ≥ 1, got ${n}`);
    if (!(Number.isInteger(V) && V >= 2)) throw new Error(`KneserNey: vocabSize must be an integer ≥ 2, got ${V}`);
    if (V ** n > Number.MAX_SAFE_INTEGER) throw new Error(`KneserNey: vocabSize ${V} to the power ${n} does not fit a safe integer key`);
    this.order = n;
    this.vocabSize = V;
    this.bosId = bosId;
    this.discounts = o.discounts ? [...o.discounts] : Array(n).fill(0.75);
    this.checkDiscounts();
    this.pow = Array.from({ length: n + 1 }, (_, k) => V ** k);
    const pow = this.pow;

    // Raw counts of every k-gram (k = 1..n) that ends at a predicted position, with the BOS flag of its first id.
    const raw: Map<number, number>[] = Array.from({ length: n }, () => new Map());
    const startsBos: Set<number>[] = Array.from({ length: n }, () => new Set());
    for (const [si, s] of sentences.entries()) {
      const padded = [...Array(n - 1).fill(bosId), ...s];
      for (const [i, t] of padded.entries()) if (!(Number.isInteger(t) && t >= 0 && t < V)) throw new Error(`KneserNey: sentence ${si}: id ${t} at position ${i} is outside [0, ${V})`);
      for (let i = n; i < padded.length; i++) {
        let key = 0;
        for (let k = 1; k <= n; k++) {
          // The k-gram ending at i: padded[i−k+1 .. i]; build its key by prepending one id at a time.
          const first = padded[i - k + 1]!;
          key = k === 1 ? first : first * pow[k - 1]! + key;
          const m = raw[k - 1]!;
          m.set(key, (m.get(key) ?? 0) + 1);
          if (first === bosId) startsBos[k - 1]!.add(key);
        }
      }
    }
    // Adjusted counts: the top level keeps raw counts; lower levels count distinct left extensions.
    const adjusted: Map<number, number>[] = raw.map(() => new Map());
    adjusted[n - 1] = raw[n - 1]!;
    for (let k = 1; k < n; k++) {
      const adj = adjusted[k - 1]!;
      for (const key of raw[k]!.keys()) {
        const suffix = key % pow[k]!; // drop the oldest id of the (k+1)-gram
        if (!startsBos[k - 1]!.has(suffix)) adj.set(suffix, (adj.get(suffix) ?? 0) + 1);
      }
      for (const key of startsBos[k - 1]!) adj.set(key, raw[k - 1]!.get(key)!);
    }
    this.levels = adjusted.map((counts) => {
      const hist = new Map<number, [number, number]>();
      for (const [key, c] of counts) {
        const h = Math.floor(key / V);
        const e = hist.get(h);
        if (e) {
          e[0] += c;
          e[1] += 1;
        } else hist.set(h, [c, 1]);
      }
      return { counts, hist };
    });
  }

  private checkDiscounts(): void {
    if (this.discounts.length !== this.order || !this.discounts.every((d) => d > 0 && d < 1))
      throw new Error(`KneserNey: need ${this.order} discounts in (0, 1), got [${this.discounts.join(', ')}]`);
  }

  /** P(w | history): history is the tokens before w (only the last n−1 are used; shorter ones are <bos>-padded). */
  prob(history: readonly number[], w: number): number {
    const n = this.order;
    const ctx = [...Array(Math.max(0, n - 1 - history.length)).fill(this.bosId), ...history.slice(Math.max(0, history.length - (n - 1)))];
    return this.combine(this.lookup([...ctx, w], n - 1), 0);
  }

  /**
   * The counts the interpolation needs for predicting seq[i] from its (padded) history: per level k = 1..n,
   * [a_k(h w), A_k(h), T_k(h)], with A_k = 0 where the history was never seen. They do not depend on the
   * discounts, so tuning computes them once.
   */
  private lookup(seq: readonly number[], i: number): Float64Array {
    const n = this.order, V = this.vocabSize, w = seq[i]!;
    const out = new Float64Array(3 * n);
    let h = 0;
    for (let k = 1; k <= n; k++) {
      if (k > 1) {
        const j = i - (k - 1);
        h = (j >= 0 ? seq[j]! : this.bosId) * this.pow[k - 2]! + h;
      }
      const lv = this.levels[k - 1]!;
      const e = lv.hist.get(h);
      if (!e) continue;
      out[3 * (k - 1)] = lv.counts.get(h * V + w) ?? 0;
      out[3 * (k - 1) + 1] = e[0];
      out[3 * (k - 1) + 2] = e[1];
    }
    return out;
  }

  private combine(c: Float64Array, offset: number, discounts = this.discounts): number {
    let p = 1 / this.vocabSize;
    for (let k = 0; k < this.order; k++) {
      const A = c[offset + 3 * k + 1]!;
      if (A === 0) continue; // history unseen at this level: keep the lower-order estimate
      const D = discounts[k]!;
      p = Math.max(c[offset + 3 * k]! - D, 0) / A + ((D * c[offset + 3 * k + 2]!) / A) * p;
    }
    return p;
  }

  /** Counts for every predicted token of `sentences` (all tokens after each sentence's first). */
  prepare(sentences: readonly (readonly number[])[]): Float64Array {
    const total = sentences.reduce((a, s) => a + Math.max(0, s.length - 1), 0);
    const out = new Float64Array(3 * this.order * total);
    let o = 0;
    for (const s of sentences) for (let i = 1; i < s.length; i++, o += 3 * this.order) out.set(this.lookup(s, i), o);
    return out;
  }

  /** Mean NLL (nats per token) of prepared counts under the given discounts. */
  scorePrepared(c: Float64Array, discounts = this.discounts): number {
    const stride = 3 * this.order, n = c.length / stride;
    let nats = 0;
    for (let o = 0; o < c.length; o += stride) nats -= Math.log(this.combine(c, o, discounts));
    return n ? nats / n : NaN;
  }

  /** Negative log-likelihood of each sentence's tokens after its first (the first, usually <bos>, is context). */
  score(sentences: readonly (readonly number[])[]): NgramScore {
    let nats = 0, tokens = 0;
    for (const s of sentences) {
      for (let i = 1; i < s.length; i++) {
        nats -= Math.log(this.combine(this.lookup(s, i), 0));
        tokens++;
      }
    }
    return { nats, tokens, perToken: tokens ? nats / tokens : NaN };
  }

  /** Negative log-likelihood of a continuation given its prompt (prompt tokens are context only). */
  scoreContinuation(prompt: readonly number[], continuation: readonly number[]): NgramScore {
    const s = [...prompt, ...continuation];
    let nats = 0;
    for (let i = prompt.length; i < s.length; i++) nats -= Math.log(this.combine(this.lookup(s, i), 0));
    return { nats, tokens: continuation.length, perToken: continuation.length ? nats / continuation.length : NaN };
  }

  /** Replace the discounts (they only enter at query time, so tuning needs no refit). */
  setDiscounts(d: number[]): void {
    const old = this.discounts;
    this.discounts = [...d];
    try {
      this.checkDiscounts();
    } catch (e) {
      this.discounts = old;
      throw e;
    }
  }
}

export interface TunedNgram {
  model: KneserNey;
  order: number;
  discounts: number[];
  /** Validation loss (nats per token) at the chosen discounts. */
  validLoss: number;
  /** Validation loss of every order tried, at its own tuned discounts. */
  byOrder: { order: number; discounts: number[]; validLoss: number }[];
}

const GRID = [0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95];

/**
 * Fit Kneser–Ney models of each order on `train`, tune each level's discount on `valid` (coordinate descent over a
 * grid, two sweeps), and keep the order with the lowest validation loss. Held-out data is never touched here.
 */
export function tuneKneserNey(train: readonly (readonly number[])[], valid: readonly (readonly number[])[], o: { orders: number[]; vocabSize: number; bosId: number }): TunedNgram {
  if (valid.length === 0) throw new Error('tuneKneserNey: the validation split is empty');
  const byOrder: TunedNgram['byOrder'] = [];
  let best: { model: KneserNey; order: number; discounts: number[]; validLoss: number } | null = null;
  for (const order of o.orders) {
    const model = new KneserNey(train, { order, vocabSize: o.vocabSize, bosId: o.bosId });
    const counts = model.prepare(valid);
    let d = [...model.discounts];
    let loss = model.scorePrepared(counts, d);
    for (let sweep = 0; sweep < 2; sweep++) {
      for (let k = order - 1; k >= 0; k--) {
        for (const g of GRID) {
          const trial = d.map((x, i) => (i === k ? g : x));
          const l = model.scorePrepared(counts, trial);
          if (l < loss) {
            loss = l;
            d = trial;
          }
        }
      }
    }
    model.setDiscounts(d);
    byOrder.push({ order, discounts: d, validLoss: loss });
    if (!best || loss < best.validLoss) best = { model, order, discounts: d, validLoss: loss };
  }
  return { ...best!, byOrder };
}
