// The evaluation runner: every provider answers every sample of every task (through the response cache,
// under a per-provider concurrency limit), then a reference model and a judge add perplexity, grades and
// pairwise battles, then everything is scored and aggregated into per-task tables, axes and ratings.
// Nothing here is specific to a provider kind: providers come from the registry by id.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { openStore, type DB } from '../store/db.js';
import { failEval, recordEvalResult, startEval, updateEvalProgress, type EvalScore } from '../store/evals.js';
import { computeAxes, type AxisSample } from './axes.js';
import { ResponseCache } from './cache.js';
import { countOutcomes, gradeAnswer, judgePair, JUDGE_DEFAULTS, type PairOutcome } from './judge.js';
import { METRIC_DEFAULTS, METRICS, multipleChoice, scoreGeneration } from './metrics/index.js';
import { bootstrapMean } from '../stats/index.js';
import type { CompletionRequest, CompletionResponse, LoglikelihoodRequest, LoglikelihoodResponse, Provider } from './providers/types.js';
import { lengthControlledWithCI, RATING_DEFAULTS, ratingsWithCI, winRateMatrix, type Battle } from './ratings.js';
import type { EvalResult, PairwiseResult, SampleRecord, TaskResult } from './results.js';
import { createProvider } from './registry.js';
import { loadTask, promptText, readYamlConfig, type Sample, type Task } from './tasks/index.js';

// ------------------------------------------------------------------------------------------ config

const ProviderRefSchema = z.union([
  z.string().min(3),
  z
    .object({
      id: z.string().min(3),
      label: z.string().min(1).optional(),
      concurrency: z.number().int().positive().optional(),
      config: z.record(z.string(), z.unknown()).optional(),
    })
    .strict(),
]);
export type ProviderRef = z.output<typeof ProviderRefSchema>;

export const EvalConfigSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.-]+$/).default('eval'),
    /** Models under evaluation: provider ids, or {id, label, concurrency, config}. */
    providers: z.array(ProviderRefSchema).min(1),
    /** Task files, relative to the config file. */
    tasks: z.array(z.string().min(1)).min(1),
    judge: z
      .object({
        provider: ProviderRefSchema,
        /** Position-swapped pairwise battles between every two models (ratings, win rates). */
        pairwise: z.boolean().default(true),
        /** Single-answer coherence grade 1-10 (feeds judge_score and response coherence). */
        grade: z.boolean().default(true),
        /** Tasks for pairwise battles (default: every generation and summarization task). */
        tasks: z.array(z.string()).optional(),
        /** Model label the length-controlled win rate compares against (default: the first provider). */
        baseline: z.string().optional(),
      })
      .strict()
      .optional(),
    /** Reference model for perplexity (a provider with loglikelihood). */
    reference: ProviderRefSchema.optional(),
    /** Default requests in flight per provider. */
    concurrency: z.number().int().positive().default(4),
    /** Evaluate only the first N rows of every task. */
    limit: z.number().int().positive().optional(),
    seed: z.number().int().default(1234),
    /** Bootstrap resamples for every CI (0 = no CIs). */
    bootstrap: z.number().int().min(0).default(1000),
    ppl_max: z.number().gt(1).default(METRIC_DEFAULTS.ppl_max),
    repetition_n: z.number().int().min(1).default(METRIC_DEFAULTS.repetition_n),
    /** Output folder, relative to the config file (default runs/eval-<name> under the working directory). */
    out: z.string().optional(),
  })
  .strict();
export type EvalConfig = z.output<typeof EvalConfigSchema>;

export function loadEvalConfig(file: string): EvalConfig {
  return readYamlConfig(file, EvalConfigSchema);
}

// ------------------------------------------------------------------------------------------ results

// The result shapes live in results.ts (types only, so report/ can render them without this module).
export type { EvalResult, MetricSummary, PairwiseResult, SampleRecord, TaskResult } from './results.js';

// ------------------------------------------------------------------------------------------ plumbing

/** A counting semaphore: at most `limit` provider calls in flight. */
export class Limiter {
  private active = 0;
  private readonly queue: (() => void)[] = [];
  constructor(readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((r) => this.queue.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.queue.shift()?.();
    }
  }
}

/** What is in flight: how many provider calls, and how long the oldest has waited. */
export interface InFlight {
  n: number;
  oldestMs: number;
}

