// `alignlab pull`'s download code against a loopback hub that serves files made here (no network).
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fnmatch, hubEnv, pull, repoFolder, resolveModelRef, type HubEnv } from '../../src/formats/hub.js';
import { loadHFDir, saveHFDir } from '../../src/formats/hf.js';
import { readGGUF, writeGGUF } from '../../src/formats/gguf.js';
import { byteLevelTokenizerJson } from '../../src/formats/tokenizer.js';
import { tinyConfig } from '../../src/formats/config.js';
import { startFakeHub, sha256, gitSha1, type FakeHub, type HubFile } from '../helpers/hub-server.js';
import { randomParams, tmp } from './helpers.js';

const COMMIT = 'a'.repeat(8) + '0123456789abcdef0123456789abcdef';
let hub: FakeHub;
let files: HubFile[];
let modelDir: string;

before(async () => {
  const cfg = tinyConfig('llama', { vocabSize: 257 });
  const params = randomParams(cfg, 5);
  modelDir = tmp('hub-src');
  const tokenizerJson = byteLevelTokenizerJson();
  await saveHFDir(modelDir, { config: cfg, params, tokenizerJson });
  writeGGUF(join(modelDir, 'model-f32.gguf'), { config: cfg, params, tokenizerJson });
  files = readdirSync(modelDir).map((f) => ({ path: f, data: readFileSync(join(modelDir, f)), lfs: /\.(safetensors|gguf)$/.test(f) }));
  files.push({ path: 'docs/README.md', data: Buffer.from('# a tiny model\n') });
  hub = await startFakeHub([
    { id: 'tiny-org/tiny-llama', commit: COMMIT, files, refs: ['v1'] },
    { id: 'gated-org/tiny-llama', commit: COMMIT, files, token: 'hf_secret' },
  ]);
});
after(() => hub.close());

const envFor = (over: Partial<HubEnv> = {}): HubEnv => ({ endpoint: hub.endpoint, cacheDir: join(tmp('hub-cache'), 'hub'), ...over });
const cdnGets = () => hub.requests.filter((r) => r.server === 'cdn' && r.method === 'GET').length;

test('hubEnv honours HF_ENDPOINT, HF_HOME, HF_HUB_CACHE and HF_TOKEN with the hub client defaults', () => {
  const e = hubEnv({ HF_HOME: '/x/hf', HF_ENDPOINT: 'http://127.0.0.1:9/', HF_TOKEN: 't' });
  assert.deepEqual(e, { endpoint: 'http://127.0.0.1:9', cacheDir: '/x/hf/hub', token: 't' });
  assert.equal(hubEnv({ HF_HOME: '/x/hf', HF_HUB_CACHE: '/c' }).cacheDir, '/c');
  assert.equal(hubEnv({ XDG_CACHE_HOME: '/xdg' }).cacheDir, '/xdg/huggingface/hub');
  assert.equal(hubEnv({}).endpoint, 'https://huggingface.co');
});

test('fnmatch selects files as the hub client does: * crosses folders, ? one character, [!set]', () => {
  assert.ok(fnmatch('model.safetensors', '*.safetensors'));
  assert.ok(fnmatch('sub/model.safetensors', '*.safetensors'));
  assert.ok(!fnmatch('model.safetensors.index.json', '*.safetensors'));
  assert.ok(fnmatch('model-q4.gguf', 'model-q?.gguf'));
  assert.ok(!fnmatch('model-q4.gguf', 'model-q[!4].gguf'));
  assert.ok(fnmatch('a.b', 'a.b') && !fnmatch('axb', 'a.b'));
});

test('pull lays out the cache like huggingface_hub: refs, blobs named by ETag, relative snapshot links', async () => {
  const env = envFor();
  const r = await pull('tiny-org/tiny-llama', { env });
  const root = repoFolder(env.cacheDir, 'tiny-org/tiny-llama');
  assert.equal(r.commit, COMMIT);
  assert.equal(r.snapshot, join(root, 'snapshots', COMMIT));
  assert.equal(readFileSync(join(root, 'refs', 'main'), 'utf-8'), COMMIT);
  for (const f of files) {
    const link = join(r.snapshot, f.path);
    assert.ok(lstatSync(link).isSymbolicLink(), `${f.path} is a link`);
    const target = readlinkSync(link);
    assert.ok(!target.startsWith('/'), `${f.path}: link is relative (${target})`);
    assert.equal(target.split('/').pop(), f.lfs ? sha256(f.data) : gitSha1(f.data), `${f.path}: blob named by its ETag`);
    assert.ok(readFileSync(link).equals(f.data), `${f.path}: same bytes`);
  }
  assert.deepEqual(readdirSync(join(root, 'blobs')).filter((b) => b.endsWith('.incomplete')), []);
});

