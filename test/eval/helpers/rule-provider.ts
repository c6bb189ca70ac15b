// A small, real, deterministic Provider for tests: rule-based text models (extractive QA, lead-1
// summaries, looping or varied generation), a unigram language model for log-likelihoods, and a judge
// that grades by measurable text properties. No network, no randomness: the same request always gets
// the same answer, which is what the cache and resume tests need.
import type { CompletionRequest, CompletionResponse, LoglikelihoodRequest, LoglikelihoodResponse, Provider } from '../../../src/eval/providers/types.js';

export type Style = 'extractive' | 'verbose' | 'loop' | 'judge' | 'lazy-judge' | 'lm';

export interface RuleOptions {
  /** Throw on the call after this many successful ones (simulates a crash mid-run). */
  failAfter?: number;
  /** Milliseconds per call (makes concurrency and kills observable). */
  delayMs?: number;
  /** Provide loglikelihood() (default true). */
  loglikelihood?: boolean;
}

/** Every successful call of every RuleProvider in this process: provider id → request keys, in order. */
export const answered = new Map<string, string[]>();

const wordsOf = (s: string) => s.toLowerCase().match(/[a-z0-9]+/g) ?? [];
const sentences = (s: string) => s.split(/(?<=[.!?])\s+/).map((x) => x.trim()).filter(Boolean);

function lastUser(req: CompletionRequest): string {
  if (req.prompt !== undefined) return req.prompt;
  const users = (req.messages ?? []).filter((m) => m.role === 'user');
  return users[users.length - 1]?.content ?? '';
}

function section(text: string, name: string): string | undefined {
  const m = text.match(new RegExp(`\\[${name}\\]\\n([\\s\\S]*?)\\n\\[End of ${name}\\]`));
  return m?.[1];
}

/** Share of distinct words: a crude, measurable stand-in for "non-repetitive, varied". */
function variety(s: string): number {
  const w = wordsOf(s);
  return w.length === 0 ? 0 : new Set(w).size / w.length;
}

export class RuleProvider implements Provider {
  readonly model: string;
  calls = 0;
  loglikelihood?: (reqs: LoglikelihoodRequest[]) => Promise<LoglikelihoodResponse[]>;

  constructor(
    readonly id: string,
    readonly style: Style,
    private readonly opts: RuleOptions = {},
  ) {
    this.model = `rule-${style}`;
    if (opts.loglikelihood !== false) this.loglikelihood = (reqs) => this.scoreAll(reqs);
  }

  private async step(key: string): Promise<void> {
    if (this.opts.delayMs) await new Promise((r) => setTimeout(r, this.opts.delayMs));
    if (this.opts.failAfter !== undefined && this.calls >= this.opts.failAfter) throw new Error(`${this.id}: simulated crash after ${this.calls} calls`);
    this.calls++;
    if (!answered.has(this.id)) answered.set(this.id, []);
    answered.get(this.id)!.push(key);
  }

  async complete(req: CompletionRequest): Promise<CompletionResponse> {
    await this.step(JSON.stringify(req));
    const sys = req.messages?.find((m) => m.role === 'system')?.content ?? '';
    const user = lastUser(req);
    let text: string;
    if (this.style === 'lazy-judge') text = sys.includes('[[A]]') ? 'Both are fine. [[A]]' : 'Rating: [[5]]';
    else if (this.style === 'judge') text = this.judge(sys, user);
    else text = this.answer(user);
    const words = text.split(/\s+/).filter(Boolean);
    const truncated = words.slice(0, req.maxTokens).join(' ');
    return { text: truncated, finishReason: words.length > req.maxTokens ? 'length' : 'stop', completionTokens: Math.min(words.length, req.maxTokens) };
  }

  private judge(sys: string, user: string): string {
    if (sys.includes('[[A]]')) {
      const a = section(user, 'Answer A') ?? '', b = section(user, 'Answer B') ?? '';
      const va = variety(a), vb = variety(b);
      if (Math.abs(va - vb) < 0.05) return 'They are about equally good. [[C]]';
      return va > vb ? 'Answer A is more varied and clear. [[A]]' : 'Verdict: B';
    }
    const ans = section(user, 'Answer') ?? '';
    return `The answer is ${variety(ans) > 0.7 ? 'clear' : 'repetitive'}. Rating: [[${Math.max(1, Math.round(1 + 9 * variety(ans)))}]]`;
  }

  private answer(prompt: string): string {
    const q = prompt.match(/Question:\s*(.*)/)?.[1];
    const doc = prompt.match(/(?:Context|Text|Article):\s*([\s\S]*?)(?:\n\s*\n|\nQuestion:|$)/)?.[1] ?? prompt;
    if (this.style === 'loop') return 'I think that I think that I think that ' + (wordsOf(q ?? prompt)[0] ?? 'so') + ' is so so so so.';
    if (q) {
      // Extractive QA: the context sentence sharing most words with the question, minus the question's words.
      const qw = new Set(wordsOf(q));
      const best = sentences(doc).reduce<{ s: string; k: number }>((acc, s) => {
        const k = wordsOf(s).filter((w) => qw.has(w)).length;
        return k > acc.k ? { s, k } : acc;
      }, { s: '', k: -1 }).s;
      const rest = best.replace(/[.!?]$/, '').split(/\s+/).filter((w) => !qw.has(w.toLowerCase().replace(/[^a-z0-9]/g, '')));
      const short = rest.slice(-3).join(' ');
      return this.style === 'verbose' ? `Based on the passage, the answer is ${short}. ${best}` : short;
    }
    if (/summar/i.test(prompt)) {
      const lead = sentences(doc)[0] ?? '';
      return this.style === 'verbose' ? `${lead} ${sentences(doc)[1] ?? ''}`.trim() : lead;
    }
    // Open generation: a few sentences built from the prompt's own content words.
    const w = wordsOf(prompt).filter((x) => x.length > 3);
    const topic = w.slice(0, 4).join(' ') || 'the topic';
    return this.style === 'verbose'
      ? `Here is a thought about ${topic}. Each part matters for different reasons, and careful planning helps. In short, ${w[0] ?? 'it'} deserves attention.`
      : `${topic}: worth a short note.`;
  }

  /** A unigram model of the context with add-one smoothing: log p(w) = log((count(w)+1) / (N + V)). */
  private async scoreAll(reqs: LoglikelihoodRequest[]): Promise<LoglikelihoodResponse[]> {
    await this.step(JSON.stringify(reqs));
    return reqs.map(({ context, continuation }) => {
      const ctx = wordsOf(context);
      const counts = new Map<string, number>();
      for (const w of ctx) counts.set(w, (counts.get(w) ?? 0) + 1);
      const cont = wordsOf(continuation);
      const V = counts.size + cont.length + 1;
      let logprob = 0;
      for (const w of cont) logprob += Math.log(((counts.get(w) ?? 0) + 1) / (ctx.length + V));
      return { logprob, isGreedy: false, tokens: cont.length };
    });
  }
}

/** Registry factory: `rule:<style>` with `config: {failAfter, delayMs, loglikelihood}`. */
export function ruleFactory(target: string, id: string, o: { config?: Record<string, unknown> }): Provider {
  const styles: Style[] = ['extractive', 'verbose', 'loop', 'judge', 'lazy-judge', 'lm'];
  const style = target.split('#')[0] as Style;
  if (!styles.includes(style)) throw new Error(`rule provider: unknown style "${target}"`);
  return new RuleProvider(id, style, (o.config ?? {}) as RuleOptions);
}