/**
 * Progress line: done/total, rate, ETA; printed at most every `everyMs` and once at the end. While started,
 * a heartbeat prints the line again after `heartbeatMs` without progress, with what is in flight
 * (`· waiting on 2 requests, oldest 31s`), so a hung request never looks like a hung program.
 */
export class Progress {
  private done = 0;
  private cached = 0;
  private last = 0;
  private timer?: ReturnType<typeof setInterval>;
  private readonly start = Date.now();
  constructor(
    private readonly phase: string,
    private readonly total: number,
    private readonly log: (line: string) => void,
    private readonly everyMs = 1000,
    private readonly heartbeat: { everyMs?: number; inFlight?: () => InFlight } = {},
  ) {}
  get counts(): { phase: string; done: number; total: number } {
    return { phase: this.phase, done: this.done, total: this.total };
  }
  tick(cached: boolean): void {
    this.done++;
    if (cached) this.cached++;
    const now = Date.now();
    if (this.done === this.total || now - this.last >= this.everyMs) {
      this.last = now;
      this.log(this.line(now));
    }
    if (this.done === this.total) this.stop();
  }
  line(now = Date.now()): string {
    const s = Math.max(1e-3, (now - this.start) / 1000);
    const rate = this.done / s;
    const eta = rate > 0 ? (this.total - this.done) / rate : Infinity;
    const pct = this.total ? Math.floor((100 * this.done) / this.total) : 100;
    const etaStr = this.done === this.total ? `done in ${s.toFixed(1)}s` : `ETA ${Number.isFinite(eta) ? eta.toFixed(0) + 's' : '?'}`;
    return `[${this.phase}] ${this.done}/${this.total} (${pct}%) · ${rate.toFixed(1)}/s · ${etaStr} · ${this.cached} cached`;
  }
  /** Starts the heartbeat (unref'd: it never keeps the process alive). */
  begin(): this {
    const every = this.heartbeat.everyMs ?? 5000;
    this.last = Date.now();
    if (this.total > 0 && !this.timer) {
      this.timer = setInterval(() => this.beat(), every);
      this.timer.unref();
    }
    return this;
  }
  private beat(now = Date.now()): void {
    if (this.done >= this.total || now - this.last < (this.heartbeat.everyMs ?? 5000)) return;
    this.last = now;
    const w = this.heartbeat.inFlight?.();
    const waiting = w && w.n > 0 ? ` · waiting on ${w.n} request${w.n === 1 ? '' : 's'}, oldest ${(w.oldestMs / 1000).toFixed(0)}s` : '';
    this.log(this.line(now) + waiting);
  }
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

interface Handle {
  label: string;
  provider: Provider;
  limiter: Limiter;
}

/** A unit of provider work: resolves with its value and whether every call it made was a cache hit. */
type Job<T> = () => Promise<{ value: T; cached: boolean }>;

/** Runs jobs concurrently; after the first failure no new provider call starts, in-flight ones finish (and are cached), then the error is thrown. */
class Jobs {
  error?: Error;
  guard<T>(fn: () => Promise<T>): () => Promise<T> {
    return () => {
      if (this.error) return Promise.reject(new Stopped());
      return fn();
    };
  }
  async all<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
    const settled = await Promise.allSettled(
      jobs.map((j) =>
        j().catch((e: unknown) => {
          if (!(e instanceof Stopped) && !this.error) this.error = e as Error;
          throw e;
        }),
      ),
    );
    if (this.error) throw this.error;
    return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
  }
}
class Stopped extends Error {}

function refOf(r: ProviderRef): { id: string; label?: string; concurrency?: number; config?: Record<string, unknown> } {
  return typeof r === 'string' ? { id: r } : r;
}

/** Cuts the answer at the first stop string (some servers return it) and trims whitespace. */
export function postprocess(text: string, stop: string[]): string {
  let end = text.length;
  for (const s of stop) {
    const i = text.indexOf(s);
    if (i >= 0 && i < end) end = i;
  }
  return text.slice(0, end).trim();
}

export function slug(s: string): string {
  return s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 120);
}

// ------------------------------------------------------------------------------------------ runner

