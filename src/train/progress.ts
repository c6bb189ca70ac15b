// A one-line progress bar on stderr: steps, a bar, tokens/s, ETA, and a few metrics. It redraws in
// place with \r, at most ~10 times a second, and stays silent when stderr is not a terminal (logs,
// CI, tests) or when the caller asks for quiet, so piped output never fills with bar fragments.

export interface ProgressOptions {
  total: number;
  /** Step the run starts from (a resumed run starts past 0). */
  start?: number;
  /** true: always draw; false: never; 'auto' (default): only when the stream is a TTY. */
  enabled?: boolean | 'auto';
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  label?: string;
  /** Clock in ms (tests). */
  now?: () => number;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(2);
  return x.toPrecision(4).replace(/\.?0+$/, '');
}

export class ProgressBar {
  private readonly total: number;
  private readonly start: number;
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  readonly enabled: boolean;
  private readonly label: string;
  private readonly now: () => number;
  private readonly t0: number;
  private lastDraw = -Infinity;
  private drawn = false;

  constructor(o: ProgressOptions) {
    this.total = o.total;
    this.start = o.start ?? 0;
    this.stream = o.stream ?? process.stderr;
    const e = o.enabled ?? 'auto';
    this.enabled = e === 'auto' ? Boolean(this.stream.isTTY) : e;
    this.label = o.label ?? 'train';
    this.now = o.now ?? (() => performance.now());
    this.t0 = this.now();
  }

  /** The text of the line for `step` (exported for tests; `update` draws it). */
  line(step: number, o: { tokens?: number; metrics?: Record<string, number> } = {}): string {
    const elapsed = (this.now() - this.t0) / 1000;
    const done = step - this.start;
    const rate = done > 0 ? elapsed / done : NaN;
    const eta = rate * (this.total - step);
    const frac = this.total > 0 ? Math.min(1, step / this.total) : 1;
    const width = 20;
    const fill = Math.round(frac * width);
    const bar = '█'.repeat(fill) + '·'.repeat(width - fill);
    const parts = [`${this.label} ${String(step).padStart(String(this.total).length)}/${this.total} ${bar}`];
    if (o.tokens !== undefined && elapsed > 0) parts.push(`${formatNumber(o.tokens / elapsed)} tok/s`);
    parts.push(`ETA ${formatDuration(eta)}`);
    for (const [k, v] of Object.entries(o.metrics ?? {})) parts.push(`${k} ${formatNumber(v)}`);
    return parts.join(' | ');
  }

  /** Redraw (rate-limited; the last step always draws). `tokens` counts this session only. */
  update(step: number, o: { tokens?: number; metrics?: Record<string, number> } = {}): void {
    if (!this.enabled) return;
    const t = this.now();
    if (t - this.lastDraw < 100 && step < this.total) return;
    this.lastDraw = t;
    let text = this.line(step, o);
    const cols = this.stream.columns ?? 120;
    if (text.length > cols - 1) text = text.slice(0, cols - 1);
    this.stream.write(`\r${text}\x1b[K`);
    this.drawn = true;
  }

  /** Print a full line above the bar (warnings, eval results). */
  log(msg: string): void {
    if (!this.enabled) return;
    this.stream.write(`${this.drawn ? '\r\x1b[K' : ''}${msg}\n`);
    this.lastDraw = -Infinity;
  }

  done(): void {
    if (this.enabled && this.drawn) this.stream.write('\n');
    this.drawn = false;
  }
}
