// SQuAD v1.1 exact match / F1 against the official evaluate-v1.1.py logic itself (test/eval/helpers/
// squad_official.py holds its functions unchanged), run by python3 on hand-picked cases and on seeded random
// strings mixing ASCII, non-ASCII letters, combining marks, numbers, punctuation and Unicode whitespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { exactMatch, maxOverGold, normalizeAnswer, scoreGeneration, PY_SPACE_CHAR, PY_WORD_CHAR, tokenF1, tokenF1V2 } from '../../src/eval/metrics/index.js';
import { Rng as SeededRng } from '../../src/engine/rng.js';

const HELPER = fileURLToPath(new URL('./helpers/squad_official.py', import.meta.url));

interface Case {
  prediction: string;
  ground_truths: string[];
}
interface Official {
  normalized: string;
  exact_match: number;
  f1: number;
  squad_v2_f1: number;
}

const python = spawnSync('python3', ['--version'], { encoding: 'utf8' });
const hasPython = python.status === 0;
// On CI python3 is installed: a missing one there is a broken runner, not a reason to skip.
if (!hasPython && process.env.CI === 'true') throw new Error('CI=true but python3 is not available: the SQuAD parity test needs it');
const skip = hasPython ? false : 'python3 not found: cannot run the official SQuAD logic (install python3 to run this test)';