export interface RunEvalOptions {
  /** Folder that task paths (and `out`) are relative to: the config file's folder. */
  baseDir?: string;
  /** Output folder (overrides config.out). */
  out?: string;
  /** SQLite store (default: openStore()). */
  db?: DB;
  /** --no-cache: ask providers again even when a response is stored (fresh responses are still stored). */
  noCache?: boolean;
  /** Progress and notes (default: stderr). */
  log?: (line: string) => void;
  progressEveryMs?: number;
  /** Without progress for this long, the progress line is printed again with what is in flight (default 5 s). */
  heartbeatMs?: number;
}

export async function runEvalFile(file: string, opts: Omit<RunEvalOptions, 'baseDir'> = {}): Promise<EvalResult> {
  return runEval(loadEvalConfig(file), { ...opts, baseDir: dirname(resolve(file)) });
}

/**
 * Everything one run shares: the log and its notes, the response cache, provider handles, the in-flight
 * calls (for the heartbeat), the call counter, and the run's row in the store.
 */
class Run {
  readonly baseDir: string;
  readonly log: (line: string) => void;
  readonly notes: string[] = [];
  readonly db: DB;
  readonly cache: ResponseCache;
  readonly handles: Handle[] = [];
  readonly jobs = new Jobs();
  readonly started = new Date();
  readonly out: string;
  readonly storeId: string;
  calls = 0;
  private readonly inFlight = new Map<number, number>();
  private nextCall = 0;
  private lastStoreWrite = 0;

  constructor(readonly cfg: EvalConfig, readonly opts: RunEvalOptions) {
    this.baseDir = opts.baseDir ?? process.cwd();
    this.log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
    this.db = opts.db ?? openStore();
    this.cache = new ResponseCache(this.db, { read: !opts.noCache });
    this.out = opts.out ?? (cfg.out ? resolve(this.baseDir, cfg.out) : resolve('runs', `eval-${cfg.name}`));
    this.storeId = `${this.out}@${this.started.toISOString()}`;
  }

  note(n: string): void {
    if (!this.notes.includes(n)) {
      this.notes.push(n);
      this.log(`note: ${n}`);
    }
  }

  /** A provider for a config entry; the same id as model and as judge or reference is one provider (a local model loads once), one limit. */
  async open(r: ProviderRef): Promise<Handle> {
    const ref = refOf(r);
    const same = this.handles.find((h) => h.provider.id === ref.id);
    if (same) return { ...same, label: ref.label ?? same.label };
    const concurrency = ref.concurrency ?? this.cfg.concurrency;
    const provider = await createProvider(ref.id, { label: ref.label, concurrency, config: ref.config });
    const h = { label: ref.label ?? ref.id, provider, limiter: new Limiter(concurrency) };
    this.handles.push(h);
    return h;
  }

  /** One provider call: through the cache, under the provider's limit, not started after a failure. */
  call<Req, Res>(h: Handle, kind: 'complete' | 'loglikelihood', req: Req, fn: (req: Req) => Promise<Res>): Promise<{ value: Res; cached: boolean }> {
    return this.cache.through(h.provider, kind, req, () =>
      h.limiter.run(
        this.jobs.guard(async () => {
          this.calls++;
          const k = this.nextCall++;
          this.inFlight.set(k, Date.now());
          try {
            return await fn(req);
          } finally {
            this.inFlight.delete(k);
          }
        }),
      ),
    );
  }

  /** A judge's CompleteFn through the cache; `seen` records whether every call of the job was a cache hit. */
  complete(h: Handle, seen: { cached: boolean }) {
    return (req: CompletionRequest) =>
      this.call(h, 'complete', req, (r) => h.provider.complete(r)).then((x) => {
        seen.cached &&= x.cached;
        return x.value;
      });
  }

  inFlightNow(): InFlight {
    let oldest = Infinity;
    for (const t of this.inFlight.values()) oldest = Math.min(oldest, t);
    return { n: this.inFlight.size, oldestMs: this.inFlight.size ? Date.now() - oldest : 0 };
  }

