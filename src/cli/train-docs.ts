// The config reference of docs/training.md, generated from the zod schemas in config.ts (keys, types,
// ranges, defaults and `.describe()` texts), so the docs cannot drift from what the CLI accepts.
// A test checks that docs/training.md holds exactly this text; after changing a schema, regenerate:
//
//   node --import tsx src/cli/train-docs.ts --write docs/training.md

import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

import { ALGORITHMS, configSchema, LEARNING_RATE_DEFAULTS } from '../train/config.js';
import { REWARD_FUNCTIONS } from '../rewards/registry.js';
import { DPO_DEFAULTS } from '../train/losses/dpo.js';
import { SIMPO_DEFAULTS } from '../train/losses/simpo.js';

/** 2e-5, not 0.00002. */
const num = (v: number) => (v !== 0 && Math.abs(v) < 1e-3 ? v.toExponential() : String(v));

// Minimal structural view of zod 4 schemas (what the walk below reads).
interface Check {
  _zod: { def: { check: string; value?: number; inclusive?: boolean; format?: string } };
}
interface Schema {
  def: { type: string; innerType?: Schema; defaultValue?: unknown; options?: Schema[]; checks?: Check[]; entries?: Record<string, string> };
  shape?: Record<string, Schema>;
  description?: string;
}

interface Row {
  key: string;
  type: string;
  default: string;
  doc: string;
}

/** Peel default / nullable / optional wrappers: the inner schema and what they say. */
function unwrap(s: Schema): { inner: Schema; def: { has: boolean; value?: unknown }; nullable: boolean; optional: boolean; doc?: string } {
  let doc = s.description;
  let nullable = false, optional = false;
  const def: { has: boolean; value?: unknown } = { has: false };
  for (;;) {
    const t = s.def.type;
    if (t === 'default') {
      def.has = true;
      def.value = typeof s.def.defaultValue === 'function' ? (s.def.defaultValue as () => unknown)() : s.def.defaultValue;
    } else if (t === 'nullable') nullable = true;
    else if (t === 'optional') optional = true;
    else break;
    s = s.def.innerType!;
    doc ??= s.description;
  }
  return { inner: s, def, nullable, optional, doc };
}

function typeOf(s: Schema): string {
  const t = s.def.type;
  if (t === 'enum') return Object.values(s.def.entries ?? {}).map((v) => `\`${v}\``).join(' \\| ');
  if (t === 'record') return 'mapping';
  if (t === 'string') return 'string';
  if (t === 'boolean') return 'boolean';
  if (t === 'number') {
    const checks = (s.def.checks ?? []).map((c) => c._zod.def);
    const int = checks.some((c) => c.check === 'number_format' && /int/.test(c.format ?? ''));
    const bounds = checks
      .filter((c) => c.check === 'greater_than' || c.check === 'less_than')
      .map((c) => `${c.check === 'greater_than' ? (c.inclusive ? '≥' : '>') : c.inclusive ? '≤' : '<'} ${c.value}`);
    return (int ? 'integer' : 'number') + (bounds.length ? ' ' + bounds.join(', ') : '');
  }
  return t;
}

function fmtDefault(u: ReturnType<typeof unwrap>): string {
  if (!u.def.has) return u.optional ? '(optional)' : '**required**';
  const v = u.def.value;
  return '`' + (typeof v === 'string' ? v : typeof v === 'number' ? num(v) : JSON.stringify(v)) + '`';
}

/** Rows for the keys of an object schema (nested objects become dotted keys). */
function rows(shape: Record<string, Schema>, prefix: string, skip: string[] = []): Row[] {
  const out: Row[] = [];
  for (const [k, s] of Object.entries(shape)) {
    if (skip.includes(k)) continue;
    const u = unwrap(s);
    const key = prefix + k;
    if (u.inner.def.type === 'object' && u.inner.shape) {
      out.push(...rows(u.inner.shape, `${key}.`));
      continue;
    }
    if (u.inner.def.type === 'union') continue; // model: documented by hand (two shapes)
    out.push({ key, type: typeOf(u.inner) + (u.nullable ? ' or `null`' : ''), default: fmtDefault(u), doc: (u.doc ?? '').replace(/\|/g, '\\|') });
  }
  return out;
}

function table(rs: Row[]): string {
  return ['| key | type | default | meaning |', '|---|---|---|---|', ...rs.map((r) => `| \`${r.key}\` | ${r.type} | ${r.default} | ${r.doc} |`)].join('\n');
}

const shapeOf = (a: (typeof ALGORITHMS)[number]) => (configSchema(a) as unknown as Schema).shape!;

/** The generated Markdown (between the markers in docs/training.md). */
export function configReference(): string {
  const common = shapeOf('sft');
  const modelUnion = unwrap(common.model!).inner.def.options!;
  const modelRows = modelUnion.flatMap((o) => rows(o.shape!, 'model.'));
  const parts = [
    '### `model` (one of two shapes)',
    '',
    table(modelRows),
    '',
    '### `data`',
    '',
    table(rows(unwrap(common.data!).inner.shape!, 'data.')),
    '',
    '### Common keys (every algorithm)',
    '',
    table(rows(common, '', ['model', 'data', 'sft'])),
    '',
    `\`learning_rate: null\` resolves per algorithm (TRL's defaults): ${Object.entries(LEARNING_RATE_DEFAULTS).map(([a, v]) => `${a} \`${num(v)}\``).join(', ')}. ` +
      `\`dpo.beta: null\` resolves to \`${DPO_DEFAULTS.beta}\` (\`${SIMPO_DEFAULTS.beta}\` for \`loss_type: simpo\`).`,
  ];
  for (const a of ALGORITHMS) {
    const section = unwrap(shapeOf(a)[a]!);
    parts.push('', `### \`${a}:\` section${section.def.has ? ' (optional: every key has a default)' : ''}`, '', table(rows(section.inner.shape!, `${a}.`)));
  }
  parts.push(
    '',
    '### Built-in reward functions (`reward.function`)',
    '',
    '| id | reward |',
    '|---|---|',
    ...Object.entries(REWARD_FUNCTIONS).map(([k, s]) => `| \`${s.needsArg ? `${k}:…` : k}\` | ${s.help.replace(/\|/g, '\\|')} |`),
  );
  return parts.join('\n');
}

export const BEGIN = '<!-- config-reference:begin (generated by src/cli/train-docs.ts; do not edit by hand) -->';
export const END = '<!-- config-reference:end -->';

/** Replace the text between the markers of a Markdown file with the current reference. */
export function withReference(markdown: string): string {
  const i = markdown.indexOf(BEGIN), j = markdown.indexOf(END);
  if (i < 0 || j < i) throw new Error(`the markers ${BEGIN} … ${END} are missing`);
  return markdown.slice(0, i + BEGIN.length) + '\n\n' + configReference() + '\n\n' + markdown.slice(j);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const i = process.argv.indexOf('--write');
  if (i < 0) console.log(configReference());
  else {
    const file = process.argv[i + 1]!;
    writeFileSync(file, withReference(readFileSync(file, 'utf-8')));
    console.log(`updated ${file}`);
  }
}

