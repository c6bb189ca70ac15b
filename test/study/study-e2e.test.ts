// The main job end to end: `alignlab study --quick` on the embedded default data, interrupted once and
// resumed. Checks the outputs a user reads (report.md, report.html with inline SVG charts) and that a
// resumed study keeps the runs it had finished.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const root = mkdtempSync(join(tmpdir(), 'alignlab-study-'));
const out = join(root, 'out'), cache = join(root, 'cache');
const args = ['--import', 'tsx', 'src/cli/entry.ts', 'study', '--quick', '--out', out, '--cache', cache];

function runStudy(killWhen?: () => boolean): Promise<{ code: number | null; log: string; killed: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '', killed = false;
    const onData = (d: Buffer) => {
      log += d.toString();
      if (killWhen && !killed && killWhen()) {
        killed = true;
        child.kill('SIGKILL');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('close', (code) => resolve({ code, log, killed }));
  });
}

const runFiles = () => (existsSync(join(out, 'runs')) ? readdirSync(join(out, 'runs')).filter((f) => f.endsWith('.json')) : []);

test('alignlab study --quick: interrupted, resumed, and reported', { timeout: 20 * 60_000 }, async () => {
  // Kill the study as soon as its first run is written.
  const first = await runStudy(() => runFiles().length >= 1);
  assert.ok(first.killed, `the study ended before it could be interrupted:\n${first.log}`);
  const kept = runFiles();
  assert.ok(kept.length >= 1);
  const before = Object.fromEntries(kept.map((f) => [f, statSync(join(out, 'runs', f)).mtimeMs]));

  const second = await runStudy();
  assert.equal(second.code, 0, second.log);
  for (const f of kept) {
    assert.match(second.log, new RegExp(`${f.replace('.json', '').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: finished earlier, kept`));
    assert.equal(statSync(join(out, 'runs', f)).mtimeMs, before[f], `${f} was rewritten`);
  }
  assert.match(second.log, /base policy: loaded from/, 'the cached base policy is reused');

  const md = readFileSync(join(out, 'report.md'), 'utf-8');
  assert.match(md, /\| Criteria \| DPO \| PPO/);
  for (const h of ['Recommendation', 'frontier', 'Stability', 'Cost', 'Complexity', 'Samples']) assert.match(md, new RegExp(h, 'i'), `report.md has ${h}`);
  const html = readFileSync(join(out, 'report.html'), 'utf-8');
  assert.ok(!/<script\b[^>]*\bsrc=|https?:\/\/cdn/i.test(html), 'no external scripts');
  for (const chart of ['frontier', 'matched-kl', 'learning-curves']) {
    assert.ok(existsSync(join(out, `${chart}.svg`)), `${chart}.svg`);
    assert.ok(existsSync(join(out, `${chart}.vl.json`)), `${chart}.vl.json`);
  }
  assert.ok((html.match(/<svg\b/g) ?? []).length >= 3, 'three inline SVG charts');
  for (const id of ['criteria', 'per-method', 'matched-kl', 'stability', 'cost', 'complexity', 'samples', 'provenance']) assert.match(html, new RegExp(`id="${id}"`), `table ${id}`);

  // Every planned method produced a finished run with checkpoints and a measured cost.
  const runs = runFiles().map((f) => JSON.parse(readFileSync(join(out, 'runs', f), 'utf-8')) as { method: string; status: string; checkpoints: unknown[]; cost: { wallSeconds: number } });
  for (const m of ['dpo', 'ppo', 'ppo-gt', 'best-of-n']) assert.ok(runs.some((r) => r.method === m), `a ${m} run`);
  for (const r of runs) {
    assert.ok(r.checkpoints.length >= 2, `${r.method} has checkpoints`);
    assert.ok(r.cost.wallSeconds > 0);
  }
  // Trained policies are ordinary model directories, ready for `alignlab eval` / `serve` / `export`.
  for (const m of ['dpo', 'ppo', 'ppo-gt']) {
    const dir = readdirSync(join(out, 'models')).find((d) => d.startsWith(`${m}-`));
    assert.ok(dir, `a saved ${m} policy`);
    for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) assert.ok(existsSync(join(out, 'models', dir!, f)), `${dir}/${f}`);
  }
});
