// The task file format (YAML, in the spirit of lm-evaluation-harness) and every default it has.
// `TaskFileSchema` holds the defaults that do not depend on the task type; `TYPE_DEFAULTS` holds the
// ones that do. `resolveTask` merges them into a `TaskSpec` with nothing left optional, which is what
// the run prints into config.resolved.json.
import { z } from 'zod';
import { ConfigError } from '../../formats/errors.js';
import { METRICS, type TaskType } from '../metrics/index.js';

export const TASK_TYPES = ['qa', 'summarization', 'generation', 'multiple_choice'] as const;
export const AXIS_NAMES = ['contextual_understanding', 'response_coherence', 'adaptability'] as const;
export type AxisName = (typeof AXIS_NAMES)[number];

export const GenerationSchema = z
  .object({
    /** Most new tokens per answer. */
    max_tokens: z.number().int().positive().default(128),
    /** 0 = greedy: evaluations default to deterministic decoding. */
    temperature: z.number().min(0).default(0),
    top_p: z.number().gt(0).max(1).optional(),
    /** Strings that end the answer (the provider stops there). */
    stop: z.array(z.string().min(1)).default([]),
    seed: z.number().int().optional(),
  })
  .strict();

export const FewShotSchema = z
  .object({
    /** Examples shown before each question (0 = zero-shot). */
    n: z.number().int().min(0).default(0),
    /** Where examples come from; default: the task's own data file (never the row being asked). */
    file: z.string().optional(),
    /** Keep only rows whose split field equals this (e.g. "train"). */
    split: z.string().optional(),
    /** Per-row seed base: each row draws its examples from seed + row id, independent of run order. */
    seed: z.number().int().default(1234),
    /** Text between examples (lm-eval's fewshot_delimiter). */
    delimiter: z.string().default('\n\n'),
  })
  .strict();

export const TaskFileSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'use letters, digits, "_", "-" or "."'),
    type: z.enum(TASK_TYPES),
    description: z.string().default(''),
    /** Data file, relative to the task file: .jsonl, .json, .csv or .parquet. */
    data: z.string().min(1),
    /** Keep only rows whose `split_field` equals this. */
    split: z.string().optional(),
    split_field: z.string().default('split'),
    /** Evaluate only the first N rows (after the split filter). */
    limit: z.number().int().positive().optional(),
    /** Field holding a stable row id (default: the row's position). */
    id_field: z.string().optional(),
    /** chat → messages; completion → one prompt string. Default by type. */
    mode: z.enum(['chat', 'completion']).optional(),
    system: z.string().optional(),
    /** Jinja template over the row's fields. */
    prompt: z.string().min(1),
    /** Alternative wordings of `prompt` over the same fields (for the adaptability axis). */
    paraphrases: z.array(z.string().min(1)).default([]),
    /** Jinja template of a few-shot answer; default: the first reference (or the gold choice). */
    target: z.string().optional(),
    /** Between a question and its answer (lm-eval's target_delimiter); also prefixes each choice. */
    target_delimiter: z.string().default(' '),
    /** Field with the gold answer(s): a string or a list of strings. Default by type. */
    references: z.string().optional(),
    /** multiple_choice: field with the list of choices. */
    choices: z.string().default('choices'),
    /** multiple_choice: field with the correct choice (0-based index, the choice text, or a letter A, B, …). */
    gold: z.string().default('gold'),
    /** summarization: field with the source text (for compression_ratio). */
    source: z.string().default('document'),
    fewshot: FewShotSchema.prefault({}),
    generation: GenerationSchema.prefault({}),
    metrics: z.array(z.string()).min(1).optional(),
    /** The one [0,1] metric that stands for the task in the axes. Default by type. */
    primary_metric: z.string().optional(),
    /** Which axes the task feeds. Default by type. */
    axes: z.array(z.enum(AXIS_NAMES)).optional(),
  })
  .strict();

export type TaskFile = z.output<typeof TaskFileSchema>;

interface TypeDefaults {
  mode: 'chat' | 'completion';
  references?: string;
  metrics: string[];
  primary_metric: string;
  axes: AxisName[];
}

export const TYPE_DEFAULTS: Record<TaskType, TypeDefaults> = {
  qa: { mode: 'chat', references: 'answers', metrics: ['exact_match', 'f1'], primary_metric: 'f1', axes: ['contextual_understanding', 'adaptability'] },
  summarization: {
    mode: 'chat',
    references: 'summary',
    metrics: ['rouge1', 'rouge2', 'rougeL', 'length', 'compression_ratio', 'repetition_rate', 'judge_score', 'coherence'],
    primary_metric: 'rougeL',
    axes: ['response_coherence', 'adaptability'],
  },
  generation: {
    mode: 'chat',
    metrics: ['length', 'distinct_1', 'distinct_2', 'repetition_rate', 'perplexity', 'judge_score', 'coherence'],
    primary_metric: 'coherence',
    axes: ['response_coherence', 'adaptability'],
  },
  // Log-likelihood scoring reads raw text, so multiple choice is always completion-style.
  multiple_choice: { mode: 'completion', metrics: ['acc', 'acc_norm'], primary_metric: 'acc_norm', axes: ['adaptability'] },
};

export interface TaskSpec extends Omit<TaskFile, 'mode' | 'references' | 'metrics' | 'primary_metric' | 'axes'> {
  mode: 'chat' | 'completion';
  references?: string;
  metrics: string[];
  primary_metric: string;
  axes: AxisName[];
}

/** Fills type defaults and checks that metrics, primary metric and axes fit the task type.
 * `lineOf` gives the line of a field in the task file, for errors. */
export function resolveTask(t: TaskFile, file: string, lineOf: (path: string[]) => number | undefined = () => undefined): TaskSpec {
  const d = TYPE_DEFAULTS[t.type];
  const mode = t.mode ?? d.mode;
  const axes = t.axes ?? d.axes;
  const metrics = [...(t.metrics ?? d.metrics)];
  const primary = t.primary_metric ?? d.primary_metric;
  const fail = (field: string, msg: string): never => {
    throw new ConfigError(file, lineOf([field]) ?? null, field, msg);
  };
  if (t.type === 'multiple_choice' && mode !== 'completion') fail('mode', 'must be completion: multiple_choice is scored by log-likelihood of raw text');
  // The coherence axis reads the per-sample `coherence` metric, and every axis reads the primary metric.
  if (axes.includes('response_coherence')) {
    if (t.type === 'multiple_choice') fail('axes', 'cannot include response_coherence: a multiple_choice task produces no text to judge');
    if (!metrics.includes('coherence')) metrics.push('coherence');
  }
  if (!metrics.includes(primary)) metrics.push(primary);
  for (const m of metrics) {
    const info = METRICS[m];
    if (!info) fail('metrics', `names an unknown metric "${m}" (known: ${Object.keys(METRICS).join(', ')})`);
    if (!info!.types.includes(t.type)) fail('metrics', `names "${m}", which does not apply to a ${t.type} task (it applies to ${info!.types.join(', ')})`);
  }
  if (!METRICS[primary]!.unit) fail('primary_metric', `"${primary}" is not a [0,1] score: pick one of ${metrics.filter((m) => METRICS[m]?.unit).join(', ')}`);
  const references = t.references ?? d.references;
  const needsRefs = metrics.some((m) => METRICS[m]!.needsReferences);
  if (needsRefs && !references) fail('references', `is needed by metrics ${metrics.filter((m) => METRICS[m]!.needsReferences).join(', ')}: name the data field holding the gold answers`);
  return { ...t, mode, references, metrics, primary_metric: primary, axes };
}
