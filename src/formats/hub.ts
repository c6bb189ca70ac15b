// Model repositories from the Hugging Face hub, cached the way huggingface_hub caches them, so a model pulled
// here is found by transformers and vice versa:
//
//   $HF_HUB_CACHE (default $HF_HOME/hub, $HF_HOME default ~/.cache/huggingface)
//     models--<org>--<name>/
//       refs/<revision>            the commit a branch or tag pointed to when it was pulled
//       blobs/<etag>               file contents, named by their ETag (sha256 for LFS files, git blob sha1 otherwise)
//       blobs/<etag>.incomplete    a partial download, resumed with an HTTP Range request
//       snapshots/<commit>/<path>  a relative symlink to ../../blobs/<etag>
//
// The protocol is the hub's: the file list and commit come from GET /api/models/<repo>/revision/<rev>; each file's
// metadata from a HEAD of /<repo>/resolve/<commit>/<path> without following redirects to a CDN (X-Linked-Etag and
// X-Linked-Size describe the LFS object; X-Repo-Commit the commit; a relative redirect means a renamed repository
// and is followed). Every blob is checked before it enters the cache: its size, then its hash against the ETag.

import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { createReadStream, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { Readable } from 'node:stream';

export interface HubEnv {
  /** Base URL of the hub (HF_ENDPOINT). */
  endpoint: string;
  /** The cache root (HF_HUB_CACHE, else $HF_HOME/hub). */
  cacheDir: string;
  /** Bearer token (HF_TOKEN, else the file $HF_HOME/token that `huggingface-cli login` writes). */
  token?: string;
}

/** The hub settings from the environment, with huggingface_hub's defaults and variable names. */
export function hubEnv(env: NodeJS.ProcessEnv = process.env): HubEnv {
  const home = env.HF_HOME ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'huggingface');
  const tokenFile = join(home, 'token');
  const token = env.HF_TOKEN || (existsSync(tokenFile) ? readFileSync(tokenFile, 'utf-8').trim() : undefined) || undefined;
  return { endpoint: (env.HF_ENDPOINT ?? 'https://huggingface.co').replace(/\/+$/, ''), cacheDir: env.HF_HUB_CACHE ?? join(home, 'hub'), token };
}

/** `org/name`, as the hub spells repository ids (letters, digits, `-`, `_`, `.`). */
const REPO_ID = /^[A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*$/;

export function isRepoId(s: string): boolean {
  return REPO_ID.test(s) && !s.includes('..');
}

/** The cache folder of a model repository: models--<org>--<name>. */
export function repoFolder(cacheDir: string, repoId: string): string {
  return join(cacheDir, `models--${repoId.replace('/', '--')}`);
}

/**
 * Python's fnmatch, which huggingface_hub uses for allow patterns: `*` matches any run of characters, `/` included
 * (so `*.safetensors` also matches files in subfolders), `?` one character, `[seq]`/`[!seq]` a set. A glob library
 * would treat `/` specially and select different files than the hub's own client for the same pattern.
 */
export function fnmatch(name: string, pattern: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let set = pattern.slice(i + 1, end).replace(/\\/g, '\\\\');
        if (set.startsWith('!')) set = '^' + set.slice(1);
        re += `[${set}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's').test(name);
}

/** ETags arrive quoted and sometimes weak (W/"…"): the cache names blobs by the bare value. */
export function normalizeEtag(e: string | null): string | null {
  return e === null ? null : e.replace(/^W\//, '').replace(/^"|"$/g, '');
}

/** The hash an ETag promises: sha256 of the content for LFS objects, the git blob sha1 for files kept in git. */
export async function contentMatchesEtag(file: string, etag: string): Promise<boolean> {
  let h;
  if (/^[0-9a-f]{64}$/.test(etag)) h = createHash('sha256');
  else if (/^[0-9a-f]{40}$/.test(etag)) {
    h = createHash('sha1');
    h.update(`blob ${statSync(file).size}\0`);
  } else return true; // an ETag that is not a content hash (some mirrors): the size check is all we can do
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex') === etag;
}

export interface PullOptions {
  /** Branch, tag or commit; default `main`. */
  revision?: string;
  /** fnmatch patterns; a file is pulled when any matches. Default: every file. */
  include?: string[];
  env?: HubEnv;
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** Seconds without a byte before a request is abandoned (default 60). */
  stallTimeout?: number;
}

export interface PullResult {
  repoId: string;
  commit: string;
  /** snapshots/<commit>: an ordinary model directory. */
  snapshot: string;
  files: { path: string; size: number; cached: boolean }[];
}

class HubError extends Error {}

function headers(env: HubEnv, extra: Record<string, string> = {}): Record<string, string> {
  return { 'user-agent': 'alignlab', ...(env.token ? { authorization: `Bearer ${env.token}` } : {}), ...extra };
}

/** One line for an HTTP failure, in the words a user can act on. */
function httpError(what: string, status: number, repoId: string, env: HubEnv): HubError {
  if (status === 401 || status === 403)
    return new HubError(`${what}: HTTP ${status}: ${repoId} is private or gated${env.token ? ' and HF_TOKEN does not grant access' : '; set HF_TOKEN'}`);
  if (status === 404) return new HubError(`${what}: HTTP 404: not found (check the repository id and --revision)`);
  return new HubError(`${what}: HTTP ${status}`);
}

/**
 * fetch with a stall timeout: the request is abandoned when no byte has arrived for `stallTimeout` seconds
 * (a total timeout would cut off a large download that is progressing). `touch()` restarts the clock.
 */
async function request(url: string, init: RequestInit, what: string, o: PullOptions): Promise<{ r: Response; touch: () => void; done: () => void }> {
  const ms = (o.stallTimeout ?? 60) * 1000;
  const ctl = new AbortController();
  let timer = setTimeout(() => ctl.abort(), ms);
  const touch = () => {
    clearTimeout(timer);
    timer = setTimeout(() => ctl.abort(), ms);
  };
  const done = () => clearTimeout(timer);
  try {
    const r = await fetch(url, { ...init, signal: o.signal ? AbortSignal.any([o.signal, ctl.signal]) : ctl.signal });
    touch();
    return { r, touch, done };
  } catch (e) {
    done();
    if (o.signal?.aborted) throw e;
    if (ctl.signal.aborted) throw new HubError(`${what}: no answer for ${ms / 1000} s`);
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new HubError(`${what}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
  }
}