  /** Runs one phase's jobs with a progress line (and its heartbeat); progress also goes to the store, at most once a second. */
  async phase<T>(name: string, jobs: Job<T>[]): Promise<T[]> {
    if (jobs.length === 0) return [];
    const progress = new Progress(
      name,
      jobs.length,
      (line) => {
        this.log(line);
        this.storeProgress(progress);
      },
      this.opts.progressEveryMs,
      { everyMs: this.opts.heartbeatMs, inFlight: () => this.inFlightNow() },
    ).begin();
    try {
      return await this.jobs.all(
        jobs.map((job) => async () => {
          const { value, cached } = await job();
          progress.tick(cached);
          return value;
        }),
      );
    } finally {
      progress.stop();
    }
  }

  private storeProgress(p: Progress): void {
    const now = Date.now();
    const c = p.counts;
    if (c.done < c.total && now - this.lastStoreWrite < 1000) return;
    this.lastStoreWrite = now;
    updateEvalProgress(this.db, this.storeId, c);
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.handles.map((h) => h.provider.close?.()));
  }
}

/**
 * One evaluation, in phases: load and check the tasks (a bad task file fails before any provider starts),
 * open the providers, plan the samples, get every response (through the cache), add reference perplexity and
 * judge grades, judge pairs, score every sample, rate (task tables, axes, ratings), write the run's files and
 * record it in the store. Rendering the leaderboard is report/'s job (src/report/leaderboard.ts).
 */
export async function runEval(cfg: EvalConfig, opts: RunEvalOptions = {}): Promise<EvalResult> {
  const t0 = Date.now();
  const run = new Run(cfg, opts);
  const tasks = await loadTasks(cfg, run.baseDir);
  let started = false;
  try {
    const { models, judge, reference } = await openProviders(run);
    startEval(run.db, { id: run.storeId, name: cfg.name, dir: run.out, started: run.started.toISOString(), models: modelsOf(models) });
    started = true;
    const plan = planResponses(run, models, tasks);
    await run.phase('responses', plan.jobs);
    await run.phase('reference+judge', planExtras(run, tasks, plan, reference, judge));
    const pairwise = judge && cfg.judge!.pairwise && models.length >= 2 ? await judgePairs(run, tasks, plan, models, judge) : undefined;
    for (const r of plan.records) scoreRecord(r, plan.taskOf.get(r.task)!, plan.sampleOf.get(sampleKey(r.task, r.id))!, cfg);
    const result = rate(run, tasks, plan, models, pairwise, t0);
    writeRunFiles(run.out, cfg, tasks, result);
    recordEval(run, result);
    run.log(`eval: ${result.samples.length} samples, ${run.calls} provider calls, ${run.cache.stats.hits} cache hits, ${(result.wall_ms / 1000).toFixed(1)}s → ${run.out}`);
    return result;
  } catch (e) {
    if (started) failEval(run.db, run.storeId, (e as Error).message);
    throw e;
  } finally {
    await run.close();
  }
}

/** Phase 1: every task file loaded and checked, names unique, `limit` applied. */
async function loadTasks(cfg: EvalConfig, baseDir: string): Promise<Task[]> {
  const tasks: Task[] = [];
  for (const t of cfg.tasks) tasks.push(await loadTask(resolve(baseDir, t)));
  const names = new Set<string>();
  for (const t of tasks) {
    if (names.has(t.spec.name)) throw new Error(`two tasks are named "${t.spec.name}" (${t.file}); task names must be unique`);
    names.add(t.spec.name);
    if (cfg.limit !== undefined) limitRows(t, cfg.limit);
  }
  return tasks;
}

async function openProviders(run: Run): Promise<{ models: Handle[]; judge?: Handle; reference?: Handle }> {
  const cfg = run.cfg;
  const models: Handle[] = [];
  for (const r of cfg.providers) models.push(await run.open(r));
  const labels = models.map((m) => m.label);
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup) throw new Error(`two providers have the label "${dup}"; give them distinct labels`);
  const judge = cfg.judge ? await run.open(cfg.judge.provider) : undefined;
  const reference = cfg.reference ? await run.open(cfg.reference) : undefined;
  if (reference && !reference.provider.loglikelihood) run.note(`reference model ${reference.label} returns no log-likelihoods: no perplexity`);
  return { models, judge, reference };
}

const modelsOf = (models: Handle[]) => models.map((m) => ({ label: m.label, provider: m.provider.id, model: m.provider.model }));
const sampleKey = (task: string, id: string) => `${task}\u0000${id}`;

