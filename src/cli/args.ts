// What every command shares: a commander `Command` set up the same way (usage style, --help, --version,
// suggestions for mistyped flags), parsing that throws instead of exiting (so tests can call a command's
// `main(argv)` and the entry point picks the exit code), and value parsers with one-line errors.
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';

export { Argument, Command, InvalidArgumentError, Option } from 'commander';

/** A mistake in how the command was called: exit code 2, one line, no stack. */
export class UsageError extends Error {
  constructor(msg: string) {
    super(msg);
    this.name = 'UsageError';
  }
}

export function need<T>(v: T | undefined, flag: string): T {
  if (v === undefined || v === '') throw new UsageError(`missing required flag --${flag}`);
  return v;
}

/** package.json's version (src/cli and dist/cli both sit two folders below it). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf-8')) as { version: string }).version;

/**
 * The program `alignlab` with the settings every command inherits: errors are thrown (exitOverride) and not
 * printed by commander (the entry point prints one line `alignlab <cmd>: <message>`), and a mistyped flag or
 * command is answered with the nearest known one.
 */
export function program(): Command {
  return new Command('alignlab')
    .version(VERSION, '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show this help')
    .exitOverride()
    .showSuggestionAfterError()
    .configureOutput({ outputError: () => {} })
    .configureHelp({ sortOptions: false, showGlobalOptions: false });
}

/** `alignlab <name>`: a command with its own --help and --version. */
export function command(name: string, description: string): Command {
  return program().command(name).description(description).version(VERSION, '-V, --version', 'print the version').helpOption('-h, --help', 'show this help');
}

/**
 * Parses `argv` (the words after the command's name). Returns false when --help or --version was printed
 * (the command has nothing else to do); throws UsageError, in this project's wording, for every mistake.
 */
export async function parse(cmd: Command, argv: string[]): Promise<boolean> {
  try {
    await cmd.parseAsync(argv, { from: 'user' });
    return true;
  } catch (e) {
    if (!(e instanceof CommanderError)) throw e;
    if (e.exitCode === 0) return false;
    throw new UsageError(tidy(e.message));
  }
}

/** Commander's messages in the project's one-line style ("unknown flag --x (did you mean --y?)"). */
export function tidy(message: string): string {
  const m = message.replace(/^error: /, '').replace(/\s*\n\(Did you mean (.*)\?\)\s*$/s, ' (did you mean $1?)');
  const flag = (flags: string) => (flags.match(/--[\w-]+/) ?? [flags])[0];
  let r: RegExpMatchArray | null;
  if ((r = m.match(/^unknown option '([^']*)'(.*)$/s))) return `unknown flag ${r[1]}${r[2]}`;
  if ((r = m.match(/^option '([^']*)' argument missing$/))) return `flag ${flag(r[1]!)} needs a value`;
  if ((r = m.match(/^required option '([^']*)' not specified$/))) return `missing required flag ${flag(r[1]!)}`;
  if ((r = m.match(/^option '([^']*)' argument '(.*)' is invalid\. (.*)$/s))) {
    const why = r[3]!.replace(/^Allowed choices are (.*)\.$/s, 'must be one of $1');
    return `${flag(r[1]!)} ${why}, got "${r[2]}"`;
  }
  if ((r = m.match(/^command-argument value '(.*)' is invalid for argument '(.*)'\. Allowed choices are (.*)\.$/s))) return `${r[2]} must be one of ${r[3]}, got "${r[1]}"`;
  return m;
}

/** Option value parsers (commander turns their InvalidArgumentError into "--flag must be …, got "x""). */
export function number(v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('must be a number');
  return n;
}

export function integer(v: string): number {
  const n = number(v);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('must be an integer');
  return n;
}

/** A number parser that also checks a range: `ranged('in 0..2', (n) => n >= 0 && n <= 2)`. */
export function ranged(what: string, ok: (n: number) => boolean, parse: (v: string) => number = number): (v: string) => number {
  return (v) => {
    const n = parse(v);
    if (!ok(n)) throw new InvalidArgumentError(`must be ${what}`);
    return n;
  };
}

export function positiveInteger(v: string): number {
  const n = integer(v);
  if (n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

// ---- for bench/ scripts only (the commands use commander above) ----------------------------------------

export interface FlagSpec {
  [name: string]: { type: 'string' | 'number' | 'boolean'; default?: string | number | boolean; help?: string };
}

export type Parsed<S extends FlagSpec> = { [K in keyof S]: S[K]['type'] extends 'number' ? number : S[K]['type'] extends 'boolean' ? boolean : string } & {
  _: string[];
};

/** A tiny flag parser (--name value, --name=value, boolean --flag / --no-flag, positionals; unknown flags refused). */
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