/** HEAD a file's resolve URL: its ETag, size, commit, and where the bytes are (the hub, or a CDN it redirects to). */
async function fileMetadata(env: HubEnv, repoId: string, commit: string, path: string, o: PullOptions) {
  let url = `${env.endpoint}/${repoId}/resolve/${encodeURIComponent(commit)}/${path.split('/').map(encodeURIComponent).join('/')}`;
  for (let hops = 0; ; hops++) {
    const { r, done } = await request(url, { method: 'HEAD', redirect: 'manual', headers: headers(env, { 'accept-encoding': 'identity' }) }, `${repoId}/${path}`, o);
    done();
    const location = r.headers.get('location');
    if (r.status >= 300 && r.status < 400 && location) {
      const target = new URL(location, url);
      // Same host: a renamed repository; follow it. Another host: the CDN holding an LFS object; read the metadata here.
      if (target.host === new URL(url).host && hops < 5 && !r.headers.get('x-linked-etag')) {
        url = target.href;
        continue;
      }
      return describe(r, target.href);
    }
    if (!r.ok) throw httpError(`${repoId}/${path}`, r.status, repoId, env);
    return describe(r, url);
  }
  function describe(r: Response, download: string) {
    const etag = normalizeEtag(r.headers.get('x-linked-etag') ?? r.headers.get('etag'));
    const size = Number(r.headers.get('x-linked-size') ?? r.headers.get('content-length'));
    if (!etag) throw new HubError(`${repoId}/${path}: the server sent no ETag, so the file cannot be checked or cached`);
    if (!Number.isFinite(size)) throw new HubError(`${repoId}/${path}: the server sent no size`);
    return { etag, size, download, commit: r.headers.get('x-repo-commit') };
  }
}

/** Download `url` into `blob`, resuming `blob.incomplete`; the result is checked against size and ETag before it is kept. */
async function downloadBlob(env: HubEnv, url: string, blob: string, etag: string, size: number, label: string, o: PullOptions): Promise<void> {
  const partial = `${blob}.incomplete`;
  const have = existsSync(partial) ? statSync(partial).size : 0;
  const sameHost = new URL(url).host === new URL(env.endpoint).host;
  // Never send the token to a CDN: its signed URL is the credential (as huggingface_hub does).
  const h: Record<string, string> = sameHost ? headers(env, { 'accept-encoding': 'identity' }) : { 'accept-encoding': 'identity' };
  if (have > 0 && have < size) h.range = `bytes=${have}-`;
  const { r, touch, done } = await request(url, { headers: h }, label, o);
  try {
    if (r.status === 416 && have === size) await r.body?.cancel();
    else {
      if (!r.ok || !r.body) throw httpError(label, r.status, label, env);
      const append = r.status === 206;
      if (have > 0) o.log?.(`${label}: ${append ? `resuming at ${have} of ${size} bytes` : 'the server ignored the range; downloading again'}`);
      // Written chunk by chunk, so whatever arrived before a failure stays on disk for the next resume.
      const out = await open(partial, append ? 'a' : 'w');
      try {
        for await (const chunk of Readable.fromWeb(r.body as import('node:stream/web').ReadableStream)) {
          touch();
          await out.write(chunk as Uint8Array);
        }
      } catch (e) {
        throw o.signal?.aborted ? e : new HubError(`${label}: download interrupted (${(e as Error).message}); run the same command again to resume`);
      } finally {
        await out.close();
      }
    }
  } finally {
    done();
  }
  const got = statSync(partial).size;
  if (got !== size) {
    if (got > size) rmSync(partial);
    throw new HubError(`${label}: received ${got} of ${size} bytes${got < size ? ' (run the same command again to resume)' : ''}`);
  }
  if (!(await contentMatchesEtag(partial, etag))) {
    rmSync(partial);
    throw new HubError(`${label}: content does not match its checksum ${etag}; the partial file was removed`);
  }
  renameSync(partial, blob);
}

