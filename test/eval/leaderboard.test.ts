// The eval leaderboard is rendered by report/ from the analysed result it is handed: CI bars only for
// [0,1] metrics (as the result says), and no evaluation code imported at runtime.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openStore } from '../../src/store/db.js';
import { registerProvider } from '../../src/eval/registry.js';
import { runEvalFile } from '../../src/eval/runner.js';
import { renderHtml, renderMarkdown } from '../../src/report/leaderboard.js';
import { ruleFactory } from './helpers/rule-provider.js';
import { writeEvalConfig, writeTaskFixtures } from './helpers/fixtures.js';

before(() => registerProvider('rule', ruleFactory));

test('CI bars are drawn for the [0,1] metrics the result names, not for lengths; Markdown shows the same numbers', async () => {
  const d = writeTaskFixtures();
  const cfg = writeEvalConfig(d, 'lb.yaml', `name: lb\nproviders:\n  - id: rule:extractive\n    label: x\ntasks: [qa.yaml, gen.yaml]\nbootstrap: 50\nout: out\n`);
  const r = await runEvalFile(cfg, { db: openStore(join(d, 's.db')), log: () => {} });
  const gen = r.tasks.find((t) => t.name === 'gen')!;
  assert.ok(gen.metrics.includes('length') && !gen.unit_metrics.includes('length') && gen.unit_metrics.includes('distinct_1'));
  const html = renderHtml(r);
  const table = html.slice(html.indexOf('<table id="task-gen">'), html.indexOf('</table>', html.indexOf('<table id="task-gen">')));
  const cells = [...table.matchAll(/<td[^>]*>(.*?)<\/td>/gs)].map((m) => m[1]!);
  // Row: model, then one cell per metric, then the by-template column.
  gen.metrics.forEach((m, i) => assert.equal(cells[1 + i]!.includes('<svg class="ci"'), gen.unit_metrics.includes(m), `bar for ${m}`));
  const md = renderMarkdown(r);
  const f1 = r.tasks.find((t) => t.name === 'qa')!.scores.x!.f1!;
  assert.ok(md.includes(`${f1.value.toFixed(3)} [${f1.lo.toFixed(3)}, ${f1.hi.toFixed(3)}]`));
});

test('report/leaderboard.ts imports nothing from eval/ at runtime (types only)', () => {
  const src = readFileSync(fileURLToPath(new URL('../../src/report/leaderboard.ts', import.meta.url)), 'utf8');
  const fromEval = [...src.matchAll(/^import (type )?[^;]*from '(\.\.\/eval\/[^']+)';/gm)];
  assert.ok(fromEval.length > 0, 'the check found the eval imports');
  for (const m of fromEval) assert.equal(m[1], 'type ', `runtime import of ${m[2]}`);
});