interface Plan {
  records: SampleRecord[];
  jobs: Job<void>[];
  skipped: Map<string, Record<string, string>>;
  taskOf: Map<string, Task>;
  sampleOf: Map<string, Sample>;
}

/** Phase 2: one record and one job per (model, sample); multiple choice is skipped for models without log-likelihoods. */
function planResponses(run: Run, models: Handle[], tasks: Task[]): Plan {
  const records: SampleRecord[] = [];
  const jobs: Job<void>[] = [];
  const skipped = new Map<string, Record<string, string>>(tasks.map((t) => [t.spec.name, {}]));
  for (const m of models)
    for (const task of tasks) {
      const spec = task.spec;
      if (spec.type === 'multiple_choice' && !m.provider.loglikelihood) {
        skipped.get(spec.name)![m.label] = 'provider returns no log-likelihoods (multiple choice needs them)';
        run.note(`${m.label}: skipped ${spec.name} (multiple choice needs log-likelihoods, which this provider does not return)`);
        continue;
      }
      for (const s of task.samples) {
        const rec: SampleRecord = {
          task: spec.name, type: spec.type, model: m.label, provider: m.provider.id, id: s.id, row_id: s.rowId,
          template: s.template, where: s.where, references: s.references, metrics: {}, cached: false,
          ...(s.prompt !== undefined ? { prompt: s.prompt } : { messages: s.messages }),
        };
        records.push(rec);
        jobs.push(async () => {
          try {
            if (spec.type === 'multiple_choice') await answerChoice(run, m, task, s, rec);
            else await answerText(run, m, task, s, rec);
          } catch (e) {
            if (e instanceof Stopped) throw e;
            throw new Error(`${m.label} on ${spec.name} sample ${s.id} (${s.where}): ${(e as Error).message}`, { cause: e });
          }
          return { value: undefined, cached: rec.cached };
        });
      }
    }
  const sampleOf = new Map<string, Sample>();
  for (const t of tasks) for (const s of t.samples) sampleOf.set(sampleKey(t.spec.name, s.id), s);
  return { records, jobs, skipped, taskOf: new Map(tasks.map((t) => [t.spec.name, t])), sampleOf };
}

/** Phase 3 (text): one completion, cut at the stop strings. */
async function answerText(run: Run, m: Handle, task: Task, s: Sample, rec: SampleRecord) {
  const g = task.spec.generation;
  const req: CompletionRequest = {
    ...(s.prompt !== undefined ? { prompt: s.prompt } : { messages: s.messages }),
    maxTokens: g.max_tokens,
    temperature: g.temperature,
    ...(g.top_p !== undefined ? { topP: g.top_p } : {}),
    ...(g.stop.length ? { stop: g.stop } : {}),
    ...(g.seed !== undefined ? { seed: g.seed } : {}),
  };
  const { value, cached } = await run.call<CompletionRequest, CompletionResponse>(m, 'complete', req, (r) => m.provider.complete(r));
  if (typeof value?.text !== 'string') throw new Error('provider returned no text');
  rec.output = postprocess(value.text, g.stop);
  rec.finish_reason = value.finishReason;
  if (value.latencyMs !== undefined) rec.latency_ms = value.latencyMs;
  rec.cached = cached;
}

/** Phase 3 (multiple choice): the log-likelihood of every choice. */
async function answerChoice(run: Run, m: Handle, task: Task, s: Sample, rec: SampleRecord) {
  const reqs: LoglikelihoodRequest[] = s.choices!.map((c) => ({ context: s.prompt!, continuation: task.spec.target_delimiter + c }));
  const { value, cached } = await run.call<LoglikelihoodRequest[], LoglikelihoodResponse[]>(m, 'loglikelihood', reqs, (r) => m.provider.loglikelihood!(r));
  if (!Array.isArray(value) || value.length !== reqs.length) throw new Error(`loglikelihood returned ${Array.isArray(value) ? value.length : 'no'} results for ${reqs.length} choices`);
  rec.choices = s.choices;
  rec.gold = s.gold;
  rec.choice_logprobs = value.map((v) => v.logprob);
  rec.cached = cached;
}

