// What a served model offers. The OpenAI-compatible server (src/server/) and the eval harness's local: provider are
// written against this interface only, so they serve the in-process model (src/model/lm.ts), and tests can serve a
// tiny deterministic one. It lives in model/ because model/lm.ts implements it and both users sit above model/.

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
  /** Positions the model attends over (prompt + generated tokens), so a server can refuse or clamp requests. */
  readonly contextLength?: number;
  /** Size of the vocabulary: token ids at or above it do not exist. */
  readonly vocabSize?: number;
  /** Tokens a prompt takes, as generate() would encode it. */
  countTokens?(text: string): number;
}

/**
 * A request the model itself refuses as the client's mistake (a prompt longer than the context, a token id
 * outside the vocabulary): a server answers it with 400, not 500.
 */
export class InvalidRequestError extends Error {
  override name = 'InvalidRequestError';
  constructor(
    message: string,
    /** The request parameter at fault (OpenAI's `param`). */
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

// ------------------------------------------------------------------------------------- continuous batching

/** One generation request for a StepBatch. */
export interface DecodeRequest {
  prompt: string;
  opts: GenerateOptions;
  /** Streamed text, in order; the pieces add up to the final text. */
  onToken?: (text: string) => void;
}

/**
 * A batch that decodes one token per step for every row, and takes new rows between steps (continuous batching):
 * a request joins while others are half-way, and leaves as soon as it ends (EOS, a stop string, max tokens).
 * The caller (BatchQueue) calls add/step/cancel one at a time, never concurrently.
 */
export interface StepBatch {
  /** Rows decoding now. */
  readonly size: number;
  /** Prefill a request and add it as a row; `done` is called when it ends (perhaps already during add). */
  add(req: DecodeRequest, done: (g: Generation) => void): Promise<void>;
  /** One decoding step for every row; rows that end call their `done`. */
  step(): Promise<void>;
  /** Drop a row (its client went away); its `done` is never called. */
  cancel(req: DecodeRequest): void;
  /** Free the batch's arrays; rows still in it are dropped. */
  dispose(): void;
}

/** A model that can decode step by step: the BatchQueue then admits requests into the running batch. */
export interface SteppableModel {
  /** A new empty batch of at most `maxRows` rows. */
  openBatch(maxRows: number): StepBatch;
}

export function isSteppable(m: ServableModel): m is ServableModel & SteppableModel {
  return typeof (m as Partial<SteppableModel>).openBatch === 'function';
}

export function hasScorePrompt(m: ServableModel): m is ServableModel & Required<Pick<ServableModelExtras, 'scorePrompt'>> {
  return typeof (m as ServableModelExtras).scorePrompt === 'function';
}

export function hasDecode(m: ServableModel): m is ServableModel & Required<Pick<ServableModelExtras, 'decode'>> {
  return typeof (m as ServableModelExtras).decode === 'function';
}