function official(cases: Case[]): Official[] {
  const r = spawnSync('python3', [HELPER], { input: JSON.stringify({ cases }), encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, `python3 ${HELPER} failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as { results: Official[] };
  assert.equal(out.results.length, cases.length);
  return out.results;
}

function ours(c: Case): Official {
  return {
    normalized: normalizeAnswer(c.prediction),
    exact_match: maxOverGold(exactMatch, c.prediction, c.ground_truths),
    f1: maxOverGold(tokenF1, c.prediction, c.ground_truths),
    squad_v2_f1: maxOverGold(tokenF1V2, c.prediction, c.ground_truths),
  };
}

const show = (s: string) => JSON.stringify(s).replace(/[^\x20-\x7e]/gu, (ch) => `\\u{${ch.codePointAt(0)!.toString(16)}}`);

function compare(cases: Case[]) {
  const want = official(cases);
  cases.forEach((c, i) => {
    const got = ours(c);
    const w = want[i]!;
    const what = `prediction ${show(c.prediction)} vs ${c.ground_truths.map(show).join(', ')}`;
    assert.equal(got.normalized, w.normalized, `normalize_answer(${show(c.prediction)}): ${show(got.normalized)} != official ${show(w.normalized)}`);
    assert.equal(got.exact_match, w.exact_match, `exact_match, ${what}`);
    assert.equal(got.f1, w.f1, `f1, ${what}`);
    assert.equal(got.squad_v2_f1, w.squad_v2_f1, `squad_v2_f1, ${what}`);
  });
}

// Named cases: the reported bugs, and each place where JavaScript and Python disagree by default.
const NAMED: Case[] = [
  { prediction: 'Łańcut', ground_truths: ['Łańcut', 'the town of Łańcut'] }, // the "a" inside a non-ASCII word
  { prediction: 'Piña colada', ground_truths: ['piña colada'] },
  { prediction: 'a Ñandú', ground_truths: ['Ñandú'] },
  { prediction: 'éa an ña theé the', ground_truths: ['ea'] }, // articles next to non-ASCII letters are not articles
  { prediction: 'e\u0301 a\u0301 a', ground_truths: ['é'] }, // combining marks are not word characters in Python
  { prediction: 'e\u0301a \u0308the', ground_truths: ['e\u0301'] }, // …so an article right after a mark is removed
  { prediction: '²a ⅻan a٣ the_ the', ground_truths: ['a'] }, // No, Nl, Nd and "_" are word characters
  { prediction: 'Москва a Санкт-Петербург', ground_truths: ['москва'] },
  { prediction: 'ΟΔΟΣ the Αθήνα', ground_truths: ['οδος αθηνα'] }, // final sigma
  { prediction: '東京 the 大阪', ground_truths: ['東京 大阪'] },
  { prediction: 'İstanbul', ground_truths: ['i̇stanbul', 'istanbul'] },
  { prediction: 'Straße', ground_truths: ['STRASSE', 'straße'] },
  { prediction: 'the', ground_truths: ['a'] }, // both normalise to "": EM 1, v1.1 F1 0, v2.0 F1 1
  { prediction: '.', ground_truths: ['cat'] },
  { prediction: '', ground_truths: ['', 'the'] },
  { prediction: 'new\u00a0york\u2003city\u3000now', ground_truths: ['new york city'] },
  { prediction: 'a\u0085b\u001cc\u001fd', ground_truths: ['a b c d'] }, // Python splits on U+0085 and U+001C–U+001F
  { prediction: 'zero\ufeffwidth\u200bspace', ground_truths: ['zero width space'] }, // …but not on U+FEFF or U+200B
  { prediction: 'The cat, the cat!', ground_truths: ['cat'] },
  { prediction: 'Denver Broncos won the Super Bowl', ground_truths: ['Denver Broncos', 'Broncos'] },
  { prediction: '😀 a 😀', ground_truths: ['😀😀', '😀 😀'] },
];

test('SQuAD normalisation of non-ASCII text (hand-checked against evaluate-v1.1.py)', () => {
  assert.equal(normalizeAnswer('Łańcut'), 'łańcut'); // was "ł ńcut": JavaScript's \b is ASCII-only
  assert.equal(normalizeAnswer('Piña colada'), 'piña colada'); // was "piñ colada"
  assert.equal(normalizeAnswer('e\u0301 a\u0301'), 'e\u0301 \u0301'); // the mark after "a" is not a word character
  assert.equal(normalizeAnswer('e\u0301a'), 'e\u0301'); // nor the one before it
  assert.equal(normalizeAnswer('zero\ufeffwidth'), 'zero\ufeffwidth');
  assert.equal(normalizeAnswer('x\u0085y'), 'x y');
});

test('v1.1 F1 is 0 when an answer normalises to nothing; the v2.0 rule is squad_v2_f1', () => {
  assert.equal(exactMatch('the', 'a'), 1);
  assert.equal(tokenF1('the', 'a'), 0);
  assert.equal(tokenF1V2('the', 'a'), 1);
  assert.equal(tokenF1('.', 'cat'), 0);
  assert.equal(tokenF1V2('.', 'cat'), 0);
  assert.deepEqual(scoreGeneration(['exact_match', 'f1', 'squad_v2_f1'], { output: 'The.', references: ['an'] }), { exact_match: 1, f1: 0, squad_v2_f1: 1 });
});

test('exact_match, f1 and squad_v2_f1 equal the official scripts on named cases', { skip }, () => {
  compare(NAMED);
});

/** Random answers built from pieces where the two languages' defaults differ. */
function randomCases(n: number, seed: number): Case[] {
  const rng = new SeededRng(seed);
  const pieces = [
    'a', 'an', 'the', 'A', 'An', 'THE', 'The', 'cat', 'Łańcut', 'piña', 'ñ', 'é', 'e\u0301', '\u0301', '\u0308', 'ß', 'İ', 'ΣΑΣ', 'σ', 'Ω',
    'москва', 'Я', '東京', '一', '²', 'ⅻ', '٣', '7', '_', '😀', 'ǅ', 'ʰ', 'ـ', 'अ', 'ि', '.', ',', '!', "'", '-', '"', '«', '»', '—', '¿', '…',
    ' ', ' ', ' ', '  ', '\t', '\n', '\u00a0', '\u2003', '\u3000', '\u0085', '\u001c', '\u001f', '\u200b', '\ufeff', '\u2028', '\u180e',
  ];
  const word = () => Array.from({ length: 1 + rng.int(4) }, () => pieces[rng.int(pieces.length)]!).join('');
  const text = () => Array.from({ length: rng.int(7) }, word).join(rng.next() < 0.7 ? ' ' : '');
  return Array.from({ length: n }, () => {
    const p = text();
    // Golds sometimes share words with the prediction, so that F1 takes values other than 0 and 1.
    const golds = Array.from({ length: 1 + rng.int(3) }, () => (rng.next() < 0.5 ? p.split(' ').filter(() => rng.next() < 0.6).join(' ') + ' ' + word() : text()));
    return { prediction: p, ground_truths: golds };
  });
}

test('exact_match, f1 and squad_v2_f1 equal the official scripts on 2000 seeded random answers', { skip }, () => {
  const cases = randomCases(2000, 20261206);
  // The generator must reach the cases that matter, or the comparison proves little.
  const results = cases.map(ours);
  assert.ok(results.some((r) => r.f1 > 0 && r.f1 < 1), 'some partial F1');
  assert.ok(results.some((r) => r.normalized === '' && r.squad_v2_f1 !== r.f1), 'some empty-normalising answers');
  compare(cases);
});

test("word characters, whitespace and lower case agree with Python's for every code point its Unicode database knows", { skip }, () => {
  const r = spawnSync('python3', [HELPER, '--unicode-tables'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(r.status, 0, r.stderr);
  const t = JSON.parse(r.stdout) as { unicode: string; assigned: [number, number][]; word: [number, number][]; space: number[]; lower: Record<string, string> };
  const inRanges = (rs: [number, number][]) => {
    const set = new Set<number>();
    for (const [a, b] of rs) for (let c = a; c <= b; c++) set.add(c);
    return set;
  };
  const word = inRanges(t.word);
  const space = new Set(t.space);
  const bad: string[] = [];
  let checked = 0;
  for (const [a, b] of t.assigned)
    for (let c = a; c <= b; c++) {
      const ch = String.fromCodePoint(c);
      checked++;
      if (PY_WORD_CHAR.test(ch) !== word.has(c)) bad.push(`U+${c.toString(16)} word`);
      if (PY_SPACE_CHAR.test(ch) !== space.has(c)) bad.push(`U+${c.toString(16)} space`);
      if (ch.toLowerCase() !== (t.lower[c] ?? ch)) bad.push(`U+${c.toString(16)} lower`);
    }
  assert.ok(checked > 100_000, `only ${checked} code points checked`);
  assert.deepEqual(bad.slice(0, 20), [], `${bad.length} code points differ from Python ${t.unicode}`);
});