/** Phase 3 (extras): perplexity under the reference model and the judge's grade, for the text samples whose task wants them. */
function planExtras(run: Run, tasks: Task[], plan: Plan, reference: Handle | undefined, judge: Handle | undefined): Job<void>[] {
  const cfg = run.cfg;
  const { taskOf } = plan;
  const sampleOf = (r: SampleRecord) => plan.sampleOf.get(sampleKey(r.task, r.id))!;
  const textRecs = plan.records.filter((r) => r.output !== undefined);
  const wants = (r: SampleRecord, m: string) => taskOf.get(r.task)!.spec.metrics.includes(m);
  const jobs: Job<void>[] = [];
  if (reference?.provider.loglikelihood) {
    for (const r of textRecs) {
      if (!(wants(r, 'perplexity') || wants(r, 'coherence')) || r.output === '') continue;
      const s = sampleOf(r);
      jobs.push(async () => {
        const reqs = [{ context: promptText(s) + '\n\n', continuation: r.output! }];
        const { value, cached } = await run.call<LoglikelihoodRequest[], LoglikelihoodResponse[]>(reference, 'loglikelihood', reqs, (q) => reference.provider.loglikelihood!(q));
        const v = value[0];
        if (v && v.tokens > 0) r.ppl = Math.exp(-v.logprob / v.tokens);
        return { value: undefined, cached };
      });
    }
  } else if (tasks.some((t) => t.spec.metrics.includes('perplexity'))) run.note('no reference model with log-likelihoods configured: perplexity not computed');
  if (judge && cfg.judge!.grade) {
    for (const r of textRecs) {
      if (!(wants(r, 'judge_score') || wants(r, 'coherence'))) continue;
      const s = sampleOf(r);
      jobs.push(async () => {
        const seen = { cached: true };
        const g = await gradeAnswer(run.complete(judge, seen), s.question, r.output!);
        r.judge_score = g.score;
        r.judge_raw = g.raw;
        if (g.score === null) run.note(`judge ${judge.label} gave unreadable grades for some samples (left out of judge_score)`);
        return { value: undefined, cached: seen.cached };
      });
    }
  } else if (tasks.some((t) => t.spec.metrics.includes('judge_score'))) run.note('no judge configured: judge_score not computed');
  return jobs;
}

/** Phase 3 (pairwise): every two models' main-prompt answers, judged in both orders; then rated. */
async function judgePairs(run: Run, tasks: Task[], plan: Plan, models: Handle[], judge: Handle): Promise<PairwiseResult> {
  const cfg = run.cfg;
  const { taskOf, records } = plan;
  const labels = models.map((m) => m.label);
  const pairTasks = cfg.judge!.tasks ?? tasks.filter((t) => t.spec.type === 'generation' || t.spec.type === 'summarization').map((t) => t.spec.name);
  for (const n of pairTasks) if (!taskOf.has(n)) throw new Error(`judge.tasks names "${n}", which is not among the tasks (${[...taskOf.keys()].join(', ')})`);
  const byKey = new Map(records.map((r) => [`${r.model}\u0000${r.task}\u0000${r.id}`, r]));
  const jobs: Job<{ a: SampleRecord; b: SampleRecord; outcome: PairOutcome }>[] = [];
  for (const task of pairTasks)
    for (const s of taskOf.get(task)!.samples) {
      if (s.template !== 0) continue;
      for (let i = 0; i < models.length; i++)
        for (let j = i + 1; j < models.length; j++) {
          const a = byKey.get(`${labels[i]}\u0000${task}\u0000${s.id}`);
          const b = byKey.get(`${labels[j]}\u0000${task}\u0000${s.id}`);
          if (a?.output === undefined || b?.output === undefined) continue;
          jobs.push(async () => {
            const seen = { cached: true };
            const jd = await judgePair(run.complete(judge, seen), s.question, a.output!, b.output!);
            return { value: { a, b, outcome: jd.outcome }, cached: seen.cached };
          });
        }
    }
  const judged = await run.phase('pairwise', jobs);
  return summarizePairs(judged, labels, judge.label, cfg.judge!.baseline ?? labels[0]!, cfg);
}

