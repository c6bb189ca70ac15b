// Small task files for runner tests, written into a temp folder: QA with a paraphrase, open generation,
// summarization (CSV) and multiple choice. 6 + 6 + 4 + 4 + 5 = 25 samples per model.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SAMPLES_PER_MODEL = 6 * 2 + 4 + 4 + 5;

export function writeTaskFixtures(): string {
  const d = mkdtempSync(join(tmpdir(), 'alignlab-eval-'));
  const qa = [
    ['The blue door opened in 1931. The red door opened in 1887.', 'When did the blue door open?', ['1931']],
    ['Anna founded the club. Her friend Pavel ran it for ten years.', 'Who ran the club?', ['Pavel']],
    ['The ship carried 400 barrels of oil. Its sister ship carried 300 barrels.', 'How many barrels did the sister ship carry?', ['300 barrels', '300']],
    ['The market is on Thursdays. The fair is on Mondays.', 'When is the fair?', ['on Mondays', 'Mondays']],
    ['Rosa grew beans by the fence. Colm grew potatoes in the field.', 'What did Colm grow?', ['potatoes']],
    ['The east wing shows coins. The west wing shows maps.', 'What does the west wing show?', ['maps']],
  ];
  writeFileSync(join(d, 'qa.jsonl'), qa.map(([context, question, answers], i) => JSON.stringify({ id: `q${i}`, context, question, answers })).join('\n') + '\n');
  writeFileSync(
    join(d, 'qa.yaml'),
    `name: qa
type: qa
data: qa.jsonl
id_field: id
prompt: |-
  Context: {{ context }}
  Question: {{ question }}
paraphrases:
  - |-
    Question: {{ question }}
    Context: {{ context }}
generation:
  max_tokens: 30
`,
  );
  const prompts = ['Explain why gardens need water in summer.', 'Describe a quiet harbour morning.', 'Give tips for keeping bicycles clean.', 'Explain what a household budget is.'];
  writeFileSync(join(d, 'gen.json'), JSON.stringify(prompts.map((instruction, i) => ({ id: `g${i}`, instruction })), null, 2));
  writeFileSync(join(d, 'gen.yaml'), 'name: gen\ntype: generation\ndata: gen.json\nid_field: id\nprompt: "{{ instruction }}"\ngeneration:\n  max_tokens: 40\n');
  const docs = [
    ['The council closed the car park for repairs. Drivers must use the station. Shops are worried.', 'The car park is closed for repairs.'],
    ['Volunteers planted trees by the river. The trees will shade the water. More are planned.', 'Volunteers planted riverside trees.'],
    ['The library will open on Sundays. Two librarians were hired. Children get a reading hour.', 'The library opens on Sundays.'],
    ['A fire burned at the plant for five hours. Smoke covered the city. The cause is unknown.', 'A five-hour fire covered the city in smoke.'],
  ];
  writeFileSync(join(d, 'sum.csv'), 'id,document,summary\n' + docs.map(([doc, sum], i) => `s${i},"${doc}","${sum}"`).join('\n') + '\n');
  writeFileSync(join(d, 'sum.yaml'), 'name: sum\ntype: summarization\ndata: sum.csv\nid_field: id\nprompt: "Summarize. Article: {{ document }}"\ngeneration:\n  max_tokens: 40\n');
  const mc = [
    ['Context: cats purr and dogs bark. Which animal barks?', ['dogs', 'fish'], 0],
    ['Context: ice is cold and fire is hot. What is hot?', ['ice', 'fire'], 1],
    ['Context: the sky is blue and grass is green. What is green?', ['sky', 'grass', 'sea'], 1],
    ['Context: trains run on rails and boats sail on water. What runs on rails?', ['boats', 'trains'], 1],
    ['Context: bread is baked and soup is boiled. What is baked?', ['bread', 'soup'], 0],
  ];
  writeFileSync(join(d, 'mc.jsonl'), mc.map(([q, choices, gold]) => JSON.stringify({ q, choices, gold })).join('\n') + '\n');
  writeFileSync(join(d, 'mc.yaml'), 'name: mc\ntype: multiple_choice\ndata: mc.jsonl\nprompt: "{{ q }}\\nAnswer:"\n');
  return d;
}

export function writeEvalConfig(dir: string, name: string, body: string): string {
  const f = join(dir, name);
  writeFileSync(f, body);
  return f;
}
