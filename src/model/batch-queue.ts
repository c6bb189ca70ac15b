// The single queue in front of a model (`alignlab serve` and the eval harness's local: provider): the model runs one call at a time (one generate batch, or one scoring call),
// and generate jobs that arrive while it is busy are grouped into the next batch when their sampling
// parameters match. Concurrency from clients thus becomes batch size instead of contention.
import type { GenerateOptions, Generation, ServableModel } from './serving.js';

export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

interface GenJob {
  kind: 'generate';
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
  /** Model calls made (generate batches + tasks). */
  calls: number;
  batches: number;
  rows: number;
  maxBatchSeen: number;
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
  readonly stats: BatchStats = { calls: 0, batches: 0, rows: 0, maxBatchSeen: 0, dropped: 0, busyMs: 0 };
  readonly #queue: Job[] = [];
  #running = false;

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

  /** Room for `n` more jobs? Checked before a request enqueues any of its rows, so it is refused whole. */
  hasRoom(n: number): boolean {
    return this.#queue.length + n <= this.maxQueue;
  }

  generate(prompt: string, opts: GenerateOptions, group: string, onToken?: (text: string) => void, cancelled?: () => boolean): Promise<Generation> {
    return new Promise<Generation>((resolve, reject) => {
      this.#push({ kind: 'generate', prompt, opts, key: batchKey(opts, group), onToken, cancelled, resolve, reject });
    });
  }

  /** Run any other model call (scoring) in turn with the generate batches. */
  run<T>(fn: () => Promise<T>, cancelled?: () => boolean): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#push({ kind: 'task', run: fn, cancelled, resolve: resolve as (v: unknown) => void, reject });
    });
  }

  #push(job: Job): void {
    if (this.#queue.length >= this.maxQueue) {
      job.reject(new QueueFullError(`server queue is full (${this.maxQueue} waiting)`));
      return;
    }
    this.#queue.push(job);
    if (!this.#running) void this.#drain();
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
