// A loopback stand-in for the Hugging Face hub, serving files a test made, with the hub's URL layout and headers:
//   GET  /api/models/<repo>/revision/<rev>   → { id, sha, siblings: [{ rfilename }] }
//   HEAD /<repo>/resolve/<rev>/<path>        → small files: 200 with ETag = git blob sha1, X-Repo-Commit
//                                              LFS files:   302 to the CDN, X-Linked-Etag = sha256, X-Linked-Size
//   GET  /<repo>/resolve/<rev>/<path>        → the bytes (small files) or the same 302 (LFS)
//   a renamed repository answers 307 with a relative Location, as the hub does.
// The CDN is a second server (another host:port), honours Range, and can cut a transfer short or corrupt it.
import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HubFile {
  path: string;
  data: Buffer;
  /** Stored in LFS (served from the CDN, described by sha256). */
  lfs?: boolean;
}

export interface HubRepo {
  id: string;
  commit: string;
  files: HubFile[];
  /** Branch and tag names that resolve to `commit` (always includes main). */
  refs?: string[];
  /** Requests without `Authorization: Bearer <token>` get 401. */
  token?: string;
}

export interface SeenRequest {
  server: 'hub' | 'cdn';
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export interface FakeHub {
  endpoint: string;
  requests: SeenRequest[];
  /** The next CDN transfer of each listed sha256 stops after this many bytes (the socket is destroyed). */
  cutAfter: Map<string, number>;
  /** CDN transfers of these sha256s flip one byte. */
  corrupt: Set<string>;
  /** Old id → new id: the old one answers with a relative redirect. */
  renamed: Map<string, string>;
  close(): Promise<void>;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

async function listen(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

export async function startFakeHub(repos: HubRepo[]): Promise<FakeHub> {
  const requests: SeenRequest[] = [];
  const cutAfter = new Map<string, number>(), corrupt = new Set<string>(), renamed = new Map<string, string>();
  const blobs = new Map<string, Buffer>();
  for (const r of repos) for (const f of r.files) if (f.lfs) blobs.set(sha256(f.data), f.data);

  const cdn = createServer((req, res) => {
    requests.push({ server: 'cdn', method: req.method!, url: req.url!, headers: req.headers });
    const sha = /^\/cdn\/([0-9a-f]{64})/.exec(req.url!)?.[1];
    const blob = sha ? blobs.get(sha) : undefined;
    if (!sha || !blob) return void res.writeHead(404).end();
    let body = Buffer.from(blob);
    if (corrupt.has(sha)) body[body.length >> 1] ^= 0xff;
    let start = 0;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      start = Number(range[1]);
      if (start >= body.length) return void res.writeHead(416, { 'content-range': `bytes */${body.length}` }).end();
      res.writeHead(206, { 'content-length': body.length - start, 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` });
    } else res.writeHead(200, { 'content-length': body.length });
    if (req.method === 'HEAD') return void res.end();
    body = body.subarray(start);
    const cut = cutAfter.get(sha);
    if (cut !== undefined) {
      cutAfter.delete(sha);
      res.write(body.subarray(0, cut), () => res.destroy());
      return;
    }
    res.end(body);
  });
  const cdnPort = await listen(cdn);

  const hub = createServer((req, res) => {
    requests.push({ server: 'hub', method: req.method!, url: req.url!, headers: req.headers });
    const url = decodeURIComponent(req.url!.split('?')[0]);
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url);
    const id = api?.[1] ?? resolve?.[1];
    if (id && renamed.has(id)) {
      return void res.writeHead(307, { location: req.url!.replace(id, renamed.get(id)!) }).end();
    }
    const repo = repos.find((r) => r.id === id);
    if (!repo) return void res.writeHead(404, { 'x-error-code': 'RepoNotFound' }).end(JSON.stringify({ error: 'Repository not found' }));
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`)
      return void res.writeHead(401, { 'x-error-code': 'GatedRepo' }).end(JSON.stringify({ error: 'Access restricted' }));
    const rev = (api ?? resolve)![2];
    if (rev !== repo.commit && !(repo.refs ?? ['main']).concat('main').includes(rev))
      return void res.writeHead(404, { 'x-error-code': 'RevisionNotFound' }).end(JSON.stringify({ error: 'Invalid rev id' }));
    const common = { 'x-repo-commit': repo.commit };
    if (api) {
      const body = JSON.stringify({ id: repo.id, sha: repo.commit, siblings: repo.files.map((f) => ({ rfilename: f.path })) });
      return void res.writeHead(200, { ...common, 'content-type': 'application/json' }).end(body);
    }
    const file = repo.files.find((f) => f.path === resolve![3]);
    if (!file) return void res.writeHead(404, { ...common, 'x-error-code': 'EntryNotFound' }).end();
    if (file.lfs) {
      const sha = sha256(file.data);
      const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${sha}\nsize ${file.data.length}\n`);
      return void res
        .writeHead(302, {
          ...common,
          location: `http://127.0.0.1:${cdnPort}/cdn/${sha}?X-Amz-Signature=test`,
          'x-linked-etag': `"${sha}"`,
          'x-linked-size': String(file.data.length),
          etag: `"${gitSha1(pointer)}"`,
          'content-length': '0',
        })
        .end();
    }
    res.writeHead(200, { ...common, etag: `"${gitSha1(file.data)}"`, 'content-length': file.data.length, 'content-type': 'application/octet-stream' });
    res.end(req.method === 'HEAD' ? undefined : file.data);
  });
  const hubPort = await listen(hub);
  return {
    endpoint: `http://127.0.0.1:${hubPort}`,
    requests,
    cutAfter,
    corrupt,
    renamed,
    close: async () => {
      hub.closeAllConnections();
      cdn.closeAllConnections();
      await Promise.all([new Promise((r) => hub.close(r)), new Promise((r) => cdn.close(r))]);
    },
  };
}

export { sha256, gitSha1 };
