// Multi-threaded wasm for jax-js in Node: a browser-style `Worker` for jax-js's wasm thread pool.
//
// Why: jax-js 0.1.25 splits wasm kernels over a pool of Web Workers sharing one WebAssembly.Memory, but only
// when `typeof Worker !== 'undefined'`; Node has no global Worker, so there it runs single-threaded.
// What jax-js does (dist/backend-*.js, `WasmWorkerPool`, `WasmBackend`, `createWorkerPool`):
//   - when @jax-js/jax is first *imported*, `new WasmBackend()` checks SharedArrayBuffer + Worker; if both exist
//     it allocates a shared memory and a pool of `navigator.hardwareConcurrency || 4` workers. Kernels compiled
//     later import a shared memory iff `Worker` exists at compile time, so a shim installed after the import
//     makes every new kernel fail with `LinkError: memory import 0 has no maximum` (checkThreads names this).
//   - on the first async dispatch the pool creates its workers, `new Worker(URL.createObjectURL(blob))`, posts
//     `{type:'init', memory}` to each and waits for one reply per worker. Each kernel is then split into
//     n = min(workers, ceil(size / 512)) chunks, chunk i posted to worker i as
//     `{type:'kernel', kernelHash, module, ptrs, begin, end}`, one `{type:'done', ok}` reply per message;
//     dispatches are serialised through one promise queue. Routines (sort, scatter...) go to worker 0.
//   - the worker script is plain JS using `self.onmessage` and `postMessage`.
//
// Two shims (both verified bit-identical to single-threaded jax-js in test/engine/threads.test.ts):
//   - fast (default): pool slot 0 is the main thread itself (jax-js's own worker script, run from a microtask
//     once jax-js has posted the other chunks); slots 1..n-1 are worker_threads that get their chunk as
//     integers in a SharedArrayBuffer (kernel id, pointers, begin, end) and spin briefly before sleeping in
//     Atomics.wait. After its own chunk the main thread waits for theirs synchronously, so a split kernel costs
//     ~1 us of synchronisation instead of a postMessage round trip (~50-100 us here, which made most
//     elementwise kernels slower when split). Compiled modules go once per kernel per thread through a
//     MessagePort the worker reads synchronously. With threads = 2: main + 1 worker_thread, for 2 cores.
//   - messages (`fast: false`): the browser contract, literally: each slot a worker_thread running jax-js's
//     worker script, talking by postMessage. Slower; kept as the reference the fast one is checked against.
// Exit: worker_threads are unref'd whenever no request to them is unanswered, so the process exits normally
// and never while a computation waits on a worker.
//
// Caveat of jax-js's pool (not of the shim): with the pool, execution is asynchronous, and reading the loss
// waits only for the kernels the loss needs. A *synchronous* read (`dataSync()`, `item()`, `js()`, a jit
// trace that inlines a captured scalar) of an array whose kernels are still queued throws
// `cannot read synchronously from a slot with async work`. Read with `await x.data()` /
// `await blockUntilReady(tree)`. For the same reason a live-buffer count taken right after a step includes
// the buffers queued kernels still hold (they are released when the queue drains; not a leak).
//
// Use: import this module before anything imports '@jax-js/jax'. Importing it reads ALIGNLAB_THREADS
// (unset, '', '0' or '1' = single-threaded, 'auto' = all cores, N = N threads) and installs the shim if > 1.
// Or call installWorkerShim({ threads }) yourself before the first (dynamic) import of @jax-js/jax.

import { MessageChannel, Worker as NodeWorker, receiveMessageOnPort, type MessagePort, type TransferListItem } from 'node:worker_threads';
import { resolveObjectURL } from 'node:buffer';
import { availableParallelism } from 'node:os';

export interface ThreadsOptions {
  /** Pool size = chunks per big kernel. Default: the number of cores. 1 = leave jax-js single-threaded. */
  threads?: number;
  /** Main thread + shared-memory worker_threads (default true), or plain postMessage workers (false). */
  fast?: boolean;
}

export interface ThreadsInfo {
  /** Pool size (1 = no shim, single-threaded jax-js). */
  threads: number;
  fast: boolean;
  /** Pool slots jax-js has created so far, main-thread slot included (0 until the first async kernel). */
  workersStarted: number;
}

