import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { ProgressBar, formatDuration, formatNumber } from '../../src/train/progress.js';

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  const s = new Writable({
    write(c, _e, cb) {
      chunks.push(String(c));
      cb();
    },
  }) as Writable & { isTTY?: boolean; columns?: number };
  s.isTTY = isTTY;
  s.columns = 200;
  return { s, chunks };
}

test('the bar shows steps, tokens/s, ETA and metrics, redrawing in place on a TTY', () => {
  let now = 0;
  const { s, chunks } = sink(true);
  const bar = new ProgressBar({ total: 100, start: 20, stream: s, enabled: 'auto', label: 'dpo', now: () => now });
  now = 10_000; // 10 s for 10 steps: 1 s/step, 80 steps to go
  bar.update(30, { tokens: 5000, metrics: { loss: 0.6931 } });
  assert.equal(chunks.length, 1);
  assert.equal(chunks[0], `\rdpo  30/100 ${'█'.repeat(6)}${'·'.repeat(14)} | 500 tok/s | ETA 1m10s | loss 0.6931\x1b[K`);
  now += 50;
  bar.update(31, {}); // rate-limited
  assert.equal(chunks.length, 1);
  bar.log('eval: loss 0.5');
  assert.equal(chunks[1], '\r\x1b[Keval: loss 0.5\n');
  now += 200;
  bar.update(100, {});
  bar.done();
  assert.equal(chunks.at(-1), '\n');
});

test('quiet when stderr is not a TTY (auto) or when disabled', () => {
  for (const [tty, enabled] of [[false, 'auto'], [true, false]] as const) {
    const { s, chunks } = sink(tty);
    const bar = new ProgressBar({ total: 10, stream: s, enabled });
    bar.update(5, { tokens: 10 });
    bar.log('x');
    bar.done();
    assert.equal(chunks.length, 0);
  }
  assert.equal(formatDuration(59.4), '59s');
  assert.equal(formatDuration(3725), '1h02m');
  assert.equal(formatDuration(NaN), '?');
  assert.equal(formatNumber(1234.5), '1235');
  assert.equal(formatNumber(2e-5), '2.00e-5');
});
