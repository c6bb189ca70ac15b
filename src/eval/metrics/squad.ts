// SQuAD exact match and token F1, ported from the official evaluate-v1.1.py script (normalize_answer,
// exact_match_score, f1_score, metric_max_over_ground_truths), so numbers equal published results on any
// input, Unicode included. The SQuAD v2.0 F1 rule (an empty answer matches only an empty one) is a separate
// function, `tokenF1V2`, behind its own metric name (`squad_v2_f1`): v1.1 gives 0 when either side is empty.
//
// Where JavaScript and Python differ, we follow Python 3 (the official script's language):
// - `\b` in `re.sub(r'\b(a|an|the)\b', ' ', text)` is Unicode-aware in Python 3: a word character is one for
//   which str.isalnum() is true, or "_". isalnum = isalpha (categories Lu Ll Lt Lm Lo) or isnumeric (Nd Nl No,
//   plus characters such as CJK numerals, which are Lo anyway). Combining marks (M*) are NOT word characters.
//   JavaScript's `\b` is ASCII-only, so the "a" in "Łańcut" would count as a word. We use lookarounds over
//   [\p{L}\p{N}_]; checked against Python 3.11's `re` for every code point it knows (test/eval/squad.test.ts).
// - str.split() (white_space_fix) splits on Python's whitespace: Unicode category Zs or bidi class WS, B, S.
//   That includes U+001C–U+001F and U+0085, which JavaScript's `\s` lacks, and excludes U+FEFF, which `\s`
//   has. The set is spelled out below.
// - str.lower() and String.prototype.toLowerCase() both apply full Unicode case mapping (İ → i̇, final Σ → ς);
//   they differ only on characters newer than the Python's Unicode database, which Python leaves unchanged.

// Python's string.punctuation: ASCII only, by design of the original script.
const PUNCT = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

/** The characters Python 3's str.isspace() accepts (fixed by the Unicode standard's Zs and bidi classes). */
const PY_WHITESPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPLIT = new RegExp(`[${PY_WHITESPACE}]+`, 'u');
/** One character of Python's whitespace (the class `pySplit` splits on). */
export const PY_SPACE_CHAR = new RegExp(`^[${PY_WHITESPACE}]$`, 'u');

/** Python 3's `\w` on str patterns: letters, numbers and "_" (not combining marks). */
export const PY_WORD_CHAR = /^[\p{L}\p{N}_]$/u;
/** Python 3's `\b(a|an|the)\b`, with `\b` spelled as lookarounds over PY_WORD_CHAR's class. */
const ARTICLES = /(?<![\p{L}\p{N}_])(a|an|the)(?![\p{L}\p{N}_])/gu;

/** Python's `text.split()` (no argument): runs of whitespace separate, leading/trailing runs vanish. */
export function pySplit(text: string): string[] {
  return text.split(PY_SPLIT).filter((t) => t !== '');
}

/** lower → drop punctuation → drop articles → collapse whitespace (the official order). */
export function normalizeAnswer(s: string): string {
  const lower = s.toLowerCase();
  let noPunc = '';
  for (const ch of lower) if (!PUNCT.has(ch)) noPunc += ch;
  const noArticles = noPunc.replace(ARTICLES, ' ');
  return pySplit(noArticles).join(' ');
}

export function exactMatch(prediction: string, gold: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(gold) ? 1 : 0;
}

/** Tokens in common, counted with multiplicity: sum of Counter(p) & Counter(g). */
function commonCount(p: string[], g: string[]): number {
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
  return same;
}

function f1FromCounts(same: number, nPred: number, nGold: number): number {
  const precision = (1.0 * same) / nPred;
  const recall = (1.0 * same) / nGold;
  return (2 * precision * recall) / (precision + recall);
}

/** evaluate-v1.1.py f1_score: no tokens in common (which includes either side normalising to "") → 0. */
export function tokenF1(prediction: string, gold: string): number {
  const p = pySplit(normalizeAnswer(prediction));
  const g = pySplit(normalizeAnswer(gold));
  const same = commonCount(p, g);
  if (same === 0) return 0;
  return f1FromCounts(same, p.length, g.length);
}

/** evaluate-v2.0.py compute_f1: when either side has no tokens, 1 if both have none, else 0. */
export function tokenF1V2(prediction: string, gold: string): number {
  const p = pySplit(normalizeAnswer(prediction));
  const g = pySplit(normalizeAnswer(gold));
  if (p.length === 0 || g.length === 0) return p.length === g.length ? 1 : 0;
  const same = commonCount(p, g);
  if (same === 0) return 0;
  return f1FromCounts(same, p.length, g.length);
}

/** metric_max_over_ground_truths from the official script. */
export function maxOverGold(fn: (p: string, g: string) => number, prediction: string, golds: string[]): number {
  if (golds.length === 0) throw new Error('no gold answers to score against');
  return Math.max(...golds.map((g) => fn(prediction, g)));
}
