// Evaluation results for the dashboard (placeholder until the store records evaluations).
import type { DB } from '../store/db.js';

export interface EvalState {
  evals: unknown[];
}

export function readEvalState(_db: DB): EvalState | null {
  return null;
}
