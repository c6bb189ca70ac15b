// Workaround (jax-js 0.1.25): on the single-threaded wasm path, every kernel dispatch runs
// `new WebAssembly.Instance(module, { env: { memory } })` — a fresh instance per call, ~5 µs each, about 13% of a
// batch-1 decode step of the 10.8M bench model (200+ dispatches per token). Its worker-pool path already keeps
// instances in an LRU. A jax-js kernel module is stateless (it imports only the memory and exports only `kernel`;
// no globals, tables or data segments), so an instance can be reused for every call on the same memory.
// Minimal case: bench/wasm-instances.ts. Scope: only modules of exactly that shape are cached; any other
// `new WebAssembly.Instance` in the process behaves as before.

type Imports = Record<string, Record<string, unknown>> | undefined;

const isKernelModule = new WeakMap<WebAssembly.Module, boolean>();
const cache = new WeakMap<WebAssembly.Module, WeakMap<WebAssembly.Memory, WebAssembly.Instance>>();

function kernelShaped(module: WebAssembly.Module): boolean {
  let ok = isKernelModule.get(module);
  if (ok === undefined) {
    const imports = WebAssembly.Module.imports(module), exports = WebAssembly.Module.exports(module);
    ok = imports.length === 1 && imports[0]!.module === 'env' && imports[0]!.name === 'memory' && imports[0]!.kind === 'memory' &&
      exports.length === 1 && exports[0]!.name === 'kernel' && exports[0]!.kind === 'function';
    isKernelModule.set(module, ok);
  }
  return ok;
}

let installed = false;

/** Replace WebAssembly.Instance with a constructor that reuses instances of jax-js kernel modules (idempotent). */
export function cacheKernelInstances(): void {
  if (installed || typeof WebAssembly === 'undefined') return;
  installed = true;
  const Native = WebAssembly.Instance;
  WebAssembly.Instance = new Proxy(Native, {
    construct(target, args: [WebAssembly.Module, Imports?], newTarget) {
      const [module, imports] = args;
      const memory = imports?.env?.memory;
      if (!(module instanceof WebAssembly.Module) || !(memory instanceof WebAssembly.Memory) || Object.keys(imports!).length !== 1 || !kernelShaped(module))
        return Reflect.construct(target, args, newTarget) as object;
      let byMemory = cache.get(module);
      if (!byMemory) cache.set(module, (byMemory = new WeakMap()));
      let instance = byMemory.get(memory);
      if (!instance) byMemory.set(memory, (instance = Reflect.construct(target, args, newTarget) as WebAssembly.Instance));
      return instance;
    },
  });
}

/** Whether the cache is on (for benches and tests). */
export function kernelInstancesCached(): boolean {
  return installed;
}