/** Phase 5: per-task tables and the axes (ratings were made with the battles). */
function rate(run: Run, tasks: Task[], plan: Plan, models: Handle[], pairwise: PairwiseResult | undefined, t0: number): EvalResult {
  const cfg = run.cfg;
  const labels = models.map((m) => m.label);
  return {
    name: cfg.name,
    created_at: new Date().toISOString(),
    models: modelsOf(models),
    tasks: tasks.map((t) => summarizeTask(t, plan.records, labels, plan.skipped.get(t.spec.name)!, cfg)),
    axes: Object.fromEntries(labels.map((l) => [l, computeAxes(axisSamples(plan.records.filter((r) => r.model === l), plan.taskOf), { iters: cfg.bootstrap, seed: cfg.seed })])),
    ...(pairwise ? { pairwise } : {}),
    notes: run.notes,
    cache: { ...run.cache.stats },
    calls: run.calls,
    wall_ms: Date.now() - t0,
    samples: plan.records,
  };
}

/** Phase 6: the result in the store — its summary and every reported number (axes, task metrics, ratings). */
function recordEval(run: Run, result: EvalResult): void {
  const scores: EvalScore[] = [];
  for (const [model, axes] of Object.entries(result.axes))
    for (const [axis, s] of Object.entries(axes)) if (s) scores.push({ model, scope: 'axis', metric: axis, value: s.value, lo: s.lo, hi: s.hi, n: s.n });
  for (const t of result.tasks)
    for (const [model, ms] of Object.entries(t.scores)) for (const [metric, s] of Object.entries(ms)) scores.push({ model, scope: `task:${t.name}`, metric, value: s.value, lo: s.lo, hi: s.hi, n: s.n });
  for (const r of result.pairwise?.ratings ?? []) scores.push({ model: r.model, scope: 'rating', metric: 'rating', value: r.value, lo: r.lo, hi: r.hi });
  const { samples: _samples, ...summary } = result;
  recordEvalResult(run.db, { id: run.storeId, name: result.name, dir: run.out, started: run.started.toISOString(), finished: new Date().toISOString(), models: result.models, summary, scores });
}

/** Keeps the first `limit` rows of a task (every template of each). */
function limitRows(t: Task, limit: number) {
  const keep = new Set<string>();
  for (const s of t.samples) if (keep.size < limit || keep.has(s.rowId)) keep.add(s.rowId);
  t.samples = t.samples.filter((s) => keep.has(s.rowId));
  t.rows = keep.size;
}

function scoreRecord(r: SampleRecord, task: Task, sample: Sample, cfg: EvalConfig) {
  const spec = task.spec;
  if (spec.type === 'multiple_choice') {
    if (!r.choice_logprobs) return;
    const mc = multipleChoice(r.choice_logprobs, r.choices!, r.gold!);
    r.pred = mc.pred;
    r.pred_norm = mc.pred_norm;
    for (const m of spec.metrics) if (m === 'acc' || m === 'acc_norm') r.metrics[m] = mc[m];
    return;
  }
  if (r.output === undefined) return;
  r.metrics = scoreGeneration(
    spec.metrics,
    { output: r.output, references: r.references, source: sample.source, ppl: r.ppl, judge: r.judge_score ?? undefined },
    { ppl_max: cfg.ppl_max, repetition_n: cfg.repetition_n },
  );
}

function summarizeTask(t: Task, records: SampleRecord[], labels: string[], skipped: Record<string, string>, cfg: EvalConfig): TaskResult {
  const spec = t.spec;
  const scores: TaskResult['scores'] = {};
  const byTemplate: TaskResult['by_template'] = {};
  for (const l of labels) {
    if (skipped[l]) continue;
    const mine = records.filter((r) => r.model === l && r.task === spec.name);
    const main = mine.filter((r) => r.template === 0);
    scores[l] = {};
    for (const m of spec.metrics) {
      const xs = main.flatMap((r) => (r.metrics[m] === undefined ? [] : [r.metrics[m]!]));
      if (xs.length === 0) continue;
      const e = cfg.bootstrap > 0 ? bootstrapMean(xs, { iters: cfg.bootstrap, seed: cfg.seed }) : { value: xs.reduce((a, b) => a + b, 0) / xs.length, lo: NaN, hi: NaN };
      scores[l]![m] = { ...e, n: xs.length };
    }
    byTemplate[l] = Array.from({ length: 1 + spec.paraphrases.length }, (_, k) => {
      const xs = mine.filter((r) => r.template === k).flatMap((r) => (r.metrics[spec.primary_metric] === undefined ? [] : [r.metrics[spec.primary_metric]!]));
      return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
    });
  }
  return {
    name: spec.name, type: spec.type, file: t.file, rows: t.rows, templates: 1 + spec.paraphrases.length,
    primary_metric: spec.primary_metric, metrics: spec.metrics, unit_metrics: spec.metrics.filter((m) => METRICS[m]?.unit), scores, by_template: byTemplate, skipped,
  };
}

