// ROUGE-1/2/L F-measure as computed by Google's `rouge-score` package (the one Hugging Face `evaluate`
// wraps): lowercase, every run of non [a-z0-9] characters becomes a space, split on whitespace.
// No stemming (rouge-score's default, use_stemmer=False). Lin (2004) defines the measures.

export interface RougeScore {
  precision: number;
  recall: number;
  fmeasure: number;
}

export function rougeTokenize(text: string): string[] {
  return text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, ' ')
    .split(/\s+/)
    .filter((t) => /^[a-z0-9]+$/.test(t));
}

function score(overlap: number, predCount: number, targetCount: number): RougeScore {
  const precision = predCount > 0 ? overlap / predCount : 0;
  const recall = targetCount > 0 ? overlap / targetCount : 0;
  const fmeasure = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
  return { precision, recall, fmeasure };
}

function ngramCounts(tokens: string[], n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i + n <= tokens.length; i++) {
    const k = tokens.slice(i, i + n).join(' ');
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

/** ROUGE-N: clipped n-gram overlap (min of counts), precision over the prediction, recall over the target. */
export function rougeN(target: string, prediction: string, n: number): RougeScore {
  const t = ngramCounts(rougeTokenize(target), n);
  const p = ngramCounts(rougeTokenize(prediction), n);
  let overlap = 0;
  for (const [k, c] of p) overlap += Math.min(c, t.get(k) ?? 0);
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  return score(overlap, sum(p), sum(t));
}

export function lcsLength(a: string[], b: string[]): number {
  // One rolling row: O(|a|·|b|) time, O(|b|) memory.
  const row = new Array<number>(b.length + 1).fill(0);
  for (let i = 1; i <= a.length; i++) {
    let diag = 0;
    for (let j = 1; j <= b.length; j++) {
      const up = row[j]!;
      row[j] = a[i - 1] === b[j - 1] ? diag + 1 : Math.max(up, row[j - 1]!);
      diag = up;
    }
  }
  return row[b.length]!;
}

/** ROUGE-L (sentence level, as rouge-score's "rougeL", not the summary-level "rougeLsum"). */
export function rougeL(target: string, prediction: string): RougeScore {
  const t = rougeTokenize(target);
  const p = rougeTokenize(prediction);
  return score(lcsLength(t, p), p.length, t.length);
}

/** Best F-measure over several references (as multi-reference ROUGE in `evaluate`). */
export function rougeMax(kind: 'rouge1' | 'rouge2' | 'rougeL', prediction: string, references: string[]): number {
  if (references.length === 0) throw new Error('no reference summaries to score against');
  const one = (r: string) => (kind === 'rougeL' ? rougeL(r, prediction) : rougeN(r, prediction, kind === 'rouge1' ? 1 : 2)).fmeasure;
  return Math.max(...references.map(one));
}
