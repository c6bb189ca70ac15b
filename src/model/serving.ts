// What a served model offers (the OpenAI-compatible server, the local: eval provider). They are written against this interface
// only, so it serves the in-process model (src/model/lm.ts), and tests can serve a tiny deterministic one.

export interface ServableModel {
  name: string;
  generate(
    prompts: string[],
    opts: { maxNewTokens: number; temperature?: number; topK?: number; topP?: number; stop?: string[]; seed?: number },
    onToken?: (row: number, text: string) => void,
  ): Promise<{ text: string; tokenIds: number[]; logprobs: number[]; finishReason: 'stop' | 'length' | 'eos'; promptTokens: number }[]>;
  scoreContinuation(
    context: string,
    continuation: string,
  ): Promise<{ logprob: number; isGreedy: boolean; tokens: number; tokenLogprobs: number[]; tokenStrings: string[] }>;
  applyChatTemplate(messages: { role: string; content: string }[]): string;
}

export type GenerateOptions = Parameters<ServableModel['generate']>[1];
export type Generation = Awaited<ReturnType<ServableModel['generate']>>[number];
export type ContinuationScore = Awaited<ReturnType<ServableModel['scoreContinuation']>>;

/** Log-probs of every token of a text, each given the tokens before it, with the most likely alternatives. */
export interface PromptScore {
  tokenStrings: string[];
  /** null where the model has no prediction (the first token of a model without BOS). */
  tokenLogprobs: (number | null)[];
  /** Per token, up to topN most likely tokens at that position → log-prob (the argmax first). */
  topLogprobs: Record<string, number>[];
}

/**
 * Optional extras the server uses when a model has them.
 * - scorePrompt: exact top_logprobs for `echo: true` (lm-evaluation-harness decides `is_greedy` from them).
 *   Without it the server scores the prompt with scoreContinuation('', prompt) and can only vouch for the
 *   chosen token; see docs/providers.md.
 * - decode: token ids → text, so prompts sent as token ids (lm-evaluation-harness's default) are served.
 */
export interface ServableModelExtras {
  scorePrompt?(text: string, topN: number): Promise<PromptScore>;
  decode?(ids: number[]): string;
}

export function hasScorePrompt(m: ServableModel): m is ServableModel & Required<Pick<ServableModelExtras, 'scorePrompt'>> {
  return typeof (m as ServableModelExtras).scorePrompt === 'function';
}

export function hasDecode(m: ServableModel): m is ServableModel & Required<Pick<ServableModelExtras, 'decode'>> {
  return typeof (m as ServableModelExtras).decode === 'function';
}
