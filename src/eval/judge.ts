// LLM-as-judge: pairwise comparison with position swapping, and single-answer grading 1-10
// (after MT-Bench, Zheng et al. 2023). Any Provider can judge; the judge's text is parsed leniently
// because real judges do not always keep to the requested format.
import type { CompletionRequest, CompletionResponse, Provider } from './providers/types.js';

/** How the judge is called: a provider's `complete`, or the runner's cached, rate-limited wrapper of it. */
export type CompleteFn = (req: CompletionRequest) => Promise<CompletionResponse>;

export const JUDGE_DEFAULTS = { max_tokens: 256, temperature: 0 };

export const PAIRWISE_SYSTEM =
  'You are an impartial judge. Compare two answers to the user question below. Judge correctness, helpfulness, ' +
  'relevance and coherence. The order of the answers and their length must not influence you. ' +
  'Explain briefly in one or two sentences, then give your verdict on the last line in exactly this form: ' +
  '"[[A]]" if answer A is better, "[[B]]" if answer B is better, "[[C]]" for a tie.';

export function pairwisePrompt(question: string, a: string, b: string): string {
  return `[Question]\n${question}\n\n[Answer A]\n${a}\n[End of Answer A]\n\n[Answer B]\n${b}\n[End of Answer B]`;
}

export const GRADE_SYSTEM =
  'You are an impartial judge. Rate the coherence of the answer below on a scale of 1 to 10: is it clear, ' +
  'logically organized, consistent, on topic, and free of repetition and contradictions? Correctness matters only ' +
  'where it breaks the logic. Explain briefly in one or two sentences, then give your rating on the last line in ' +
  'exactly this form: "Rating: [[N]]" with N from 1 to 10.';

export function gradePrompt(question: string, answer: string): string {
  return `[Question]\n${question}\n\n[Answer]\n${answer}\n[End of Answer]`;
}

export type Verdict = 'A' | 'B' | 'tie';

/**
 * Reads a verdict from judge text: "[[A]]", "[[B]]", "[[C]]"/"[[tie]]" (the last one wins, since judges
 * often restate the question's format before answering), else "Verdict: B", "Winner: Answer A",
 * "A is better", "tie", or a bare "A"/"B". Returns null when nothing unambiguous is found.
 */
