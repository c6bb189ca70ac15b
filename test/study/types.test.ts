import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addCheckpoint, addCost, finishRun, newRun, parseRun, parseStudy, runId, serializeRun, serializeStudy, settingLabel, zeroCost } from '../../src/study/types.js';
import { BASE, DPO_CX, dpoVsPpo } from './synthetic.js';

test('runs are built incrementally and keep step order', () => {
  const r = newRun('dpo', { beta: 0.1, lr: '1e-4' }, 3, DPO_CX);
  assert.equal(r.id, 'dpo-beta=0.1,lr=1e-4-s3');
  assert.equal(r.status, 'running');
  addCheckpoint(r, { ...BASE, step: 0 });
  addCheckpoint(r, { ...BASE, step: 10 });
  assert.throws(() => addCheckpoint(r, { ...BASE, step: 10 }), /step 10 is not after step 10/);
  r.cost = addCost(addCost(zeroCost(), { wallSeconds: 2, peakRssBytes: 100 }), { wallSeconds: 3, peakRssBytes: 50 });
  assert.deepEqual([r.cost.wallSeconds, r.cost.peakRssBytes], [5, 100]);
  finishRun(r, 'diverged', 'NaN loss');
  assert.equal(r.reason, 'NaN loss');
  assert.equal(settingLabel({ z: 1, a: 'x' }), 'a=x,z=1');
  assert.equal(settingLabel({}), 'default');
  assert.equal(runId('ppo', { path: 'a/b c' }, 1), 'ppo-path=a_b_c-s1');
});

test('JSON round trip keeps NaN and Infinity; plain JSON null reads back as NaN', () => {
  const r = newRun('ppo', { klCoef: 0.05 }, 1, DPO_CX);
  addCheckpoint(r, { ...BASE, step: 5, kl: Infinity, reward: NaN, perplexity: -Infinity });
  const back = parseRun(serializeRun(r), 'result.json');
  assert.ok(Number.isNaN(back.checkpoints[0]!.reward));
  assert.equal(back.checkpoints[0]!.kl, Infinity);
  assert.equal(back.checkpoints[0]!.perplexity, -Infinity);
  const plain = parseRun(JSON.stringify(r), 'result.json');
  assert.ok(Number.isNaN(plain.checkpoints[0]!.kl));
  // A sample text that happens to read "NaN" stays a string.
  r.samples.push({ prompt: 'NaN', completion: 'Infinity', reward: 0 });
  assert.equal(parseRun(serializeRun(r)).samples[0]!.prompt, 'NaN');
});

test('a study round-trips through JSONL', () => {
  const s = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.4 });
  const text = serializeStudy(s);
  assert.equal(text.trim().split('\n').length, 1 + s.runs.length);
  assert.deepEqual(parseStudy(text, 'study.jsonl'), s);
});

test('bad input names the file, the line and the field', () => {
  const s = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.4 });
  const lines = serializeStudy(s).split('\n');
  const bad = JSON.parse(lines[3]!);
  bad.checkpoints[2].kl = 'lots';
  lines[3] = JSON.stringify(bad);
  assert.throws(() => parseStudy(lines.join('\n'), 'runs/x/study.jsonl'), /^Error: runs\/x\/study\.jsonl:4: field checkpoints\[2\]\.kl: /);
  const lines2 = serializeStudy(s).split('\n');
  lines2[2] = lines2[2]!.slice(0, 40);
  assert.throws(() => parseStudy(lines2.join('\n'), 'study.jsonl'), /study\.jsonl:3: invalid JSON/);
  const lines3 = serializeStudy(s).split('\n');
  lines3[5] = lines3[2]!;
  assert.throws(() => parseStudy(lines3.join('\n'), 'study.jsonl'), /study\.jsonl:6: field id: duplicate run id ".*" \(first on line 3\)/);
  const badMethod = serializeRun({ ...s.runs[0]!, method: 'sft' as never });
  assert.throws(() => parseRun(badMethod, 'r.json'), /r\.json: field method: /);
  assert.throws(() => parseStudy('\n\n', 'e.jsonl'), /e\.jsonl: empty study file/);
});

test('per-prompt rewards: round trip with NaN, a bad entry named by index, counts that disagree rejected', () => {
  const s = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.4 });
  s.base = { ...s.base, promptRewards: [0.1, -0.2, 0] }; // a copy: BASE is shared by every synthetic study
  for (const r of s.runs) for (const c of r.checkpoints) c.promptRewards = [0.5, NaN, 0.25];
  const back = parseStudy(serializeStudy(s), 'study.jsonl');
  assert.deepEqual(back.base.promptRewards, [0.1, -0.2, 0]);
  assert.ok(Number.isNaN(back.runs[4]!.checkpoints[3]!.promptRewards![1]));
  assert.equal(back.runs[4]!.checkpoints[3]!.promptRewards![2], 0.25);
  // Absent stays absent (results written before the field existed).
  assert.equal(parseStudy(serializeStudy(dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.4 }))).base.promptRewards, undefined);
  const lines = serializeStudy(s).split('\n');
  const bad = JSON.parse(lines[2]!);
  bad.checkpoints[1].promptRewards[2] = 'high';
  lines[2] = JSON.stringify(bad);
  assert.throws(() => parseStudy(lines.join('\n'), 'study.jsonl'), /^Error: study\.jsonl:3: field checkpoints\[1\]\.promptRewards\[2\]: /);
  const short = serializeStudy(s).split('\n');
  const run = JSON.parse(short[5]!);
  run.checkpoints[4].promptRewards = [1, 2];
  short[5] = JSON.stringify(run);
  assert.throws(() => parseStudy(short.join('\n'), 'study.jsonl'), /study\.jsonl:6: field checkpoints\[4\]\.promptRewards: 2 prompt rewards, but line 1 \(base\) has 3; every checkpoint must be evaluated on the same held-out prompts/);
});

test('per-prompt KLs, EOS rate and fluency round-trip; KLs that do not pair with the rewards are rejected with file, line and field', () => {
  const s = dpoVsPpo({ dpoGain: 0.5, ppoGain: 0.4 });
  for (const r of s.runs) for (const c of r.checkpoints) Object.assign(c, { promptRewards: [0.5, 0.25], promptKls: [1.5, NaN], eosRate: 0.75, fluency: NaN });
  s.baseModel = { heldOutLoss: 4.0, ngramLoss: 4.12 };
  const back = parseStudy(serializeStudy(s), 'study.jsonl');
  const c = back.runs[1]!.checkpoints[2]!;
  assert.equal(c.promptKls![0], 1.5);
  assert.ok(Number.isNaN(c.promptKls![1]!) && Number.isNaN(c.fluency!));
  assert.equal(c.eosRate, 0.75);
  assert.deepEqual(back.baseModel, { heldOutLoss: 4.0, ngramLoss: 4.12 });
  const lines = serializeStudy(s).split('\n');
  const run = JSON.parse(lines[3]!);
  run.checkpoints[2].promptKls = [1];
  lines[3] = JSON.stringify(run);
  assert.throws(() => parseStudy(lines.join('\n'), 'study.jsonl'), /^Error: study\.jsonl:4: field checkpoints\[2\]\.promptKls: 1 per-prompt KLs for 2 prompt rewards$/);
});
