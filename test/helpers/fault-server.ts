// A real HTTP server on 127.0.0.1 that speaks enough of OpenAI's API (models, completions with echo +
// logprobs, chat, streaming) to drive the providers, and misbehaves on a schedule: 429 with Retry-After,
// 5xx, hanging past the client's timeout, dropped connections, malformed JSON. It logs every arrival and,
// separately, every answer it delivered in full, so a test can check "each sample answered exactly once".
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault =
  | { kind: 'ok' }
  /** Any status, e.g. 429 with retryAfter "1" or an HTTP date, 500, 503, 400. */
  | { kind: 'status'; status: number; retryAfter?: string; body?: string }
  /** Never answer; the request sits until the client gives up (its timeout). */
  | { kind: 'hang' }
  /** Send the status line and half of a correct body, then destroy the socket. */
  | { kind: 'drop' }
  /** Destroy the socket before answering anything (ECONNRESET / socket hang up at the client). */
  | { kind: 'reset' }
  /** 200 with a body that is not valid JSON. */
  | { kind: 'malformed' }
  /** 200 with valid JSON that lacks `choices`. */
  | { kind: 'no-choices' }
  /** Answer correctly after a delay. */
  | { kind: 'delay'; ms: number };

export interface Arrival {
  /** 0-based order of arrival. */
  n: number;
  /** performance.now() at arrival. */
  at: number;
  method: string;
  path: string;
  /** The prompt (completions) or the last message's content (chat); '' for GET. */
  prompt: string;
  /** How many times this prompt has arrived before (0 = first attempt). */
  attempt: number;
  fault: Fault['kind'];
  /** Whether the request carried the expected bearer key (true when none is expected). */
  authorized: boolean;
  /** Whether it carried any Authorization header at all. */
  hadAuth: boolean;
}

export interface Answer {
  n: number;
  at: number;
  path: string;
  prompt: string;
  text: string;
}

export type Schedule = Fault[] | ((a: Omit<Arrival, 'fault'>) => Fault);

export interface FaultServerOptions {
  schedule?: Schedule;
  /** When set, requests must carry `Authorization: Bearer <apiKey>`; otherwise 401, and the 401 body echoes
   * the Authorization header it got (as careless proxies do) so tests can check the client scrubs it. */
  apiKey?: string;
  /** Echo the Authorization header in the body of scheduled error statuses too. */
  echoAuthInErrors?: boolean;
  /** The deterministic answer to a prompt (default: "answer to <prompt>"). */
  answer?: (prompt: string) => string;
}

export interface FaultServer {
  url: string;
  baseUrl: string;
  arrivals: Arrival[];
  answered: Answer[];
  setSchedule(s: Schedule): void;
  close(): Promise<void>;
}

/** Whitespace tokens with their leading spaces, the fault server's echo tokenization. */
export function faultTokens(text: string): string[] {
  return text.match(/\s*\S+|\s+$/g) ?? [];
}

/** The fault server's log-prob of a token: -(length)/10, so sums are easy to check by hand. */
export function faultLogprob(token: string): number {
  return -token.length / 10;
}

