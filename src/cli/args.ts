// Tiny flag parser shared by every command: --name value, --name=value, boolean --flag, positionals.
// Unknown flags are an error that names the flag, so typos never pass silently.

export interface FlagSpec {
  [name: string]: { type: 'string' | 'number' | 'boolean'; default?: string | number | boolean; help?: string };
}

export type Parsed<S extends FlagSpec> = { [K in keyof S]: S[K]['type'] extends 'number' ? number : S[K]['type'] extends 'boolean' ? boolean : string } & {
  _: string[];
};

export class UsageError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'UsageError';
  }
}

export function parseFlags<S extends FlagSpec>(argv: string[], spec: S): Parsed<S> {
  const out: Record<string, unknown> = { _: [] as string[] };
  for (const [k, v] of Object.entries(spec)) if (v.default !== undefined) out[k] = v.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) {
      (out._ as string[]).push(a);
      continue;
    }
    let [name, val] = a.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    let negate = false;
    if (!(name in spec) && name.startsWith('no-') && spec[name.slice(3)]?.type === 'boolean') {
      name = name.slice(3);
      negate = true;
    }
    const s = spec[name];
    if (!s) throw new UsageError(`unknown flag --${name} (known: ${Object.keys(spec).map((k) => '--' + k).join(' ')})`);
    if (s.type === 'boolean') {
      out[name] = negate ? false : val === undefined ? true : val !== 'false';
      continue;
    }
    if (val === undefined) {
      val = argv[++i];
      if (val === undefined) throw new UsageError(`flag --${name} needs a value`);
    }
    if (s.type === 'number') {
      const n = Number(val);
      if (!Number.isFinite(n)) throw new UsageError(`flag --${name} must be a number, got "${val}"`);
      out[name] = n;
    } else out[name] = val;
  }
  return out as Parsed<S>;
}

export function need<T>(v: T | undefined, flag: string): T {
  if (v === undefined || v === '') throw new UsageError(`missing required flag --${flag}`);
  return v;
}