/** Pull a model repository (or the files matching --include) into the hub cache; returns its snapshot directory. */
export async function pull(repoId: string, o: PullOptions = {}): Promise<PullResult> {
  if (!isRepoId(repoId)) throw new HubError(`"${repoId}" is not a hub repository id (expected org/name, e.g. openai-community/gpt2)`);
  const env = o.env ?? hubEnv();
  const revision = o.revision ?? 'main';
  const infoUrl = `${env.endpoint}/api/models/${repoId}/revision/${encodeURIComponent(revision)}`;
  const { r, done } = await request(infoUrl, { headers: headers(env) }, `${repoId}@${revision}`, o);
  let info: { sha?: unknown; siblings?: { rfilename?: unknown }[] };
  try {
    if (!r.ok) throw httpError(`${repoId}@${revision}`, r.status, repoId, env);
    info = (await r.json()) as typeof info;
  } catch (e) {
    throw e instanceof HubError ? e : new HubError(`${infoUrl}: the answer is not JSON`);
  } finally {
    done();
  }
  if (typeof info.sha !== 'string' || !Array.isArray(info.siblings))
    throw new HubError(`${infoUrl}: the answer has no "sha" or "siblings" field`);
  const commit = info.sha;
  const all = info.siblings.map((s) => s.rfilename).filter((p): p is string => typeof p === 'string');
  const wanted = o.include?.length ? all.filter((p) => o.include!.some((g) => fnmatch(p, g))) : all;
  if (wanted.length === 0)
    throw new HubError(`${repoId}@${revision}: no file matches ${o.include!.map((g) => `"${g}"`).join(', ')} (the repository has ${all.length}: ${all.slice(0, 8).join(', ')}${all.length > 8 ? ', …' : ''})`);
  for (const p of wanted) if (p.split('/').some((s) => s === '..' || s === '')) throw new HubError(`${repoId}: refusing the unsafe file name "${p}"`);

  const root = repoFolder(env.cacheDir, repoId);
  const snapshot = join(root, 'snapshots', commit);
  mkdirSync(join(root, 'blobs'), { recursive: true });
  if (revision !== commit) {
    mkdirSync(join(root, 'refs'), { recursive: true });
    writeFileSync(join(root, 'refs', revision), commit);
  }
  const files: PullResult['files'] = [];
  for (const path of wanted) {
    const link = join(snapshot, path);
    if (existsSync(link)) {
      files.push({ path, size: statSync(link).size, cached: true });
      continue;
    }
    const meta = await fileMetadata(env, repoId, commit, path, o);
    const blob = join(root, 'blobs', meta.etag);
    if (!existsSync(blob) || statSync(blob).size !== meta.size) {
      o.log?.(`${repoId}: ${path} (${meta.size} bytes)`);
      await downloadBlob(env, meta.download, blob, meta.etag, meta.size, `${repoId}/${path}`, o);
    }
    mkdirSync(dirname(link), { recursive: true });
    rmSync(link, { force: true }); // a dangling link left by a removed blob
    symlinkSync(relative(dirname(link), blob), link);
    files.push({ path, size: meta.size, cached: false });
  }
  return { repoId, commit, snapshot, files };
}

/**
 * Where a command's `--model` points: an existing path as it is; otherwise a hub id `org/name[@revision][/file]`
 * pulled earlier, resolved to its cached snapshot (or a file in it, e.g. a GGUF). Never touches the network.
 */
export function resolveModelRef(ref: string, env: HubEnv = hubEnv()): string {
  if (existsSync(ref)) return ref;
  const m = /^([A-Za-z0-9][\w.-]*\/[A-Za-z0-9][\w.-]*?)(?:@([^/]+))?(?:\/(.+))?$/.exec(ref);
  if (!m || !isRepoId(m[1])) return ref;
  const [, repoId, revision = 'main', file] = m;
  const root = repoFolder(env.cacheDir, repoId);
  const refFile = join(root, 'refs', revision);
  const commit = existsSync(refFile) ? readFileSync(refFile, 'utf-8').trim() : /^[0-9a-f]{40}$/.test(revision) ? revision : null;
  const snapshot = commit ? join(root, 'snapshots', commit) : null;
  if (!snapshot || !existsSync(snapshot))
    throw new Error(`${ref}: no such file or directory, and no pulled hub snapshot of ${repoId}@${revision} in ${env.cacheDir} (run: alignlab pull ${repoId}${revision === 'main' ? '' : ` --revision ${revision}`})`);
  const out = file ? join(snapshot, file) : snapshot;
  if (!existsSync(out)) throw new Error(`${ref}: ${file} is not in the pulled snapshot ${snapshot} (pull it with --include "${file}")`);
  return out;
}
