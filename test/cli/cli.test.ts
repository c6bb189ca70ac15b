// The command line as a user meets it: --help and --version on every command, usage errors (exit 2, one
// line, the nearest flag suggested), runtime errors (exit 1, one line, no stack), a reader that goes away
// (no EPIPE stack), and the fixes of issue 10 items 8, 9 and 12 (logits without a tokenizer, generate's
// flags, length and seed, inspect reading the weights' headers, runs --status, the rloo example).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COMMANDS, run } from '../../src/cli/main.js';
import { main as initMain } from '../../src/cli/init.js';
import { expectedTensors } from '../../src/cli/inspect.js';
import { readSafetensorsHeader } from '../../src/formats/safetensors.js';
import { configFromHF, ARCHS } from '../../src/formats/config.js';
import { LM } from '../../src/model/lm.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = mkdtempSync(join(tmpdir(), 'alignlab-cli-'));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf-8')) as { version: string }).version;

/**
 * Runs `alignlab ...` in this process, capturing the text it writes. Only strings are captured: under
 * `node --test` the runner reports to its parent through this process's stdout in binary chunks, which must
 * pass through untouched.
 */
async function inProcess(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '', stderr = '';
  const [out, err, log, error] = [process.stdout.write, process.stderr.write, console.log, console.error];
  const tap = (orig: typeof out, stream: NodeJS.WriteStream, add: (s: string) => void) =>
    ((s: string | Uint8Array, ...rest: unknown[]) => (typeof s === 'string' ? (add(s), true) : (orig as (...a: unknown[]) => boolean).call(stream, s, ...rest))) as typeof out;
  process.stdout.write = tap(out, process.stdout, (s) => (stdout += s));
  process.stderr.write = tap(err, process.stderr, (s) => (stderr += s));
  console.log = (...a: unknown[]) => void (stdout += a.join(' ') + '\n');
  console.error = (...a: unknown[]) => void (stderr += a.join(' ') + '\n');
  try {
    const code = await run(argv);
    return { code, stdout, stderr };
  } finally {
    [process.stdout.write, process.stderr.write, console.log, console.error] = [out, err, log, error];
  }
}

/** Runs `alignlab ...` as a child process, as a user would. */
function child(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const c = spawn(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', ...argv], { cwd: ROOT, env: { ...process.env, ALIGNLAB_DB: join(tmp, 'store.db'), ...env } });
    let stdout = '', stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    c.on('error', fail);
    c.on('close', (code) => done({ code, stdout, stderr }));
  });
}

const model = join(tmp, 'model');
await initMain(['--arch', 'llama', '--out', model, '--layers', '1', '--hidden', '16', '--heads', '2', '--context', '32', '--seed', '5']);

test('every command the top-level help lists answers --help (its usage) and --version (package.json) with exit 0', async () => {
  const top = await inProcess(['--help']);
  assert.equal(top.code, 0);
  for (const name of Object.keys(COMMANDS)) {
    assert.match(top.stdout, new RegExp(`\\n  ${name} `), `top-level help lists ${name}`);
    const h = await inProcess([name, '--help']);
    assert.equal(h.code, 0, `${name} --help: ${h.stderr}`);
    assert.match(h.stdout, new RegExp(`^Usage: alignlab ${name} `), `${name} --help`);
    assert.match(h.stdout, /-h, --help/);
    const v = await inProcess([name, '--version']);
    assert.equal(v.code, 0);
    assert.equal(v.stdout.trim(), VERSION, `${name} --version`);
  }
  assert.equal((await inProcess(['--version'])).stdout.trim(), VERSION);
  assert.equal((await inProcess(['help', 'serve'])).stdout, (await inProcess(['serve', '--help'])).stdout);
  const serve = await inProcess(['serve', '--help']);
  assert.doesNotMatch(serve.stdout, /--help.*default/, 'no "--help (default false)"');
  assert.match(serve.stdout, /--port <n> .*\(default: 8000\)/);
});

