// The single queue in front of a model, used by `alignlab serve` and the eval harness's local: provider.
//
// A model that decodes step by step (SteppableModel, e.g. src/model/lm.ts) gets continuous batching: waiting
// generate requests join the running batch between decode steps (up to maxBatch rows), each with its own sampling
// parameters, stop strings and seed, and leave as soon as they end. The loop yields to the event loop after every
// step, so the server keeps answering and new requests join within a step. Other model calls (scoring) run
// between steps, in turn.
// Any other model runs one call at a time: generate jobs that arrive while it is busy are grouped into the next
// call when their sampling parameters match. Either way concurrency from clients becomes batch size.
import { isSteppable, type DecodeRequest, type GenerateOptions, type Generation, type ServableModel, type StepBatch } from './serving.js';

export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

/** The queue was closed (the server is stopping). */
export class QueueClosedError extends Error {
  override name = 'QueueClosedError';
}

interface GenJob {
  kind: 'generate';
  /** What the step batch decodes (continuous batching). */
  req: DecodeRequest;
  prompt: string;
  opts: GenerateOptions;
  /** Jobs batch together only when their keys match. */
  key: string;
  onToken?: (text: string) => void;
  cancelled?: () => boolean;
  resolve: (g: Generation) => void;
  reject: (e: unknown) => void;
}

interface TaskJob {
  kind: 'task';
  run: () => Promise<unknown>;
  cancelled?: () => boolean;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

type Job = GenJob | TaskJob;

export interface BatchStats {
  /** Model calls made (generate batches + tasks; with continuous batching, tasks only). */
  calls: number;
  /** generate() calls (models without continuous batching). */
  batches: number;
  /** Generate requests started. */
  rows: number;
  /** Most rows decoded together (in one generate call, or one decode step). */
  maxBatchSeen: number;
  /** Decode steps (continuous batching) and the rows they advanced, summed: rowSteps / steps is the mean batch. */
  steps: number;
  rowSteps: number;
  /** Jobs dropped because their client went away while they waited. */
  dropped: number;
  /** Milliseconds the model was busy. */
  busyMs: number;
}

export interface BatchQueueOptions {
  /** Rows per generate call (default 8). */
  maxBatch?: number;
  /** Waiting jobs beyond this are refused with QueueFullError (default 1024). */
  maxQueue?: number;
}

/** The batching key. Seeded sampling batches only within its own request (`group`), so a seeded request
 * gives the same text whatever else happens to share its batch; greedy rows batch with anyone. */
export function batchKey(opts: GenerateOptions, group: string): string {
  const sampled = (opts.temperature ?? 0) > 0;
  const { maxNewTokens, temperature, topK, topP, stop, seed } = opts;
  return JSON.stringify([maxNewTokens, temperature ?? 0, topK ?? null, topP ?? null, stop ?? [], seed ?? null, sampled && seed !== undefined ? group : null]);
}

export class BatchQueue {
  readonly maxBatch: number;
  readonly maxQueue: number;
  readonly stats: BatchStats = { calls: 0, batches: 0, rows: 0, maxBatchSeen: 0, steps: 0, rowSteps: 0, dropped: 0, busyMs: 0 };
  readonly #queue: Job[] = [];
  #running = false;
  #closed = false;
  /** close({ cancel: true }): rows decoding now are dropped at the next step. */
  #cancelActive = false;
  /** Continuous batching: the running batch and the jobs decoding in it. */
  #batch: StepBatch | null = null;
  readonly #active = new Set<GenJob>();

  constructor(
    readonly model: ServableModel,
    opts: BatchQueueOptions = {},
  ) {
    this.maxBatch = opts.maxBatch ?? 8;
    this.maxQueue = opts.maxQueue ?? 1024;
    if (!Number.isInteger(this.maxBatch) || this.maxBatch < 1) throw new RangeError(`maxBatch must be an integer >= 1, got ${this.maxBatch}`);
  }

  /** Jobs waiting (not counting the call in progress). */
  get depth(): number {
    return this.#queue.length;
  }

  get busy(): boolean {
    return this.#running;
  }

  /** Generate requests decoding now (continuous batching). */
  get active(): number {
    return this.#active.size;
  }

  /** Room for `n` more jobs? Checked before a request enqueues any of its rows, so it is refused whole. */
  hasRoom(n: number): boolean {
    return this.#queue.length + n <= this.maxQueue;
  }

  generate(prompt: string, opts: GenerateOptions, group: string, onToken?: (text: string) => void, cancelled?: () => boolean): Promise<Generation> {
    return new Promise<Generation>((resolve, reject) => {
      this.#push({ kind: 'generate', req: { prompt, opts, onToken }, prompt, opts, key: batchKey(opts, group), onToken, cancelled, resolve, reject });
    });
  }

