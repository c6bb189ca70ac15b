// Stopping a server on SIGINT / SIGTERM the way a user expects: the first signal stops taking requests (the port
// closes; requests that race it get 503) and lets the requests in flight finish, up to a grace period; a second
// signal, or the end of the grace period, cancels them (a stream then ends with an error event and [DONE]). The
// exit code is the shell's for the signal: 130 for SIGINT, 143 for SIGTERM.
import type { OpenAIServer } from './openai-server.js';

const EXIT = { SIGINT: 130, SIGTERM: 143 } as const;
type Sig = keyof typeof EXIT;

export interface StopOptions {
  /** Stop when this aborts (tests, embedding) instead of on process signals; the exit code is then undefined. */
  signal?: AbortSignal;
  /** Called once the signal handlers are in place: announce readiness here, so a signal sent on seeing the
   * announcement is never met by Node's default handler (which would kill the process mid-request). */
  onReady?: () => void;
  /** How long requests in flight may take to finish after the first signal (default 10 s). */
  graceMs?: number;
  log?: (line: string) => void;
}

/** Serves until a signal (or `signal`) arrives, then stops as above. Resolves with 130 / 143, or undefined. */
export async function serveUntilStopped(server: OpenAIServer, o: StopOptions = {}): Promise<number | undefined> {
  const log = o.log ?? (() => {});
  const graceMs = o.graceMs ?? 10_000;
  let handler: ((s: Sig) => void) | undefined;
  const got = await new Promise<Sig | undefined>((resolve) => {
    if (o.signal) {
      o.onReady?.();
      if (o.signal.aborted) return resolve(undefined);
      o.signal.addEventListener('abort', () => resolve(undefined), { once: true });
      return;
    }
    handler = (s) => resolve(s);
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
    o.onReady?.();
  });
  const busy = server.queue.active + server.queue.depth;
  if (got) log(`${got}: not taking new requests${busy ? `; letting ${busy} in flight finish (up to ${graceMs / 1000} s; ${got} again cancels them)` : ''}`);
  const cancel = (why: string) => {
    log(`cancelling the requests in flight (${why})`);
    void server.close({ cancel: true });
  };
  if (handler) {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
    handler = (s) => cancel(`${s} again`);
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  }
  const timer = setTimeout(() => cancel(`${graceMs / 1000} s grace period over`), graceMs);
  try {
    await server.close();
  } finally {
    clearTimeout(timer);
    if (handler) {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    }
  }
  return got && EXIT[got];
}