type MessageHandler = ((e: { data: unknown }) => void) | null;
type ErrorHandler = ((e: { message: string; error?: unknown }) => void) | null;

interface KernelMsg {
  type: 'kernel';
  kernelHash: string;
  module: WebAssembly.Module;
  ptrs: number[];
  begin: number;
  end: number;
}

let state: ThreadsInfo = { threads: 1, fast: true, workersStarted: 0 };
const liveWorkers = new Set<{ terminate(): Promise<void> }>();

/** The source jax-js put behind a blob: URL. */
function blobFor(url: string | URL): Blob {
  const href = String(url);
  const blob = href.startsWith('blob:') ? resolveObjectURL(href) : undefined;
  if (!blob) throw new Error(`Worker shim: cannot resolve worker script URL ${href} (only blob: URLs are supported)`);
  return blob as unknown as Blob;
}

// ---- messages: the browser contract on node:worker_threads ---------------------------------------------

// Runs in each worker_thread: the browser globals jax-js's script uses, then the script. Messages that
// arrive while the script text is still being read are queued, as a browser would.
const MESSAGE_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
globalThis.self = globalThis;
globalThis.postMessage = (m) => parentPort.postMessage(m);
let ready = false;
const queued = [];
const deliver = (data) => { if (typeof globalThis.onmessage === 'function') globalThis.onmessage({ data }); };
parentPort.on('message', (data) => { if (ready) deliver(data); else queued.push(data); });
workerData.blob.text().then((src) => {
  (0, eval)(src);
  ready = true;
  for (const d of queued.splice(0)) deliver(d);
});
`;

/** A browser `Worker` on a worker_thread, ref'd only while a request is unanswered (one reply per message). */
class MessageWorker {
  onmessage: MessageHandler = null;
  onerror: ErrorHandler = null;
  #w: NodeWorker;
  #pending = 0;
  #dead = false;

  constructor(url: string | URL) {
    this.#w = new NodeWorker(MESSAGE_WORKER, { eval: true, workerData: { blob: blobFor(url) } });
    this.#w.unref();
    this.#w.on('message', (data: unknown) => {
      if (--this.#pending === 0) this.#w.unref();
      this.onmessage?.({ data });
    });
    this.#w.on('error', (err: Error) => this.#fail(`worker thread error: ${err.message}`, err));
    this.#w.on('exit', (code) => this.#fail(`worker thread exited (code ${code})`));
    liveWorkers.add(this);
    state.workersStarted++;
  }

  postMessage(data: unknown): void {
    if (this.#dead) throw new Error('Worker shim: postMessage to a terminated worker');
    if (this.#pending++ === 0) this.#w.ref();
    this.#w.postMessage(data);
  }

  /** A dead thread must not leave jax-js awaiting a reply forever: answer the open request with an error. */
  #fail(message: string, error?: unknown): void {
    if (this.#dead) return;
    this.#dead = true;
    liveWorkers.delete(this);
    const open = this.#pending;
    this.#pending = 0;
    this.onerror?.({ message, error });
    if (open > 0) this.onmessage?.({ data: { type: 'done', ok: false, error: message } });
  }

  async terminate(): Promise<void> {
    this.#dead = true;
    liveWorkers.delete(this);
    await this.#w.terminate();
  }
}

// ---- fast: main thread + shared-memory worker_threads ----------------------------------------------------

/**
 * Pool slot 0 on the main thread: jax-js's worker script evaluated with its own `self`/`postMessage`.
 * A request runs from a microtask, i.e. after jax-js has posted the kernel's other chunks, so the main thread
 * computes its chunk while the threads compute theirs; then it collects their results (drainThreads).
 */
class MainThreadWorker {
  onmessage: MessageHandler = null;
  onerror: ErrorHandler = null;
  #self: { onmessage?: (e: { data: unknown }) => void } = {};
  #loaded: Promise<void>;
  #dead = false;

  constructor(url: string | URL) {
    const reply = (data: unknown) => this.onmessage?.({ data });
    this.#loaded = blobFor(url)
      .text()
      .then((src) => {
        new Function('self', 'postMessage', src)(this.#self, reply);
      });
    liveWorkers.add(this);
    state.workersStarted++;
  }

  postMessage(data: unknown): void {
    if (this.#dead) throw new Error('Worker shim: postMessage to a terminated worker');
    this.#loaded.then(
      () => {
        this.#self.onmessage?.({ data });
        drainThreads();
      },
      (err: unknown) => this.onerror?.({ message: `main-thread worker failed to load: ${String(err)}`, error: err }),
    );
  }

  /** Run one request now and return its reply (for requests a shared-memory thread cannot take). */
  runNow(data: unknown): unknown {
    let out: unknown = { type: 'done', ok: false, error: 'Worker shim: main-thread worker not loaded yet' };
    const saved = this.onmessage;
    this.onmessage = (e) => (out = e.data);
    try {
      this.#self.onmessage?.({ data });
    } finally {
      this.onmessage = saved;
    }
    return out;
  }

  terminate(): Promise<void> {
    this.#dead = true;
    liveWorkers.delete(this);
    return Promise.resolve();
  }
}

// Control block of one shared-memory thread (Int32 words; pointers read as Uint32).
const C_SEQ = 0, C_DONE = 1, C_STATUS = 2, C_ID = 3, C_BEGIN = 4, C_END = 5, C_NPTRS = 6, C_PTRS = 8;
const C_MAXPTRS = 248;
/** How long a thread spins for its next job, or the main thread for a result, before sleeping (ms). */
const SPIN_MS = 0.2;

const SHARED_WORKER = `
const { parentPort, receiveMessageOnPort } = require('node:worker_threads');
parentPort.once('message', ({ memory, ctrl, port }) => {
  const c = new Int32Array(ctrl), u = new Uint32Array(ctrl), kernels = new Map();
  parentPort.postMessage('ready');
  let seq = 0;
  for (;;) {
    for (let i = 0, t = 0; Atomics.load(c, ${C_SEQ}) === seq; i++) {
      if ((i & 1023) !== 1023) continue;
      if (t === 0) t = performance.now();
      else if (performance.now() - t > ${SPIN_MS}) Atomics.wait(c, ${C_SEQ}, seq);
    }
    seq = Atomics.load(c, ${C_SEQ});
    if (seq < 0) return;
    let status = 0;
    try {
      const id = c[${C_ID}];
      while (!kernels.has(id)) {
        const m = receiveMessageOnPort(port);
        if (!m) throw new Error('kernel ' + id + ' was never sent to this thread');
        kernels.set(m.message.id, new WebAssembly.Instance(m.message.module, { env: { memory } }).exports.kernel);
      }
      const n = c[${C_NPTRS}], args = new Array(n + 2);
      for (let i = 0; i < n; i++) args[i] = u[${C_PTRS} + i];
      args[n] = c[${C_BEGIN}];
      args[n + 1] = c[${C_END}];
      kernels.get(id)(...args);
    } catch (e) {
      status = 1;
      port.postMessage(String((e && e.stack) || e));
    }
    c[${C_STATUS}] = status;
    Atomics.store(c, ${C_DONE}, seq);
    Atomics.notify(c, ${C_DONE});
  }
});
`;

let mainThreadWorker: MainThreadWorker | null = null;
/** Threads with a job whose result jax-js has not been given yet. */
const outstanding = new Set<SharedMemoryWorker>();
/** kernelHash → small id, shared by all threads (each gets a module once). */
const kernelIds = new Map<string, number>();

function drainThreads(): void {
  for (const w of outstanding) w.finish();
}

/** Wait until c[i] === want: spin for SPIN_MS, then sleep in Atomics.wait (10 ms slices, to notice a dead thread). */
function waitFor(c: Int32Array, i: number, want: number, old: number, dead: () => boolean): boolean {
  for (let k = 0, t = 0; Atomics.load(c, i) !== want; k++) {
    if ((k & 1023) !== 1023) continue;
    if (t === 0) t = performance.now();
    else if (performance.now() - t > SPIN_MS) Atomics.wait(c, i, old, 10);
    if (dead()) return false;
  }
  return true;
}

/** Pool slots 1..n-1: a worker_thread fed through a SharedArrayBuffer control block. */
class SharedMemoryWorker {
  onmessage: MessageHandler = null;
  onerror: ErrorHandler = null;
  #w: NodeWorker;
  #ctrl = new SharedArrayBuffer((C_PTRS + C_MAXPTRS) * 4);
  #c = new Int32Array(this.#ctrl);
  #u = new Uint32Array(this.#ctrl);
  #port: MessagePort;
  /** The thread's end of the module channel, handed over with jax-js's init message. */
  #threadPort: MessagePort | null;
  #sent = new Set<number>();
  #seq = 0;
  #ready = false;
  #dead = false;

  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.#port = port1;
    this.#threadPort = port2;
    this.#w = new NodeWorker(SHARED_WORKER, { eval: true }); // ref'd until it answers init
    this.#w.on('message', () => {
      this.#ready = true;
      this.#w.unref();
      this.onmessage?.({ data: { type: 'ready' } });
    });
    this.#w.on('error', (err: Error) => this.#die(`worker thread error: ${err.message}`, err));
    this.#w.on('exit', (code) => this.#die(`worker thread exited (code ${code})`));
    liveWorkers.add(this);
    state.workersStarted++;
  }

  postMessage(data: unknown): void {
    if (this.#dead) throw new Error('Worker shim: postMessage to a terminated worker');
    const msg = data as { type: string; memory?: WebAssembly.Memory };
    if (msg.type === 'init' && this.#threadPort) {
      const port = this.#threadPort;
      this.#threadPort = null;
      this.#w.postMessage({ memory: msg.memory, ctrl: this.#ctrl, port }, [port as unknown as TransferListItem]);
      return;
    }
    const k = data as KernelMsg;
    if (msg.type !== 'kernel' || !this.#ready || k.ptrs.length > C_MAXPTRS || !mainThreadWorker) {
      // Not sent by jax-js 0.1.25 (routines go to slot 0): run it on the main thread rather than fail.
      const reply = mainThreadWorker?.runNow(data) ?? { type: 'done', ok: false, error: 'Worker shim: unexpected message' };
      queueMicrotask(() => this.onmessage?.({ data: reply }));
      return;
    }
    if (outstanding.has(this)) this.finish(); // never overwrite a job in flight
    let id = kernelIds.get(k.kernelHash);
    if (id === undefined) kernelIds.set(k.kernelHash, (id = kernelIds.size));
    if (!this.#sent.has(id)) {
      this.#port.postMessage({ id, module: k.module }); // queued before the job below becomes visible
      this.#sent.add(id);
    }
    const c = this.#c;
    c[C_ID] = id;
    c[C_BEGIN] = k.begin;
    c[C_END] = k.end;
    c[C_NPTRS] = k.ptrs.length;
    for (let i = 0; i < k.ptrs.length; i++) this.#u[C_PTRS + i] = k.ptrs[i]!;
    Atomics.store(c, C_SEQ, ++this.#seq);
    Atomics.notify(c, C_SEQ);
    outstanding.add(this);
    queueMicrotask(drainThreads); // the main-thread slot normally collects this first; safety net
  }

  /** Wait for the job in flight and answer jax-js (synchronously: the main thread has nothing else to run). */
  finish(): void {
    if (!outstanding.delete(this)) return;
    const c = this.#c;
    let reply: object = { type: 'done', ok: true };
    if (!waitFor(c, C_DONE, this.#seq, this.#seq - 1, () => this.#dead)) reply = { type: 'done', ok: false, error: 'worker thread died' };
    else if (c[C_STATUS] !== 0) reply = { type: 'done', ok: false, error: String(receiveMessageOnPort(this.#port)?.message ?? 'unknown error in worker thread') };
    this.onmessage?.({ data: reply });
  }

  #die(message: string, error?: unknown): void {
    if (this.#dead) return;
    this.#dead = true;
    liveWorkers.delete(this);
    this.onerror?.({ message, error });
    if (outstanding.delete(this)) this.onmessage?.({ data: { type: 'done', ok: false, error: message } });
  }

  async terminate(): Promise<void> {
    this.#dead = true;
    liveWorkers.delete(this);
    Atomics.store(this.#c, C_SEQ, -1);
    Atomics.notify(this.#c, C_SEQ);
    await this.#w.terminate();
  }
}

// ---- public API ---------------------------------------------------------------------------------------

/** ALIGNLAB_THREADS → pool size: unset/''/0/1 → 1 (off), 'auto' → cores, N → N. */
export function threadsFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const raw = (env.ALIGNLAB_THREADS ?? '').trim();
  if (raw === '' || raw === '0') return 1;
  if (raw === 'auto') return availableParallelism();
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`ALIGNLAB_THREADS must be 'auto' or an integer 1..256, got "${raw}"`);
  return n;
}

/**
 * Install the `Worker` shim and size jax-js's wasm pool. Must run before @jax-js/jax is first imported.
 * threads <= 1 installs nothing. Calling it again with the same options is a no-op; with different ones it
 * throws, because the pool jax-js built at import cannot be resized.
 */
export function installWorkerShim(opts: ThreadsOptions = {}): ThreadsInfo {
  const threads = opts.threads ?? availableParallelism();
  const fast = opts.fast ?? true;
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`installWorkerShim: threads must be an integer >= 1, got ${threads}`);
  if (state.threads > 1) {
    if (state.threads === threads && state.fast === fast) return threadsInfo();
    throw new Error(`installWorkerShim: already installed with ${state.threads} threads (fast: ${state.fast})`);
  }
  if (threads === 1) return threadsInfo();
  const g = globalThis as Record<string, unknown>;
  if (typeof g.Worker !== 'undefined') throw new Error('installWorkerShim: a global Worker already exists');
  if (typeof SharedArrayBuffer === 'undefined') throw new Error('installWorkerShim: SharedArrayBuffer is not available');

  let made = 0; // jax-js creates the pool's workers in one loop, slot 0 first
  g.Worker = function Worker(url: string | URL) {
    const slot = made++;
    if (!fast) return new MessageWorker(url);
    if (slot > 0) return new SharedMemoryWorker();
    mainThreadWorker = new MainThreadWorker(url);
    return mainThreadWorker;
  };
  // jax-js sizes the pool from navigator.hardwareConcurrency. Node 20 has no navigator; on Node 21+ keep the
  // real one as the prototype and shadow just this property.
  const nav = Object.create((g.navigator ?? Object.prototype) as object, { hardwareConcurrency: { value: threads, enumerable: true } }) as object;
  Object.defineProperty(g, 'navigator', { value: nav, configurable: true, writable: true });
  state = { threads, fast, workersStarted: 0 };
  return threadsInfo();
}

export function threadsInfo(): ThreadsInfo {
  return { ...state };
}

const LATE =
  'the jax-js Worker shim was installed after @jax-js/jax had been imported, so jax-js built a single-threaded ' +
  'backend: import src/engine/threads.js (or call installWorkerShim) before anything imports @jax-js/jax';

/**
 * Check that jax-js really runs on the pool: one small wasm kernel must start the pool and give the right
 * answer. Throws a clear error if the shim came too late. No-op when single-threaded.
 */
export async function checkThreads(): Promise<ThreadsInfo> {
  if (state.threads <= 1) return threadsInfo();
  const { numpy: np } = await import('@jax-js/jax');
  const n = 4096;
  let got: ArrayLike<number>;
  try {
    got = await np.array(Float32Array.from({ length: n }, (_, i) => i), { device: 'wasm' }).mul(2).data();
  } catch (err) {
    if (err instanceof WebAssembly.LinkError || /memory import/.test(String(err))) throw new Error(`${LATE} (${String(err)})`);
    throw err;
  }
  if (state.workersStarted === 0) throw new Error(LATE);
  for (let i = 0; i < n; i++) if (got[i] !== 2 * i) throw new Error(`threads: wrong result from the wasm pool at ${i}: ${got[i]} != ${2 * i}`);
  return threadsInfo();
}

/** Stop the worker threads (not needed for a normal exit: idle threads do not hold the process). */
export async function shutdownWorkers(): Promise<void> {
  await Promise.all([...liveWorkers].map((w) => w.terminate()));
}

// Importing this module is the switch (see the header): the engine imports it before @jax-js/jax.
installWorkerShim({ threads: threadsFromEnv() });