  /** Run any other model call (scoring) in turn with the generate batches. */
  run<T>(fn: () => Promise<T>, cancelled?: () => boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#push({ kind: 'task', run: fn, cancelled, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  #push(job: Job): void {
    if (this.#closed) {
      job.reject(new QueueClosedError('the server is shutting down'));
      return;
    }
    if (this.#queue.length >= this.maxQueue) {
      job.reject(new QueueFullError(`server queue is full (${this.maxQueue} waiting)`));
      return;
    }
    this.#queue.push(job);
    if (!this.#running) void (isSteppable(this.model) ? this.#drainSteps() : this.#drain());
  }

  /**
   * Stop taking work: later jobs are refused (QueueClosedError); jobs already taken, waiting or decoding, finish.
   * With `cancel` (also on a later call) they are dropped instead: waiting ones at once, decoding ones at the next
   * step. Resolves when the model is idle.
   */
  async close(opts: { cancel?: boolean } = {}): Promise<void> {
    this.#closed = true;
    if (opts.cancel) {
      this.#cancelActive = true;
      for (const j of this.#queue.splice(0)) j.reject(new QueueClosedError('cancelled: the server is shutting down'));
    }
    while (this.#running) await new Promise((r) => setTimeout(r, 5));
  }

  /** Continuous batching: admit, step, retire, yield; until nothing waits or decodes. */
  async #drainSteps(): Promise<void> {
    this.#running = true;
    const model = this.model as ServableModel & { openBatch(n: number): StepBatch };
    try {
      while (this.#queue.length > 0 || this.#active.size > 0) {
        this.#dropGone();
        // A waiting task (scoring) runs between steps, one per step, so neither side starves the other.
        const ti = this.#queue.findIndex((j) => j.kind === 'task');
        if (ti >= 0) {
          const [task] = this.#queue.splice(ti, 1) as [TaskJob];
          await this.#runTask(task);
        }
        const t0 = performance.now();
        const batch = (this.#batch ??= model.openBatch(this.maxBatch));
        try {
          while (this.#active.size < this.maxBatch) {
            const gi = this.#queue.findIndex((j) => j.kind === 'generate');
            if (gi < 0) break;
            const [job] = this.#queue.splice(gi, 1) as [GenJob];
            await this.#admit(batch, job);
          }
          if (this.#active.size > 0) {
            this.stats.steps++;
            this.stats.rowSteps += batch.size;
            this.stats.maxBatchSeen = Math.max(this.stats.maxBatchSeen, batch.size);
            await batch.step();
          }
        } catch (e) {
          // The engine failed mid-step: every row in the batch fails with it; the next request starts a new batch.
          for (const j of this.#active) j.reject(e);
          this.#active.clear();
          batch.dispose();
          this.#batch = null;
        } finally {
          this.stats.busyMs += performance.now() - t0;
        }
        // Let the event loop run: new requests arrive, streamed pieces go out, signals are handled.
        await new Promise<void>((r) => setImmediate(r));
      }
    } finally {
      this.#running = false;
    }
  }

  async #admit(batch: StepBatch, job: GenJob): Promise<void> {
    if (job.cancelled?.()) {
      this.stats.dropped++;
      job.reject(new Error('client went away'));
      return;
    }
    this.stats.rows++;
    this.#active.add(job);
    try {
      await batch.add(job.req, (g) => {
        this.#active.delete(job);
        job.resolve(g);
      });
    } catch (e) {
      // This request cannot run (e.g. too long for the context): it fails alone, the batch carries on.
      this.#active.delete(job);
      job.reject(e);
    }
  }

  /** Rows whose client went away leave the batch; waiting jobs of gone clients are dropped. */
  #dropGone(): void {
    for (const j of this.#active) {
      if (!this.#cancelActive && !j.cancelled?.()) continue;
      this.#batch?.cancel(j.req);
      this.#active.delete(j);
      this.stats.dropped++;
      j.reject(this.#cancelActive ? new QueueClosedError('cancelled: the server is shutting down') : new Error('client went away'));
    }
    for (let i = 0; i < this.#queue.length; ) {
      const j = this.#queue[i]!;
      if (j.cancelled?.()) {
        this.#queue.splice(i, 1);
        this.stats.dropped++;
        j.reject(new Error('client went away'));
      } else i++;
    }
  }

  async #runTask(job: TaskJob): Promise<void> {
    if (job.cancelled?.()) {
      this.stats.dropped++;
      return job.reject(new Error('client went away'));
    }
    const t0 = performance.now();
    this.stats.calls++;
    try {
      job.resolve(await job.run());
    } catch (e) {
      job.reject(e);
    } finally {
      this.stats.busyMs += performance.now() - t0;
    }
  }

  /** Take the next call's jobs: the head, plus (for generate) later jobs with the same key. */
  #next(): Job[] {
    const head = this.#queue.shift()!;
    if (head.kind === 'task') return [head];
    const batch: Job[] = [head];
    for (let i = 0; i < this.#queue.length && batch.length < this.maxBatch; ) {
      const j = this.#queue[i]!;
      if (j.kind === 'generate' && j.key === head.key) {
        batch.push(j);
        this.#queue.splice(i, 1);
      } else i++;
    }
    return batch;
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        const jobs = this.#next().filter((j) => {
          if (!j.cancelled?.()) return true;
          this.stats.dropped++;
          j.reject(new Error('client went away'));
          return false;
        });
        if (jobs.length === 0) continue;
        const t0 = performance.now();
        this.stats.calls++;
        try {
          if (jobs[0]!.kind === 'task') {
            const job = jobs[0] as TaskJob;
            job.resolve(await job.run());
          } else {
            await this.#generate(jobs as GenJob[]);
          }
        } catch (e) {
          for (const j of jobs) j.reject(e);
        } finally {
          this.stats.busyMs += performance.now() - t0;
        }
      }
    } finally {
      this.#running = false;
    }
  }

  async #generate(jobs: GenJob[]): Promise<void> {
    this.stats.batches++;
    this.stats.rows += jobs.length;
    this.stats.maxBatchSeen = Math.max(this.stats.maxBatchSeen, jobs.length);
    const out = await this.model.generate(
      jobs.map((j) => j.prompt),
      jobs[0]!.opts,
      (row, text) => jobs[row]?.onToken?.(text),
    );
    if (out.length !== jobs.length) throw new Error(`model.generate returned ${out.length} rows for ${jobs.length} prompts`);
    jobs.forEach((j, i) => j.resolve(out[i]!));
  }
}
