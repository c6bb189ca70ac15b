// Ctrl-C and SIGTERM for the long commands (train, study, eval). The first signal asks the command to
// stop at a safe point and keep what it has (a checkpoint, finished runs, cached answers); a second one
// quits at once. Either way the exit code is the shell's for that signal: 128 + its number.
export const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
type StopSignal = keyof typeof SIGNAL_EXIT_CODES;

export interface Interrupts {
  /** Aborted on the first signal. */
  signal: AbortSignal;
  /** 130 / 143 once a signal arrived, else undefined. */
  exitCode(): number | undefined;
  /** Removes the handlers (then signals get Node's default behaviour again). */
  dispose(): void;
}

/**
 * Installs SIGINT/SIGTERM handlers. `first(sig)` is the line printed on the first signal. With
 * `exitAtOnce` the first signal ends the process too: for commands whose every result is written
 * synchronously and atomically as it is produced (study runs, eval answers), so no handler can run in
 * the middle of a write and nothing finished is lost. `quiet`: print nothing (a study's helper processes, whose
 * main process speaks for them).
 */
export function interrupts(first: (sig: StopSignal) => string, o: { exitAtOnce?: boolean; quiet?: boolean } = {}): Interrupts {
  const ctl = new AbortController();
  let got: StopSignal | undefined;
  const onSignal = (sig: StopSignal) => {
    if (got !== undefined) {
      process.stderr.write(`\n${sig} again: quitting now\n`);
      process.exit(SIGNAL_EXIT_CODES[sig]);
    }
    got = sig;
    if (!o.quiet) process.stderr.write(`\n${first(sig)}\n`);
    ctl.abort(new Error(`stopped by ${sig}`));
    if (o.exitAtOnce) process.exit(SIGNAL_EXIT_CODES[sig]);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: ctl.signal,
    exitCode: () => (got === undefined ? undefined : SIGNAL_EXIT_CODES[got]),
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}
