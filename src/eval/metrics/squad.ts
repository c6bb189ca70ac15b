// SQuAD exact match and token F1, ported from the official evaluate-v1.1.py script (normalize_answer,
// exact_match_score, f1_score, metric_max_over_ground_truths), so numbers compare with published results.
// One addition from the v2.0 script: an empty prediction or gold only matches an empty one.

// Python's string.punctuation: ASCII only, by design of the original script.
const PUNCT = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

/** lower → drop punctuation → drop articles → collapse whitespace (the official order). */
export function normalizeAnswer(s: string): string {
  const lower = s.toLowerCase();
  let noPunc = '';
  for (const ch of lower) if (!PUNCT.has(ch)) noPunc += ch;
  const noArticles = noPunc.replace(/\b(a|an|the)\b/g, ' ');
  return noArticles.split(/\s+/).filter(Boolean).join(' ');
}

export function exactMatch(prediction: string, gold: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(gold) ? 1 : 0;
}

export function tokenF1(prediction: string, gold: string): number {
  const p = normalizeAnswer(prediction).split(' ').filter(Boolean);
  const g = normalizeAnswer(gold).split(' ').filter(Boolean);
  // SQuAD v2 rule: an empty answer only matches an empty answer.
  if (p.length === 0 || g.length === 0) return p.length === g.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const t of g) counts.set(t, (counts.get(t) ?? 0) + 1);
  let same = 0;
  for (const t of p) {
    const c = counts.get(t) ?? 0;
    if (c > 0) {
      same++;
      counts.set(t, c - 1);
    }
  }
  if (same === 0) return 0;
  const precision = same / p.length;
  const recall = same / g.length;
  return (2 * precision * recall) / (precision + recall);
}

/** metric_max_over_ground_truths from the official script. */
export function maxOverGold(fn: (p: string, g: string) => number, prediction: string, golds: string[]): number {
  if (golds.length === 0) throw new Error('no gold answers to score against');
  return Math.max(...golds.map((g) => fn(prediction, g)));
}
