// The contract every model provider implements: local:, gguf:, openai:, openai-compat:.
// An evaluation only talks to this interface, so a task runs unchanged against a 1M-parameter
// model in-process or a 100B model behind vLLM.

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

export interface CompletionRequest {
  /** Either a raw prompt (completions) or chat messages (chat). */
  prompt?: string;
  messages?: ChatMessage[];
  maxTokens: number;
  temperature?: number; // 0 = greedy
  topP?: number;
  topK?: number;
  stop?: string[];
  seed?: number;
}

export interface CompletionResponse {
  text: string;
  finishReason: 'stop' | 'length' | 'eos' | 'error';
  promptTokens?: number;
  completionTokens?: number;
  /** Per-token log-probs of the generated tokens, where the provider returns them. */
  logprobs?: number[];
  latencyMs?: number;
}

export interface LoglikelihoodRequest {
  context: string;
  continuation: string;
}

export interface LoglikelihoodResponse {
  /** Sum of log p(continuation tokens | context). */
  logprob: number;
  /** True when greedy decoding from the context would produce exactly the continuation. */
  isGreedy: boolean;
  tokens: number;
}

export interface Provider {
  /** The id the user typed, e.g. "openai-compat:http://127.0.0.1:8000/v1#qwen2". */
  readonly id: string;
  /** The model name used in cache keys and reports. */
  readonly model: string;
  complete(req: CompletionRequest): Promise<CompletionResponse>;
  /** Multiple-choice scoring; providers that cannot return prompt log-probs leave it undefined. */
  loglikelihood?(reqs: LoglikelihoodRequest[]): Promise<LoglikelihoodResponse[]>;
  close?(): Promise<void>;
}
