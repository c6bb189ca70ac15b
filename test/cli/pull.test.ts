// `alignlab pull` as a user runs it, against a loopback hub (HF_ENDPOINT) and a private cache (HF_HOME):
// the snapshot path on stdout, then the repo id accepted where a model directory is.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { saveHFDir } from '../../src/formats/hf.js';
import { byteLevelTokenizerJson } from '../../src/formats/tokenizer.js';
import { tinyConfig } from '../../src/formats/config.js';
import { startFakeHub, type FakeHub } from '../helpers/hub-server.js';
import { randomParams, tmp } from '../formats/helpers.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const COMMIT = '0123456789abcdef0123456789abcdef01234567';
let hub: FakeHub;

before(async () => {
  const dir = tmp('pull-src');
  const cfg = tinyConfig('qwen2', { vocabSize: 257 });
  await saveHFDir(dir, { config: cfg, params: randomParams(cfg, 2), tokenizerJson: byteLevelTokenizerJson() });
  const files = readdirSync(dir).map((f) => ({ path: f, data: readFileSync(join(dir, f)), lfs: f.endsWith('.safetensors') }));
  hub = await startFakeHub([{ id: 'tiny-org/tiny-qwen', commit: COMMIT, files }]);
});
after(() => hub.close());

function alignlab(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const e: NodeJS.ProcessEnv = { ...process.env, HF_TOKEN: '', ...env };
    delete e.HF_HUB_CACHE; // the cache must be the one under this test's HF_HOME
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/entry.ts', ...args], { cwd: ROOT, env: e });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', fail);
    child.on('close', (code) => done({ code, stdout, stderr }));
  });
}

test('alignlab pull prints the snapshot; inspect then takes the repo id; a second pull downloads nothing', async () => {
  const home = tmp('pull-home');
  const env = { HF_ENDPOINT: hub.endpoint, HF_HOME: home };
  const r = await alignlab(['pull', 'tiny-org/tiny-qwen'], env);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), join(home, 'hub', 'models--tiny-org--tiny-qwen', 'snapshots', COMMIT));
  assert.match(r.stderr, /files, .* MB, \d+ downloaded, 0 already cached/);
  const info = await alignlab(['inspect', '--model', 'tiny-org/tiny-qwen', '--json'], env);
  assert.equal(info.code, 0, info.stderr);
  assert.equal(JSON.parse(info.stdout).architecture, 'qwen2');
  const again = await alignlab(['pull', 'tiny-org/tiny-qwen'], env);
  assert.match(again.stderr, / 0 downloaded, \d+ already cached/);
});

test('alignlab pull: an unknown repo is one line with exit 1; a model id never pulled names the pull command', async () => {
  const env = { HF_ENDPOINT: hub.endpoint, HF_HOME: tmp('pull-home2') };
  const r = await alignlab(['pull', 'nobody/nothing'], env);
  assert.equal(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^alignlab pull: nobody\/nothing@main: HTTP 404/);
  const i = await alignlab(['inspect', '--model', 'nobody/nothing'], env);
  assert.equal(i.code, 1);
  assert.match(i.stderr, /run: alignlab pull nobody\/nothing/);
  const help = await alignlab(['pull', '--help'], env);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: alignlab pull/);
});
