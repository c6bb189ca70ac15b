// YAML config files validated with zod, with errors that name the file, the line and the field.
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isNode } from 'yaml';
import type { z } from 'zod';

export class ConfigError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'ConfigError';
  }
}

/** Parses and validates one YAML (or JSON) file; every problem is listed as `file:line: field "a.b": message`. */
export function readYamlConfig<S extends z.ZodType>(file: string, schema: S, text = readFileSync(file, 'utf8')): z.output<S> {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    const line = lc.linePos(e.pos[0]).line;
    throw new ConfigError(`${file}:${line}: invalid YAML: ${e.message.split('\n')[0]}`);
  }
  const data = doc.toJS();
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const lines = r.error.issues.map((iss) => {
    const path = iss.path.map(String);
    // Point at the deepest node that exists: a missing field is reported at its parent.
    let line = 1;
    for (let k = path.length; k >= 0; k--) {
      const node = k === 0 ? doc.contents : doc.getIn(iss.path.slice(0, k) as (string | number)[], true);
      if (isNode(node) && node.range) {
        line = lc.linePos(node.range[0]).line;
        break;
      }
    }
    const field = path.length ? `field "${path.join('.')}"` : 'top level';
    return `${file}:${line}: ${field}: ${iss.message}`;
  });
  throw new ConfigError(lines.join('\n'));
}
