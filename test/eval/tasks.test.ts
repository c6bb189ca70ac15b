import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileTemplate, loadRows, loadTask, TYPE_DEFAULTS, type Task } from '../../src/eval/tasks/index.js';
import { writeParquet } from './helpers/parquet.js';

const rows = [
  { id: 'r1', context: 'Alice lives in Paris. Bob lives in Rome.', question: 'Where does Bob live?', answers: ['Rome'] },
  { id: 'r2', context: 'The red car is fast. The blue car is slow.', question: 'Which car is slow?', answers: ['the blue car', 'blue'] },
  { id: 'r3', context: 'Tea is served at four. Dinner is at eight.', question: 'When is tea served?', answers: ['at four', 'four'] },
  { id: 'r4', context: 'The cat sleeps on the mat. The dog sleeps outside.', question: 'Where does the dog sleep?', answers: ['outside'] },
];

function dir(): string {
  return mkdtempSync(join(tmpdir(), 'alignlab-tasks-'));
}

function qaYaml(data: string, extra = ''): string {
  return `name: qa_test
type: qa
data: ${data}
id_field: id
prompt: |-
  Context: {{ context }}
  Question: {{ question }}
${extra}`;
}

test('the same rows from JSONL, JSON, CSV and Parquet give identical samples', async () => {
  const d = dir();
  writeFileSync(join(d, 'q.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  writeFileSync(join(d, 'q.json'), JSON.stringify(rows, null, 2));
  const csvCell = (s: string) => `"${s.replace(/"/g, '""')}"`;
  writeFileSync(join(d, 'q.csv'), 'id,context,question,answers\n' + rows.map((r) => [r.id, r.context, r.question, JSON.stringify(r.answers)].map(csvCell).join(',')).join('\n') + '\n');
  writeParquet(join(d, 'q.parquet'), [
    { name: 'id', type: 'string', values: rows.map((r) => r.id) },
    { name: 'context', type: 'string', values: rows.map((r) => r.context) },
    { name: 'question', type: 'string', values: rows.map((r) => r.question) },
    { name: 'answers', type: 'string', values: rows.map((r) => JSON.stringify(r.answers)) },
  ]);
  const loaded: Task[] = [];
  for (const ext of ['jsonl', 'json', 'csv', 'parquet']) {
    writeFileSync(join(d, `${ext}.yaml`), qaYaml(`q.${ext}`));
    loaded.push(await loadTask(join(d, `${ext}.yaml`)));
  }
  const strip = (t: Task) => t.samples.map(({ where: _w, ...s }) => s);
  for (const t of loaded.slice(1)) assert.deepEqual(strip(t), strip(loaded[0]!));
  const s = loaded[0]!.samples[1]!;
  assert.equal(s.id, 'r2');
  assert.deepEqual(s.references, ['the blue car', 'blue']);
  assert.deepEqual(s.messages, [{ role: 'user', content: 'Context: The red car is fast. The blue car is slow.\nQuestion: Which car is slow?' }]);
  assert.equal(loaded[0]!.spec.mode, TYPE_DEFAULTS.qa.mode);
  assert.deepEqual(loaded[0]!.spec.metrics, ['exact_match', 'f1']);
});

test('malformed rows name the file, the line and the field', async () => {
  const d = dir();
  const lines = rows.map((r) => JSON.stringify(r));
  // Line 3 broken JSON.
  writeFileSync(join(d, 'bad.jsonl'), [lines[0], lines[1], '{"id": "r3", "context": ', lines[3]].join('\n'));
  await assert.rejects(loadRows(join(d, 'bad.jsonl')), (e: Error) => e.message.startsWith(`${join(d, 'bad.jsonl')}:3: invalid JSON`));
  // Line 4 (after a blank line) lacks "question", which the template uses.
  const { question: _q, ...noQ } = rows[2]!;
  writeFileSync(join(d, 'miss.jsonl'), [lines[0], lines[1], '', JSON.stringify(noQ)].join('\n'));
  writeFileSync(join(d, 'miss.yaml'), qaYaml('miss.jsonl'));
  await assert.rejects(loadTask(join(d, 'miss.yaml')), /miss\.jsonl:4: field "question" is missing \(the prompt template uses it\)$/);
  // JSON array: the third element starts on line 4.
  writeFileSync(join(d, 'arr.json'), `[\n${JSON.stringify(rows[0])},\n${JSON.stringify(rows[1])},\n${JSON.stringify({ ...rows[2], answers: { x: 1 } })}\n]`);
  writeFileSync(join(d, 'arr.yaml'), qaYaml('arr.json'));
  await assert.rejects(loadTask(join(d, 'arr.yaml')), /arr\.json:4: field "answers" must be a string or a non-empty list/);
  // CSV with a short record on line 3.
  writeFileSync(join(d, 'bad.csv'), 'id,context,question,answers\nr1,c,q,a\nr2,c\n');
  await assert.rejects(loadRows(join(d, 'bad.csv')), /bad\.csv:3: invalid CSV/);
  // CSV row on line 3 missing a value the template uses is fine (empty string), but a missing column is not.
  writeFileSync(join(d, 'cols.csv'), 'id,context,answers\nr1,c,a\nr2,c,b\n');
  writeFileSync(join(d, 'cols.yaml'), qaYaml('cols.csv'));
  await assert.rejects(loadTask(join(d, 'cols.yaml')), /cols\.csv:2: field "question" is missing/);
  await assert.rejects(loadRows(join(d, 'nope.tsv')), /unknown data format/);
  await assert.rejects(loadRows(join(d, 'absent.jsonl')), /absent\.jsonl: cannot read data file \(ENOENT\)/);
});

test('multiple choice: gold as index, letter or text; out-of-range gold names its line', async () => {
  const d = dir();
  const mc = [
    { q: 'Sky colour?', choices: ['red', 'blue'], gold: 1 },
    { q: 'Grass colour?', choices: ['green', 'pink', 'grey'], gold: 'A' },
    { q: 'Snow colour?', choices: ['white', 'black'], gold: 'white' },
  ];
  writeFileSync(join(d, 'mc.jsonl'), mc.map((r) => JSON.stringify(r)).join('\n'));
  writeFileSync(join(d, 'mc.yaml'), 'name: mc\ntype: multiple_choice\ndata: mc.jsonl\nprompt: "Q: {{ q }}\\nA:"\n');
  const t = await loadTask(join(d, 'mc.yaml'));
  assert.deepEqual(t.samples.map((s) => s.gold), [1, 0, 0]);
  assert.equal(t.samples[0]!.prompt, 'Q: Sky colour?\nA:');
  assert.equal(t.spec.mode, 'completion');
  writeFileSync(join(d, 'mc2.jsonl'), JSON.stringify(mc[0]) + '\n' + JSON.stringify({ ...mc[1], gold: 5 }));
  writeFileSync(join(d, 'mc2.yaml'), 'name: mc\ntype: multiple_choice\ndata: mc2.jsonl\nprompt: "Q: {{ q }}"\n');
  await assert.rejects(loadTask(join(d, 'mc2.yaml')), /mc2\.jsonl:2: field "gold" must be a choice index 0\.\.2/);
});

test('task files: schema errors name the YAML line and field; metrics must fit the type', async () => {
  const d = dir();
  writeFileSync(join(d, 'q.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  writeFileSync(join(d, 't1.yaml'), qaYaml('q.jsonl', 'generation:\n  max_tokens: lots\n'));
  await assert.rejects(loadTask(join(d, 't1.yaml')), /t1\.yaml:9: field "generation\.max_tokens" is invalid: .*number/);
  writeFileSync(join(d, 't2.yaml'), qaYaml('q.jsonl', 'metrics: [rougeL, acc]\n'));
  await assert.rejects(loadTask(join(d, 't2.yaml')), /t2\.yaml:8: field "metrics" names "acc", which does not apply to a qa task/);
  writeFileSync(join(d, 't3.yaml'), qaYaml('q.jsonl', 'promt: typo\n'));
  // An unknown key is reported at its own line (zod reports it at the enclosing object, line 1).
  await assert.rejects(loadTask(join(d, 't3.yaml')), (e: Error) => e.message === `${join(d, 't3.yaml')}:8: field "promt" is not a known field (a typo?)`);
  writeFileSync(join(d, 't3b.yaml'), qaYaml('q.jsonl', 'generation:\n  max_tokens: 4\n  temprature: 0\n'));
  await assert.rejects(loadTask(join(d, 't3b.yaml')), (e: Error) => e.message === `${join(d, 't3b.yaml')}:10: field "generation.temprature" is not a known field (a typo?)`);
  writeFileSync(join(d, 't4.yaml'), qaYaml('q.jsonl', 'type: essay\n').replace('type: qa\n', ''));
  await assert.rejects(loadTask(join(d, 't4.yaml')), /t4\.yaml:7: field "type"/);
  writeFileSync(join(d, 't5.yaml'), 'name: mc\ntype: multiple_choice\nmode: chat\ndata: q.jsonl\nprompt: x\n');
  await assert.rejects(loadTask(join(d, 't5.yaml')), /t5\.yaml:3: field "mode" must be completion: multiple_choice is scored by log-likelihood/);
  writeFileSync(join(d, 't6.yaml'), qaYaml('q.jsonl', 'prompt2: x\n').replace('{{ question }}', '{{ question }'));
  await assert.rejects(loadTask(join(d, 't6.yaml')));
});

test('a task field naming a column the data lacks is reported against the task file; a missing task file is one line', async () => {
  const d = dir();
  writeFileSync(join(d, 'q.jsonl'), rows.map((r) => JSON.stringify(r)).join('\n'));
  const data = join(d, 'q.jsonl');
  // `references: answer` (the data has "answers"): the task file's line 8, not row 1 of the data.
  writeFileSync(join(d, 'r1.yaml'), qaYaml('q.jsonl', 'references: answer\n'));
  await assert.rejects(
    loadTask(join(d, 'r1.yaml')),
    (e: Error) => e.name === 'ConfigError' && e.message === `${join(d, 'r1.yaml')}:8: field "references" names "answer", which is not a field of ${data}:1 (its fields: id, context, question, answers)`,
  );
  // The default ("answers" for qa) against data that names its gold column otherwise: the task file, no line.
  writeFileSync(join(d, 'g.jsonl'), rows.map(({ answers, ...r }) => JSON.stringify({ ...r, gold: answers })).join('\n'));
  writeFileSync(join(d, 'r2.yaml'), qaYaml('g.jsonl'));
  await assert.rejects(loadTask(join(d, 'r2.yaml')), (e: Error) => e.message.startsWith(`${join(d, 'r2.yaml')}: field "references" (default "answers") names "answers", which is not a field of ${join(d, 'g.jsonl')}:1`));
  // A column missing from a later row only is still that row's data error.
  writeFileSync(join(d, 'late.jsonl'), rows.map((r, i) => JSON.stringify(i === 2 ? { ...r, answers: undefined } : r)).join('\n'));
  writeFileSync(join(d, 'r3.yaml'), qaYaml('late.jsonl'));
  await assert.rejects(loadTask(join(d, 'r3.yaml')), (e: Error) => e.name === 'DataError' && e.message === `${join(d, 'late.jsonl')}:3: field "answers" is missing`);
  // No such task file: one line naming it, not a raw ENOENT with a stack of fs internals.
  await assert.rejects(loadTask(join(d, 'absent.yaml')), (e: Error) => e.name === 'ConfigError' && e.message === `${join(d, 'absent.yaml')}: file not found`);
});

test('few-shot: n examples, seeded per row, never the row itself; chat and completion layouts', async () => {
  const d = dir();
  const many = Array.from({ length: 12 }, (_, i) => ({ id: `k${i}`, context: `Fact ${i}.`, question: `Q${i}?`, answers: [`A${i}`] }));
  writeFileSync(join(d, 'q.jsonl'), many.map((r) => JSON.stringify(r)).join('\n'));
  const fs = (seed: number, mode: string) => `mode: ${mode}\nsystem: Be brief.\nfewshot:\n  n: 3\n  seed: ${seed}\n`;
  writeFileSync(join(d, 'a.yaml'), qaYaml('q.jsonl', fs(1, 'chat')));
  writeFileSync(join(d, 'b.yaml'), qaYaml('q.jsonl', fs(1, 'chat')));
  writeFileSync(join(d, 'c.yaml'), qaYaml('q.jsonl', fs(2, 'chat')));
  writeFileSync(join(d, 'p.yaml'), qaYaml('q.jsonl', fs(1, 'completion') + 'target_delimiter: " => "\n'));
  const [a, b, c, p] = await Promise.all(['a', 'b', 'c', 'p'].map((n) => loadTask(join(d, `${n}.yaml`))));
  assert.deepEqual(a!.samples, b!.samples, 'same seed, same examples');
  assert.notDeepEqual(a!.samples.map((s) => s.messages), c!.samples.map((s) => s.messages), 'another seed, other examples');
  for (const s of a!.samples) {
    const m = s.messages!;
    assert.equal(m.length, 1 + 2 * 3 + 1);
    assert.deepEqual(m[0], { role: 'system', content: 'Be brief.' });
    assert.deepEqual(m.map((x) => x.role), ['system', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'user']);
    const shown = m.filter((x) => x.role === 'user').slice(0, 3).map((x) => x.content);
    assert.ok(!shown.includes(m[7]!.content), 'the asked row is never its own example');
    assert.equal(new Set(shown).size, 3);
    // Each example's answer is its first reference.
    for (let k = 1; k < 7; k += 2) assert.equal(m[k + 1]!.content, 'A' + m[k]!.content.match(/Fact (\d+)/)![1]);
  }
  const prompt = p!.samples[0]!.prompt!;
  const blocks = prompt.split('\n\n');
  assert.equal(blocks.length, 1 + 3 + 1);
  assert.equal(blocks[0], 'Be brief.');
  assert.match(blocks[1]!, /^Context: Fact \d+\.\nQuestion: Q\d+\? => A\d+$/);
  assert.equal(blocks[4], 'Context: Fact 0.\nQuestion: Q0?');
  // Too few rows for the requested shots.
  writeFileSync(join(d, 'few.jsonl'), many.slice(0, 3).map((r) => JSON.stringify(r)).join('\n'));
  writeFileSync(join(d, 'few.yaml'), qaYaml('few.jsonl', 'fewshot:\n  n: 3\n'));
  await assert.rejects(loadTask(join(d, 'few.yaml')), /few-shot wants 3 examples but only 2/);
});

test('few-shot from a split, paraphrases multiply samples, limit keeps the first rows', async () => {
  const d = dir();
  const split = [
    ...Array.from({ length: 3 }, (_, i) => ({ id: `t${i}`, split: 'train', context: 'c', question: `train ${i}`, answers: ['x'] })),
    ...Array.from({ length: 5 }, (_, i) => ({ id: `e${i}`, split: 'test', context: 'c', question: `test ${i}`, answers: ['y'] })),
  ];
  writeFileSync(join(d, 's.jsonl'), split.map((r) => JSON.stringify(r)).join('\n'));
  writeFileSync(join(d, 's.yaml'), qaYaml('s.jsonl', 'split: test\nlimit: 4\nparaphrases:\n  - "Q: {{ question }}"\n  - "{{ question }} ({{ context }})"\nfewshot:\n  n: 2\n  split: train\n'));
  const t = await loadTask(join(d, 's.yaml'));
  assert.equal(t.rows, 4);
  assert.equal(t.samples.length, 4 * 3);
  assert.deepEqual(t.samples.slice(0, 3).map((s) => [s.id, s.template]), [['e0', 0], ['e0~p1', 1], ['e0~p2', 2]]);
  for (const s of t.samples) {
    const shots = s.messages!.filter((m) => m.role === 'user').slice(0, -1).map((m) => m.content);
    assert.equal(shots.length, 2);
    for (const q of shots) assert.match(q, /train \d/);
  }
  assert.equal(t.samples[1]!.messages!.at(-1)!.content, 'Q: test 0');
});

test('template variables: free names only (not loop variables, attributes, filters or globals)', () => {
  const t = compileTemplate('{% for a in answers %}{{ a | upper }}{% endfor %}{{ doc.title }} {% set n = 2 %}{{ n }} {{ range(3) | length }} {{ x if y is defined else z }}');
  assert.deepEqual(t.variables, ['answers', 'doc', 'x', 'z']); // y is only tested with `is defined`
  assert.equal(compileTemplate('{{ q | trim }}!').render({ q: '  hi ' }), 'hi!');
  assert.throws(() => compileTemplate('{{ q ', 'my.yaml: prompt'), /my\.yaml: prompt: invalid Jinja template/);
});

test('every example task under examples/tasks loads', async () => {
  const base = join(import.meta.dirname, '../../examples/tasks');
  const files = readdirSync(base).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 4);
  const types = new Set<string>();
  for (const f of files) {
    const t = await loadTask(join(base, f));
    assert.ok(t.rows >= 10 && t.rows <= 20, `${f}: ${t.rows} rows`);
    types.add(t.spec.type);
  }
  assert.deepEqual([...types].sort(), ['generation', 'multiple_choice', 'qa', 'summarization']);
});

test('CSV rows report the line they start on, also after multi-line cells and blank lines', async () => {
  const d = dir();
  writeFileSync(join(d, 'm.csv'), 'id,context,question,answers\nr1,"line one\nline two",q1,a\n\nr2,c,q2,b\nr3,c,,c\n');
  const got = await loadRows(join(d, 'm.csv'));
  assert.deepEqual(got.map((r) => r.where.split(':').pop()), ['2', '5', '6']);
  assert.equal(got[0]!.values.context, 'line one\nline two');
});
