// Provider ids are promptfoo-style strings a user can type: `<prefix>:<target>`, e.g.
// `local:runs/dpo-1/final`, `gguf:model.gguf`, `openai:gpt-4o-mini`, `openai-compat:http://127.0.0.1:8000/v1#qwen2`.
// Each prefix maps to a factory registered here, so the runner never imports a provider directly and
// new kinds plug in without touching it.
import type { Provider } from './providers/types.js';

export interface ProviderOptions {
  /** Name shown in reports (default: the id). */
  label?: string;
  /** Requests in flight at once for this provider (the runner enforces it). */
  concurrency?: number;
  /** Provider-specific settings from the eval config (threads, timeouts, api_key_env, …). */
  config?: Record<string, unknown>;
}

/** Builds a provider for `target` (the id without its prefix); `id` is the whole id as typed. */
export type ProviderFactory = (target: string, id: string, options: ProviderOptions) => Provider | Promise<Provider>;

const factories = new Map<string, ProviderFactory>();

export function registerProvider(prefix: string, factory: ProviderFactory): void {
  if (!/^[a-z][a-z0-9-]*$/.test(prefix)) throw new Error(`provider prefix "${prefix}" must be lower-case letters, digits or "-"`);
  factories.set(prefix, factory);
}

export function unregisterProvider(prefix: string): void {
  factories.delete(prefix);
}

export function registeredPrefixes(): string[] {
  return [...factories.keys()].sort();
}

/** Splits "prefix:target" at the first colon (the target may contain colons, e.g. a URL). */
export function splitProviderId(id: string): { prefix: string; target: string } {
  const i = id.indexOf(':');
  if (i <= 0) throw new Error(`provider id "${id}" must look like "<kind>:<target>" (kinds: ${registeredPrefixes().join(', ') || 'none registered'})`);
  return { prefix: id.slice(0, i), target: id.slice(i + 1) };
}

export async function createProvider(id: string, options: ProviderOptions = {}): Promise<Provider> {
  const { prefix, target } = splitProviderId(id);
  const f = factories.get(prefix);
  if (!f) throw new Error(`unknown provider kind "${prefix}" in "${id}" (registered: ${registeredPrefixes().join(', ') || 'none'})`);
  return f(target, id, options);
}

// Built-in kinds, imported lazily so that an evaluation of an HTTP model never loads the tensor engine or
// node-llama-cpp. `config` from the eval YAML goes to the provider's options as written.
const openai: ProviderFactory = async (_target, id, o) => {
  const { createOpenAIProvider } = await import('./providers/openai.js');
  return createOpenAIProvider(id, { ...(o.config ?? {}), ...(o.concurrency !== undefined ? { concurrency: o.concurrency } : {}) });
};
registerProvider('openai', openai);
registerProvider('openai-compat', openai);
registerProvider('local', async (target, id, o) => {
  const { createLocalProvider } = await import('./providers/local.js');
  return createLocalProvider(target, id, o.config ?? {});
});
registerProvider('gguf', async (target, id, o) => {
  const { createGgufProvider } = await import('./providers/gguf.js');
  return createGgufProvider(target, id, o.config ?? {});
});