test('a pulled repo id loads where a model directory does, and org/name/file.gguf names a pulled GGUF', async () => {
  const env = envFor();
  await pull('tiny-org/tiny-llama', { env, include: ['*.gguf', '*.json', '*.safetensors'] });
  const fromHub = await loadHFDir(resolveModelRef('tiny-org/tiny-llama', env));
  const local = await loadHFDir(modelDir);
  assert.deepEqual(fromHub.config, local.config);
  assert.deepEqual([...fromHub.params.wte!.data].slice(0, 50), [...local.params.wte!.data].slice(0, 50));
  const gguf = resolveModelRef('tiny-org/tiny-llama/model-f32.gguf', env);
  assert.equal(readGGUF(gguf, { data: false }).tensors.length > 0, true);
  assert.equal(resolveModelRef('tiny-org/tiny-llama@main', env), resolveModelRef('tiny-org/tiny-llama', env));
  assert.equal(resolveModelRef(modelDir, env), modelDir, 'an existing path is used as it is');
  assert.throws(() => resolveModelRef('tiny-org/never-pulled', env), /run: alignlab pull tiny-org\/never-pulled/);
});

test('--include pulls only the matching files; a pattern matching nothing is an error listing the files', async () => {
  const env = envFor();
  const r = await pull('tiny-org/tiny-llama', { env, include: ['*.gguf'] });
  assert.deepEqual(r.files.map((f) => f.path), ['model-f32.gguf']);
  assert.ok(!existsSync(join(r.snapshot, 'config.json')));
  await assert.rejects(pull('tiny-org/tiny-llama', { env, include: ['*.bin'] }), /no file matches "\*\.bin" \(the repository has \d+: /);
});

test('a second pull is served from the cache (no transfer); a branch or tag records its ref', async () => {
  const env = envFor();
  await pull('tiny-org/tiny-llama', { env });
  const before = cdnGets();
  const again = await pull('tiny-org/tiny-llama', { env, revision: 'v1' });
  assert.equal(cdnGets(), before, 'no CDN download the second time');
  assert.ok(again.files.every((f) => f.cached));
  assert.equal(readFileSync(join(repoFolder(env.cacheDir, 'tiny-org/tiny-llama'), 'refs', 'v1'), 'utf-8'), COMMIT);
});

test('an interrupted download is resumed with a Range request and checked by sha256', async () => {
  const env = envFor();
  const st = files.find((f) => f.path === 'model.safetensors')!;
  const sha = sha256(st.data);
  const half = st.data.length >> 1;
  hub.cutAfter.set(sha, half);
  await assert.rejects(pull('tiny-org/tiny-llama', { env, include: ['model.safetensors'] }), /tiny-org\/tiny-llama\/model.safetensors: .*run the same command again to resume/);
  const partial = join(repoFolder(env.cacheDir, 'tiny-org/tiny-llama'), 'blobs', `${sha}.incomplete`);
  assert.equal(statSync(partial).size, half, 'the received half is kept');
  const n = hub.requests.length;
  const lines: string[] = [];
  const r = await pull('tiny-org/tiny-llama', { env, include: ['model.safetensors'], log: (l) => lines.push(l) });
  const resumed = hub.requests.slice(n).find((q) => q.server === 'cdn' && q.method === 'GET');
  assert.equal(resumed?.headers.range, `bytes=${half}-`);
  assert.ok(lines.some((l) => l.includes(`resuming at ${half} of ${st.data.length} bytes`)), lines.join('\n'));
  assert.ok(readFileSync(join(r.snapshot, 'model.safetensors')).equals(st.data));
  assert.ok(!existsSync(partial));
});

test('content that does not match its checksum is refused and nothing enters the cache', async () => {
  const env = envFor();
  const g = files.find((f) => f.path === 'model-f32.gguf')!;
  const sha = sha256(g.data);
  hub.corrupt.add(sha);
  try {
    await assert.rejects(pull('tiny-org/tiny-llama', { env, include: ['*.gguf'] }), new RegExp(`model-f32.gguf: content does not match its checksum ${sha}`));
  } finally {
    hub.corrupt.delete(sha);
  }
  const root = repoFolder(env.cacheDir, 'tiny-org/tiny-llama');
  assert.deepEqual(readdirSync(join(root, 'blobs')), []);
  assert.ok(!existsSync(join(root, 'snapshots', COMMIT, 'model-f32.gguf')));
});

test('a git-stored file whose bytes do not match its git sha1 ETag is refused too', async () => {
  // Same check for small files: serve a repo whose config.json changes after its ETag was computed.
  const env = envFor();
  const cfgFile = files.find((f) => f.path === 'config.json')!;
  const original = Buffer.from(cfgFile.data);
  const lying = await startFakeHub([{ id: 'x/y', commit: COMMIT, files: [cfgFile] }]);
  try {
    // The fake hub computes the ETag per request from the same buffer, so flip a byte between HEAD and GET.
    const orig = lying.requests.push.bind(lying.requests);
    lying.requests.push = (r) => {
      if (r.method === 'GET' && r.url.includes('/resolve/')) cfgFile.data[0] ^= 0x01;
      return orig(r);
    };
    await assert.rejects(pull('x/y', { env: { ...env, endpoint: lying.endpoint } }), /config.json: content does not match its checksum [0-9a-f]{40}/);
  } finally {
    cfgFile.data.set(original);
    await lying.close();
  }
});

test('a gated repo needs HF_TOKEN: without it the error says so; the token goes to the hub but never to the CDN', async () => {
  await assert.rejects(pull('gated-org/tiny-llama', { env: envFor() }), /HTTP 401: gated-org\/tiny-llama is private or gated; set HF_TOKEN/);
  const n = hub.requests.length;
  await pull('gated-org/tiny-llama', { env: envFor({ token: 'hf_secret' }), include: ['model.safetensors', 'config.json'] });
  const seen = hub.requests.slice(n);
  assert.ok(seen.filter((q) => q.server === 'hub').every((q) => q.headers.authorization === 'Bearer hf_secret'));
  const cdn = seen.filter((q) => q.server === 'cdn');
  assert.ok(cdn.length > 0 && cdn.every((q) => q.headers.authorization === undefined), 'no token sent to the CDN');
});

test('a renamed repository is followed through its relative redirect; unknown repos and revisions fail clearly', async () => {
  hub.renamed.set('old-org/tiny-llama', 'tiny-org/tiny-llama');
  const env = envFor();
  // The listing of the old name redirects too; fetch follows that, and the resolve HEADs follow it by hand.
  const r = await pull('old-org/tiny-llama', { env, include: ['config.json'] });
  assert.ok(readFileSync(join(r.snapshot, 'config.json')).equals(files.find((f) => f.path === 'config.json')!.data));
  await assert.rejects(pull('nobody/nothing', { env }), /nobody\/nothing@main: HTTP 404: not found \(check the repository id and --revision\)/);
  await assert.rejects(pull('tiny-org/tiny-llama', { env, revision: 'no-such-branch' }), /HTTP 404/);
  await assert.rejects(pull('not a repo', { env }), /is not a hub repository id/);
});

test('a server that never answers fails after the stall timeout instead of hanging', async () => {
  const { createServer } = await import('node:http');
  const silent = createServer(() => {});
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as { port: number }).port;
  const t0 = Date.now();
  try {
    await assert.rejects(pull('a/b', { env: envFor({ endpoint: `http://127.0.0.1:${port}` }), stallTimeout: 0.5 }), /a\/b@main: no answer for 0.5 s/);
    assert.ok(Date.now() - t0 < 10_000);
  } finally {
    silent.closeAllConnections();
    silent.close();
  }
});

test('an existing file path is never mistaken for a repo id', () => {
  const d = tmp('hub-local');
  writeFileSync(join(d, 'x.gguf'), 'x');
  assert.equal(resolveModelRef(join(d, 'x.gguf')), join(d, 'x.gguf'));
});