test('usage errors exit 2 with one line that names the nearest flag or command', async () => {
  const cases: [string[], RegExp][] = [
    [['study', '--quik'], /^alignlab study: unknown flag --quik \(did you mean --quick\?\)\n$/],
    [['stdy'], /^alignlab: unknown command 'stdy' \(did you mean study\?\)/],
    [['train', 'dpo', '--confg', 'x.yaml'], /^alignlab train: unknown flag --confg \(did you mean --config\?\)\n$/],
    [['train', 'dpx'], /^alignlab train: algorithm must be one of sft, rm, dpo, ppo, grpo, rloo, got "dpx"\n$/],
    [['runs', '--status', 'bogus'], /^alignlab runs: --status must be one of running, completed, stopped, interrupted, failed, got "bogus"\n$/],
    [['generate', '--model', model, '--temperature', '-1'], /^alignlab generate: --temperature must be in 0\.\.2, got "-1"\n$/],
    [['generate', '--model', model, '--top-p', '5'], /^alignlab generate: --top-p must be in \(0, 1\], got "5"\n$/],
    [['generate', '--model', model, '--top-k', '1.5'], /^alignlab generate: --top-k must be an integer, got "1\.5"\n$/],
    [['inspect'], /^alignlab inspect: missing required flag --model\n$/],
    [['serve', '--model', model, '--port'], /^alignlab serve: flag --port needs a value\n$/],
    [['eval', '--config', 'x.yaml', 'extra'], /^alignlab eval: too many arguments/],
  ];
  for (const [argv, want] of cases) {
    const r = await inProcess(argv);
    assert.equal(r.code, 2, `${argv.join(' ')}: exit ${r.code}\n${r.stderr}`);
    assert.match(r.stderr, want, argv.join(' '));
  }
  // No command at all: the help, as a usage error.
  const none = await inProcess([]);
  assert.equal(none.code, 2);
  assert.match(none.stdout + none.stderr, /Usage: alignlab/);
});