export function parseVerdict(text: string): Verdict | null {
  const map = (s: string): Verdict | null => {
    const t = s.trim().toLowerCase();
    if (t === 'a') return 'A';
    if (t === 'b') return 'B';
    if (t === 'c' || t === 'tie' || t === 'draw' || t === 'equal') return 'tie';
    return null;
  };
  const bracketed = [...text.matchAll(/\[\[\s*(A|B|C|tie|draw)\s*\]\]/gi)];
  if (bracketed.length > 0) return map(bracketed[bracketed.length - 1]![1]!);
  const labelled = [...text.matchAll(/\b(?:final\s+)?(?:verdict|winner|decision|answer|choice)\s*(?:is)?\s*[:=-]\s*\**\s*(?:(?:answer|assistant|response)\s+)?(A|B|C|tie|draw)\b/gi)];
  if (labelled.length > 0) return map(labelled[labelled.length - 1]![1]!);
  const better = [...text.matchAll(/\b(?:answer|assistant|response)?\s*\b(A|B)\b\s+is\s+(?:clearly\s+|slightly\s+|much\s+)?better\b/gi)];
  if (better.length > 0) return map(better[better.length - 1]![1]!);
  const bare = text.trim().replace(/^[\s"'*([]+|[\s"'*)\].!]+$/g, '').replace(/^(?:answer|assistant|response|option)\s+/i, '');
  const m = map(bare);
  if (m) return m;
  if (/\b(it'?s a tie|tie|both (?:answers )?are (?:equally good|equal))\b/i.test(text) && !/\b[AB] is better\b/i.test(text)) return 'tie';
  return null;
}

/** Reads a 1-10 grade: "[[7]]", "Rating: 7", "Score: 7.5/10", "7 out of 10", or a bare number. Null otherwise. */
export function parseScore(text: string): number | null {
  const patterns = [
    /\[\[\s*(\d+(?:\.\d+)?)\s*\]\]/g,
    /\b(?:rating|score|grade)\s*[:=]?\s*\**\s*(\d+(?:\.\d+)?)/gi,
    /\b(\d+(?:\.\d+)?)\s*(?:\/|out of)\s*10\b/gi,
  ];
  for (const re of patterns) {
    const all = [...text.matchAll(re)];
    if (all.length > 0) {
      const v = Number(all[all.length - 1]![1]);
      return v >= 1 && v <= 10 ? v : null;
    }
  }
  const bare = text.trim().match(/^(\d+(?:\.\d+)?)[.!]?$/);
  if (bare) {
    const v = Number(bare[1]);
    return v >= 1 && v <= 10 ? v : null;
  }
  return null;
}

/**
 * The outcome of one position-swapped comparison of answer `a` against answer `b`:
 * both orders agree → that outcome (a win or an explicit tie); they disagree → 'inconsistent'
 * (scored as a tie); either verdict unreadable → 'invalid' (left out of ratings, but counted).
 */
export type PairOutcome = 'a' | 'b' | 'tie' | 'inconsistent' | 'invalid';

/** `first` judged (a as A, b as B); `second` judged the swapped order (b as A, a as B). */
export function combineVerdicts(first: Verdict | null, second: Verdict | null): PairOutcome {
  if (first === null || second === null) return 'invalid';
  const f = first === 'A' ? 'a' : first === 'B' ? 'b' : 'tie';
  const s = second === 'A' ? 'b' : second === 'B' ? 'a' : 'tie';
  return f === s ? f : 'inconsistent';
}

export interface PairJudgement {
  outcome: PairOutcome;
  verdicts: [Verdict | null, Verdict | null];
  raw: [string, string];
}

function judgeRequest(system: string, user: string): CompletionRequest {
  return {
    messages: [
      { role: 'system', content: system },
      { role: 'user', content: user },
    ],
    maxTokens: JUDGE_DEFAULTS.max_tokens,
    temperature: JUDGE_DEFAULTS.temperature,
  };
}

export function pairwiseRequests(question: string, a: string, b: string): [CompletionRequest, CompletionRequest] {
  return [judgeRequest(PAIRWISE_SYSTEM, pairwisePrompt(question, a, b)), judgeRequest(PAIRWISE_SYSTEM, pairwisePrompt(question, b, a))];
}

/** Asks A-vs-B and B-vs-A (concurrently) and combines the verdicts. */
export async function judgePair(complete: CompleteFn, question: string, a: string, b: string): Promise<PairJudgement> {
  const [r1, r2] = await Promise.all(pairwiseRequests(question, a, b).map((r) => complete(r)));
  const verdicts: [Verdict | null, Verdict | null] = [parseVerdict(r1!.text), parseVerdict(r2!.text)];
  return { outcome: combineVerdicts(...verdicts), verdicts, raw: [r1!.text, r2!.text] };
}

export function gradeRequest(question: string, answer: string): CompletionRequest {
  return judgeRequest(GRADE_SYSTEM, gradePrompt(question, answer));
}

/** Single-answer coherence grade, 1-10 (null when the judge's text has no readable grade). */
export async function gradeAnswer(complete: CompleteFn, question: string, answer: string): Promise<{ score: number | null; raw: string }> {
  const r = await complete(gradeRequest(question, answer));
  return { score: parseScore(r.text), raw: r.text };
}

export function completeFn(p: Provider): CompleteFn {
  return (req) => p.complete(req);
}

export interface OutcomeCounts {
  a: number;
  b: number;
  tie: number;
  inconsistent: number;
  invalid: number;
}

export function countOutcomes(outcomes: PairOutcome[]): OutcomeCounts {
  const c: OutcomeCounts = { a: 0, b: 0, tie: 0, inconsistent: 0, invalid: 0 };
  for (const o of outcomes) c[o]++;
  return c;
}
