// The project's one error vocabulary for bad input: a config that says something wrong (ConfigError) and
// data that is wrong (DataError). Both carry where the problem is — file, 1-based line when known, field
// when known — and why, and print as one line: `file:line: field "name" why`. They live in formats/, the
// lowest folder that reads user files, so every folder above may throw and catch the same classes.
//
//   new DataError(file, line, field, why)     e.g. d.jsonl:7: field "chosen" must be a string
//   new ConfigError(file, line, field, why)   e.g. eval.yaml:3: field "concurency" is not a known field
//   new ConfigError(file, field, why)         e.g. config.json: field "n_layer" is missing   (no line)

/** Where a problem is, and why; the message is `file[:line]: [field "name" ]why`. */
abstract class InputError extends Error {
  readonly file: string;
  readonly line: number | null;
  readonly field: string | null;
  readonly why: string;
  constructor(file: string, line: number | null, field: string | null, why: string) {
    super(`${file}${line !== null ? `:${line}` : ''}: ${field !== null ? `field "${field}" ` : ''}${why}`);
    this.file = file;
    this.line = line;
    this.field = field;
    this.why = why;
  }
}

/** A configuration file (YAML, JSON, config.json of a model) says something we cannot use. */
export class ConfigError extends InputError {
  constructor(file: string, field: string | null, why: string);
  constructor(file: string, line: number | null, field: string | null, why: string);
  constructor(file: string, a: number | string | null, b: string | null, c?: string) {
    // Three arguments: (file, field, why), for files where lines mean nothing (a parsed config.json).
    if (c === undefined) super(file, null, a as string | null, b as string);
    else super(file, a as number | null, b, c);
    this.name = 'ConfigError';
  }
}

/** A data file (JSONL, JSON, CSV, Parquet) holds a row or value we cannot use. */
export class DataError extends InputError {
  constructor(file: string, line: number | null, field: string | null, why: string) {
    super(file, line, field, why);
    this.name = 'DataError';
  }
}