export async function startFaultServer(opts: FaultServerOptions = {}): Promise<FaultServer> {
  let schedule: Schedule = opts.schedule ?? [];
  const answer = opts.answer ?? ((p: string) => `answer to ${p}`);
  const arrivals: Arrival[] = [];
  const answered: Answer[] = [];
  const attempts = new Map<string, number>();

  const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
    const at = performance.now();
    const chunks: Buffer[] = [];
    for await (const c of req as AsyncIterable<Buffer>) chunks.push(c);
    const raw = Buffer.concat(chunks).toString('utf8');
    let body: Record<string, unknown> = {};
    try {
      body = raw ? JSON.parse(raw) : {};
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'bad JSON' } }));
      return;
    }
    const path = (req.url ?? '').split('?')[0]!;
    const prompt = promptOf(body);
    const attempt = attempts.get(prompt) ?? 0;
    attempts.set(prompt, attempt + 1);
    const auth = req.headers.authorization ?? '';
    const authorized = !opts.apiKey || auth === `Bearer ${opts.apiKey}`;
    const base = { n: arrivals.length, at, method: req.method ?? '', path, prompt, attempt, authorized, hadAuth: auth !== '' };
    const fault: Fault = typeof schedule === 'function' ? schedule(base) : (schedule[base.n] ?? { kind: 'ok' });
    arrivals.push({ ...base, fault: fault.kind });

    if (!authorized) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `Incorrect API key provided: ${auth}` } }));
      return;
    }
    switch (fault.kind) {
      case 'status': {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (fault.retryAfter !== undefined) headers['retry-after'] = fault.retryAfter;
        const echo = opts.echoAuthInErrors ? ` (you sent ${auth})` : '';
        res.writeHead(fault.status, headers).end(fault.body ?? JSON.stringify({ error: { message: `scheduled ${fault.status}${echo}` } }));
        return;
      }
      case 'hang':
        return; // the client's timeout ends it; closeAllConnections() cleans up at close()
      case 'reset':
        req.socket.destroy();
        return;
      case 'malformed':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"id": "cmpl-broken", "choices": [{"text": "trunc');
        return;
      case 'no-choices':
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"id": "cmpl-empty", "object": "text_completion"}');
        return;
      case 'drop': {
        const full = JSON.stringify(respond(path, body, prompt, answer));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(full) });
        res.write(full.slice(0, Math.floor(full.length / 2)), () => res.socket?.destroy());
        return;
      }
      case 'delay':
        await new Promise((r) => setTimeout(r, fault.ms));
        break;
      case 'ok':
        break;
    }
    if (req.method === 'GET' && path === '/v1/models') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data: [{ id: 'fault-model', object: 'model' }] }));
      return;
    }
    if (path !== '/v1/completions' && path !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `no route ${path}` } }));
      return;
    }
    const out = respond(path, body, prompt, answer);
    const text = answer(prompt);
    res.on('finish', () => answered.push({ n: base.n, at: performance.now(), path, prompt, text }));
    if (body.stream === true) {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const chat = path.endsWith('chat/completions');
      for (const piece of faultTokens(text)) {
        const choice = chat ? { index: 0, delta: { content: piece }, finish_reason: null } : { index: 0, text: piece, finish_reason: null };
        res.write(`data: ${JSON.stringify({ id: 'x', choices: [choice] })}\n\n`);
      }
      const last = chat ? { index: 0, delta: {}, finish_reason: 'stop' } : { index: 0, text: '', finish_reason: 'stop' };
      res.end(`data: ${JSON.stringify({ id: 'x', choices: [last] })}\n\ndata: [DONE]\n\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out));
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    baseUrl: `${url}/v1`,
    arrivals,
    answered,
    setSchedule: (s) => {
      schedule = s;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function promptOf(body: Record<string, unknown>): string {
  if (typeof body.prompt === 'string') return body.prompt;
  const msgs = body.messages as { content?: unknown }[] | undefined;
  const last = msgs?.[msgs.length - 1]?.content;
  return typeof last === 'string' ? last : '';
}

function respond(path: string, body: Record<string, unknown>, prompt: string, answer: (p: string) => string) {
  const text = answer(prompt);
  const usage = { prompt_tokens: faultTokens(prompt).length, completion_tokens: faultTokens(text).length, total_tokens: 0 };
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
  if (path.endsWith('chat/completions')) {
    return {
      id: 'chatcmpl-x',
      object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
      usage,
    };
  }
  let logprobs = null;
  let out = text;
  if (typeof body.logprobs === 'number') {
    // Echo returns the prompt's tokens then one generated token, like OpenAI's legacy API.
    const toks = body.echo === true ? [...faultTokens(prompt), ...faultTokens(text).slice(0, 1)] : faultTokens(text);
    if (body.echo === true) out = prompt + (faultTokens(text)[0] ?? '');
    let at = 0;
    logprobs = {
      tokens: toks,
      token_logprobs: toks.map((t, i) => (i === 0 && body.echo === true ? null : faultLogprob(t))),
      top_logprobs: toks.map((t, i) => (i === 0 && body.echo === true ? null : { [t]: faultLogprob(t) })),
      text_offset: toks.map((t) => ((at += t.length), at - t.length)),
    };
  }
  return { id: 'cmpl-x', object: 'text_completion', choices: [{ index: 0, text: out, logprobs, finish_reason: 'stop' }], usage };
}