function axisSamples(records: SampleRecord[], taskOf: Map<string, Task>): AxisSample[] {
  const out: AxisSample[] = [];
  for (const r of records) {
    const spec = taskOf.get(r.task)!.spec;
    const primary = r.metrics[spec.primary_metric];
    if (primary === undefined) continue;
    out.push({ task: r.task, type: r.type, axes: spec.axes, rowId: r.row_id, template: r.template, primary, ...(r.metrics.coherence !== undefined ? { coherence: r.metrics.coherence } : {}) });
  }
  return out;
}

function summarizePairs(
  judged: { a: SampleRecord; b: SampleRecord; outcome: PairOutcome }[],
  labels: string[],
  judge: string,
  baseline: string,
  cfg: EvalConfig,
): PairwiseResult {
  if (!labels.includes(baseline)) throw new Error(`judge.baseline "${baseline}" is not a provider label (${labels.join(', ')})`);
  const outcomes: Record<string, PairOutcome[]> = {};
  const battles: Battle[] = [];
  const lc: Record<string, { preference: number; modelLength: number; baselineLength: number }[]> = {};
  for (const { a, b, outcome } of judged) {
    (outcomes[`${a.model} vs ${b.model}`] ??= []).push(outcome);
    if (outcome === 'invalid') continue;
    // An inconsistent pair (the verdict flipped with the order) counts as a tie.
    const winner = outcome === 'inconsistent' ? 'tie' : outcome;
    battles.push({ a: a.model, b: b.model, winner });
    const prefA = winner === 'a' ? 1 : winner === 'b' ? 0 : 0.5;
    if (b.model === baseline) (lc[a.model] ??= []).push({ preference: prefA, modelLength: a.output!.length, baselineLength: b.output!.length });
    if (a.model === baseline) (lc[b.model] ??= []).push({ preference: 1 - prefA, modelLength: b.output!.length, baselineLength: a.output!.length });
  }
  const ratingOpts = { iters: cfg.bootstrap, seed: cfg.seed };
  return {
    judge,
    baseline,
    comparisons: judged.length,
    outcomes: Object.fromEntries(Object.entries(outcomes).map(([k, v]) => [k, countOutcomes(v)])),
    totals: countOutcomes(judged.map((j) => j.outcome)),
    ratings: battles.length ? ratingsWithCI(battles, ratingOpts) : [],
    win_rates: winRateMatrix(battles, labels),
    vs_baseline: Object.fromEntries(Object.entries(lc).map(([m, recs]) => [m, lengthControlledWithCI(recs, { iters: Math.min(cfg.bootstrap, 500), seed: cfg.seed })])),
  };
}

function writeRunFiles(out: string, cfg: EvalConfig, tasks: Task[], result: EvalResult) {
  mkdirSync(out, { recursive: true });
  const resolved = {
    config: cfg,
    tasks: tasks.map((t) => ({ file: t.file, data: t.dataFile, rows: t.rows, samples: t.samples.length, spec: t.spec })),
    defaults: { metrics: METRIC_DEFAULTS, judge: JUDGE_DEFAULTS, ratings: RATING_DEFAULTS },
  };
  writeFileSync(join(out, 'config.resolved.json'), JSON.stringify(resolved, null, 2) + '\n');
  // Per-sample logs, one JSONL per task and model, rewritten whole each run: every sample exactly once.
  const groups = new Map<string, SampleRecord[]>();
  for (const r of result.samples) {
    const k = join(out, 'samples', slug(r.task), `${slug(r.model)}.jsonl`);
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k)!.push(r);
  }
  for (const [file, recs] of groups) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, recs.map((r) => JSON.stringify(r)).join('\n') + '\n');
  }
  const { samples: _samples, ...summary } = result;
  writeFileSync(join(out, 'results.json'), JSON.stringify(summary, null, 2) + '\n');
}
