// A process that writes to one store as a study helper or a training run does, as fast as it can: a study's
// checkpoints (one transaction per checkpoint) and a run's metrics. Usage: store-writer.ts <db> <name> <n>.
import { openStore } from '../../src/store/db.js';
import { logMetrics, startRun } from '../../src/store/runs.js';
import { recordStudyResults } from '../../src/store/studies.js';

const [path, name, n] = process.argv.slice(2) as [string, string, string];
const db = openStore(path);
startRun(db, { id: name, kind: 'test' });
for (let i = 0; i < Number(n); i++) {
  recordStudyResults(db, '/study', { name: 'shared', runs: [{ id: `${name}-${i}`, method: 'dpo', setting: { beta: 0.1 }, seed: 0, status: 'ok', checkpoints: [{ step: i, kl: i, reward: 0.5 }] }] });
  logMetrics(db, name, i, { loss: i });
}