test('a runtime error is exit 1 and one line (the stack only with ALIGNLAB_DEBUG); a reader that goes away is not an error', async () => {
  const r = await child(['inspect', '--model', join(tmp, 'nowhere')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^alignlab inspect: .*nowhere.*\n$/);
  const d = await child(['inspect', '--model', join(tmp, 'nowhere')], { ALIGNLAB_DEBUG: '1' });
  assert.match(d.stderr, /\n\s+at /, 'the stack with ALIGNLAB_DEBUG');

  // `alignlab logits … --json | head -c 10`: 200 positions × 257 logits (≈1 MB) are far more than a pipe holds.
  const wide = join(tmp, 'model-wide');
  await initMain(['--arch', 'llama', '--out', wide, '--layers', '1', '--hidden', '16', '--heads', '2', '--context', '256']);
  const ids = Array.from({ length: 200 }, (_, i) => i + 1).join(',');
  const c = spawn(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', 'logits', '--model', wide, '--ids', ids, '--json'], { cwd: ROOT });
  let stderr = '';
  c.stderr.on('data', (b) => (stderr += b));
  const head = await new Promise<string>((res) => c.stdout.once('data', (b: Buffer) => res(b.subarray(0, 10).toString())));
  c.stdout.destroy(); // what `head -c 10` does once it has its bytes
  const code = await new Promise<number | null>((res) => c.on('close', res));
  assert.equal(head, '{"ids":[1,');
  assert.doesNotMatch(stderr, /EPIPE|\n\s+at /, stderr);
  assert.equal(code, 0, stderr);
});

test('logits --ids works on a model directory without tokenizer.json, with the same logits as the full model', async () => {
  const bare = join(tmp, 'model-no-tokenizer');
  cpSync(model, bare, { recursive: true });
  rmSync(join(bare, 'tokenizer.json'));
  rmSync(join(bare, 'tokenizer_config.json'));
  const r = await inProcess(['logits', '--model', bare, '--ids', '3,1,4,1,5', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const got = JSON.parse(r.stdout) as { ids: number[]; logits: number[][] };
  assert.deepEqual(got.ids, [3, 1, 4, 1, 5]);
  const lm = await LM.load(model);
  try {
    const want = await lm.logits([3, 1, 4, 1, 5]);
    const V = lm.cfg.vocabSize;
    assert.equal(got.logits.length, 5);
    got.logits.forEach((row, t) => assert.deepEqual(Float32Array.from(row), want.subarray(t * V, (t + 1) * V), `position ${t}`));
  } finally {
    lm.dispose();
  }
  // Text needs the tokenizer: said in one line.
  const t = await inProcess(['logits', '--model', bare, '--text', 'hi']);
  assert.equal(t.code, 1);
  assert.match(t.stderr, /tokenizer\.json/);
});

test('generate: the default length is clamped to the context (and says so); without --seed a fresh seed is printed and repeats the sample', async () => {
  const lm = await LM.load(model);
  const promptTokens = lm.encode('the quick brown fox').length;
  lm.dispose();
  const room = 32 - promptTokens;
  const a = await inProcess(['generate', '--model', model, '--prompt', 'the quick brown fox', '--json']);
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stderr, new RegExp(`default 64 is clamped to ${room} \\(the model's 32 positions minus the prompt's ${promptTokens} tokens\\)`));
  const seed = /seed (\d+) \(pass --seed \1 to repeat/.exec(a.stderr);
  assert.ok(seed, a.stderr);
  const first = JSON.parse(a.stdout) as { tokenIds: number[] };
  assert.ok(first.tokenIds.length <= room);
  const b = await inProcess(['generate', '--model', model, '--prompt', 'the quick brown fox', '--json', '--seed', seed[1]!]);
  assert.equal(b.code, 0, b.stderr);
  assert.doesNotMatch(b.stderr, /^seed /m, 'a given seed is not announced');
  assert.deepEqual((JSON.parse(b.stdout) as { tokenIds: number[] }).tokenIds, first.tokenIds);
  const again = await inProcess(['generate', '--model', model, '--prompt', 'the quick brown fox', '--json']);
  assert.notEqual(/seed (\d+)/.exec(again.stderr)?.[1], seed[1], 'each run without --seed draws a fresh seed');
  // An explicit length past the context is the user's mistake, reported as such.
  const c = await inProcess(['generate', '--model', model, '--prompt', 'the quick brown fox', '--max-new-tokens', '64']);
  assert.equal(c.code, 1);
  assert.match(c.stderr, /exceed/);
});

test('inspect reads the weight headers: a truncated file and a shape that disagrees with config.json are one line naming file and tensor', async () => {
  const ok = await inProcess(['inspect', '--model', model]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /weights\s+1 file, 12 tensors \(F32\), shapes match config\.json/);

  const cut = join(tmp, 'model-truncated');
  cpSync(model, cut, { recursive: true });
  const st = join(cut, 'model.safetensors');
  truncateSync(st, statSync(st).size - 100); // an interrupted download
  const t = await inProcess(['inspect', '--model', cut]);
  assert.equal(t.code, 1);
  assert.match(t.stderr, new RegExp(`^alignlab inspect: ${st}: tensor "[^"]+" field "data_offsets" .* out of range`));

  const wrong = join(tmp, 'model-wrong-shape');
  cpSync(model, wrong, { recursive: true });
  const cfgFile = join(wrong, 'config.json');
  const cfg = JSON.parse(readFileSync(cfgFile, 'utf-8'));
  cfg.intermediate_size += 8;
  writeFileSync(cfgFile, JSON.stringify(cfg));
  const w = await inProcess(['inspect', '--model', wrong]);
  assert.equal(w.code, 1);
  assert.match(w.stderr, new RegExp(`^alignlab inspect: ${join(wrong, 'model.safetensors')}: tensor "model\\.layers\\.0\\.mlp\\.gate_proj\\.weight" has shape \\[\\d+, 16\\], but config\\.json implies \\[${cfg.intermediate_size}, 16\\]\n$`));
});

test("inspect's expected tensors are exactly what a saved model directory holds, for every architecture", async () => {
  for (const arch of ARCHS) {
    const dir = join(tmp, `arch-${arch}`);
    await initMain(['--arch', arch, '--out', dir, '--layers', '2', '--hidden', '16', '--heads', '2', '--context', '16']);
    const cfg = configFromHF(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf-8')), 'config.json');
    const saved = new Map([...readSafetensorsHeader(join(dir, 'model.safetensors')).tensors].map(([n, e]) => [n, e.shape]));
    assert.deepEqual(new Map([...expectedTensors(cfg)].sort()), new Map([...saved].sort()), arch);
  }
});

test('the README example examples/train/rloo.yaml trains two RLOO iterations and checkpoints', async () => {
  const out = join(tmp, 'rloo');
  const r = await child(['train', 'rloo', '--config', 'examples/train/rloo.yaml', '--out', out, '--stop-after', '2', '--no-progress']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /stopped at step 2 .*--resume/);
  assert.match(r.stdout, /objective\/scores/);
});
