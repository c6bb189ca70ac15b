import { test } from 'node:test';
import assert from 'node:assert/strict';
import { combineVerdicts, gradeAnswer, judgePair, pairwiseRequests, parseScore, parseVerdict, type CompleteFn } from '../../src/eval/judge.js';

test('verdict parsing: bracketed, labelled, "X is better", bare, ties; ambiguous text gives null', () => {
  const cases: [string, ReturnType<typeof parseVerdict>][] = [
    ['Answer A is more complete. [[A]]', 'A'],
    ['[[B]]', 'B'],
    ['Both fine. [[C]]', 'tie'],
    ['[[tie]]', 'tie'],
    ['Format: "[[A]]", "[[B]]" or "[[C]]". My verdict: [[B]]', 'B'], // the last bracketed verdict wins
    ['Verdict: B', 'B'],
    ['Final verdict: Answer A', 'A'],
    ['**Winner:** tie', 'tie'],
    ['Assistant B is better because it cites the text.', 'B'],
    ['A', 'A'],
    ['"B".', 'B'],
    ['tie', 'tie'],
    ["It's a tie.", 'tie'],
    ['Both answers are equally good.', 'tie'],
    ['I cannot decide.', null],
    ['', null],
  ];
  for (const [text, want] of cases) assert.equal(parseVerdict(text), want, JSON.stringify(text));
});

test('score parsing: [[N]], Rating: N, N/10, bare N; out of range or absent gives null', () => {
  const cases: [string, number | null][] = [
    ['Clear and concise. Rating: [[8]]', 8],
    ['[[7.5]]', 7.5],
    ['Score: 6', 6],
    ['I would give it 9/10.', 9],
    ['4 out of 10', 4],
    ['10', 10],
    ['Rating: [[11]]', null],
    ['Rating: 0', null],
    ['no number here', null],
  ];
  for (const [text, want] of cases) assert.equal(parseScore(text), want, JSON.stringify(text));
});

test('position swapping: agreeing verdicts win, flipped verdicts are inconsistent, unreadable is invalid', () => {
  // first: a shown as A; second: b shown as A.
  assert.equal(combineVerdicts('A', 'B'), 'a');
  assert.equal(combineVerdicts('B', 'A'), 'b');
  assert.equal(combineVerdicts('tie', 'tie'), 'tie');
  assert.equal(combineVerdicts('A', 'A'), 'inconsistent'); // always prefers the first position
  assert.equal(combineVerdicts('A', 'tie'), 'inconsistent');
  assert.equal(combineVerdicts(null, 'A'), 'invalid');
});

/** A judge over real text: prefers the answer containing "Paris", or always the first position. */
function judgeFn(kind: 'content' | 'first'): CompleteFn & { seen: string[] } {
  const seen: string[] = [];
  const f = async (req: Parameters<CompleteFn>[0]) => {
    const user = req.messages!.find((m) => m.role === 'user')!.content;
    seen.push(user);
    if (kind === 'first') return { text: 'A is better. [[A]]', finishReason: 'stop' as const };
    const a = user.match(/\[Answer A\]\n([\s\S]*?)\n\[End of Answer A\]/)![1]!;
    const b = user.match(/\[Answer B\]\n([\s\S]*?)\n\[End of Answer B\]/)![1]!;
    const verdict = a.includes('Paris') === b.includes('Paris') ? '[[C]]' : a.includes('Paris') ? '[[A]]' : 'Verdict: B';
    return { text: verdict, finishReason: 'stop' as const };
  };
  return Object.assign(f, { seen });
}

test('judgePair asks both orders and combines them', async () => {
  const fair = judgeFn('content');
  const r = await judgePair(fair, 'Capital of France?', 'Lyon', 'Paris');
  assert.equal(r.outcome, 'b');
  assert.deepEqual(r.verdicts, ['B', 'A']);
  assert.equal(fair.seen.length, 2);
  assert.ok(fair.seen[0]!.indexOf('Lyon') < fair.seen[0]!.indexOf('Paris'));
  assert.ok(fair.seen[1]!.indexOf('Paris') < fair.seen[1]!.indexOf('Lyon'));
  assert.equal((await judgePair(fair, 'q', 'Paris!', 'Paris.')).outcome, 'tie');
  const biased = judgeFn('first');
  assert.equal((await judgePair(biased, 'q', 'Lyon', 'Paris')).outcome, 'inconsistent');
  // The two requests differ only by the order of the answers.
  const [r1, r2] = pairwiseRequests('q', 'x', 'y');
  assert.equal(r1.messages![0]!.content, r2.messages![0]!.content);
  assert.notEqual(r1.messages![1]!.content, r2.messages![1]!.content);
  assert.equal(r1.temperature, 0);
});

test('gradeAnswer parses the grade from the judge text', async () => {
  const g = await gradeAnswer(async () => ({ text: 'Readable. Rating: [[7]]', finishReason: 'stop' }), 'q', 'a');
  assert.equal(g.score, 7);
  const bad = await gradeAnswer(async () => ({ text: 'Great!', finishReason: 'stop' }), 'q', 'a');
  assert.equal(bad.score, null);
});
