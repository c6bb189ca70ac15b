// YAML config files validated with zod, with errors that name the file, the line and the field.
import { readFileSync } from 'node:fs';
import { isMap, isNode, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from '../../formats/errors.js';

export { ConfigError };

/** Reads a config file; a missing or unreadable file is a one-line ConfigError, not a raw ENOENT. */
export function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? 'is a directory, not a file' : `cannot be read (${code ?? (e as Error).message})`;
    throw new ConfigError(file, null, null, why);
  }
}

/** A parsed and validated config, with the line of any field (for errors found after validation). */
export interface YamlConfig<T> {
  value: T;
  /** 1-based line of the key at `path` (or of the nearest ancestor that exists); undefined when none has a position. */
  lineOf(path: (string | number)[]): number | undefined;
}

/** The line where `path` is written: the key of a mapping entry, or a sequence item; else its nearest ancestor. */
function lineIn(doc: Document, lc: LineCounter, path: (string | number)[]): number | undefined {
  const nodeAt = (p: (string | number)[]) => (p.length === 0 ? doc.contents : doc.getIn(p, true));
  for (let n = path.length; n > 0; n--) {
    const parent = nodeAt(path.slice(0, n - 1));
    const k = path[n - 1];
    let node: unknown;
    if (isMap(parent)) node = parent.items.find((it) => (isScalar(it.key) ? it.key.value : it.key) === k)?.key;
    else if (isSeq(parent) && typeof k === 'number') node = parent.items[k];
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  const root = doc.contents;
  return isNode(root) && root.range ? lc.linePos(root.range[0]).line : undefined;
}

/** zod's message with a lower-case start, to follow `field "name" `. */
const why = (msg: string) => msg.charAt(0).toLowerCase() + msg.slice(1);

/** Parses and validates one YAML (or JSON) file; every problem is listed as `file:line: field "a.b" …`, one per line. */
export function readYamlConfigWithLines<S extends z.ZodType>(file: string, schema: S, text = readConfigText(file)): YamlConfig<z.output<S>> {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    throw new ConfigError(file, lc.linePos(e.pos[0]).line, null, `invalid YAML: ${e.message.split('\n')[0]}`);
  }
  const lineOf = (path: (string | number)[]) => lineIn(doc, lc, path);
  const r = schema.safeParse(doc.toJS());
  if (r.success) return { value: r.data, lineOf };
  const errors: ConfigError[] = [];
  for (const iss of r.error.issues) {
    const path = iss.path.map((p) => (typeof p === 'symbol' ? String(p) : p));
    if (iss.code === 'unrecognized_keys') {
      // One error per unknown key, at the key's own line (zod reports them at the enclosing object).
      for (const k of iss.keys) errors.push(new ConfigError(file, lineOf([...path, k]) ?? null, [...path, k].join('.'), 'is not a known field (a typo?)'));
      continue;
    }
    errors.push(new ConfigError(file, lineOf(path) ?? null, path.length ? path.join('.') : null, path.length ? `is invalid: ${why(iss.message)}` : why(iss.message)));
  }
  const first = errors[0]!;
  if (errors.length > 1) first.message = errors.map((e) => e.message).join('\n');
  throw first;
}

/** Parses and validates one YAML (or JSON) file (see readYamlConfigWithLines). */
export function readYamlConfig<S extends z.ZodType>(file: string, schema: S, text?: string): z.output<S> {
  return readYamlConfigWithLines(file, schema, text).value;
}
