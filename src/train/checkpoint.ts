// Checkpoints: everything needed to continue a run exactly where it stopped.
//
//   <runDir>/checkpoints/step-00000120/
//     model.safetensors      params, one F32 tensor per leaf, named by dotted tree path ("layers.0.wqkv")
//     optimizer.safetensors  optimizer state leaves, named by path ("m.layers.0.wqkv", "v.…")
//     state.json             step, host RNG state, data position, token count, format version
//
// A checkpoint is written into a temporary directory and renamed into place, so a crash while
// saving never leaves a half checkpoint under a real name; `latestCheckpoint` ignores temporaries.

import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { np, tree, type Arr } from '../engine/index.js';
import type { HostTensor } from '../engine/tree.js';
import { readSafetensors, writeSafetensors } from '../formats/safetensors.js';
import { treePaths, type Tree } from './optim.js';

export const CHECKPOINT_VERSION = 1;

export interface TrainerState {
  version: number;
  /** Number of optimizer updates done. */
  step: number;
  /** Host RNG (engine Rng) state after `step`. */
  rng: number;
  /** The data source's position after `step` (DataSource.state()). */
  data: unknown;
  /** Tokens consumed so far. */
  tokens: number;
  /** Anything else a caller wants restored (JSON). */
  extra?: unknown;
}

export interface CheckpointRef {
  dir: string;
  step: number;
}

const STEP_DIR = /^step-(\d+)$/;
export const checkpointsDir = (runDir: string) => join(runDir, 'checkpoints');
const stepDirName = (step: number) => `step-${String(step).padStart(8, '0')}`;

/** Leaves of a tree as host tensors keyed by dotted path (reads the device; keeps the caller's references). */
export async function treeToHost(t: Tree, prefix = ''): Promise<Record<string, HostTensor>> {
  const paths = treePaths(t, prefix);
  const leaves = tree.leaves(t as never) as Arr[];
  const out: Record<string, HostTensor> = {};
  for (let i = 0; i < leaves.length; i++) {
    const x = leaves[i]!;
    const name = paths[i]!;
    // (test with a method, not `.ref`: reading `.ref` adds a reference)
    if (!x || typeof (x as { dataSync?: unknown }).dataSync !== 'function') throw new Error(`checkpoint: leaf "${name}" is not an array`);
    if (name in out) throw new Error(`checkpoint: two leaves share the path "${name}"`);
    const d = await x.ref.data();
    out[name] = { shape: [...x.shape], data: d instanceof Float32Array ? d : Float32Array.from(d as ArrayLike<number>) };
  }
  return out;
}

/**
 * Build a tree shaped like `template` (any tree whose leaves have `.shape`, e.g. current params, not
 * consumed) from host tensors named by path. Every leaf must be present with the same shape.
 */
export function hostToTree(template: Tree, tensors: Map<string, HostTensor>, file: string, prefix = ''): Tree {
  const paths = treePaths(template, prefix);
  const [tl, def] = tree.flatten(template as never) as [{ shape: number[] }[], ReturnType<typeof tree.flatten>[1]];
  const leaves = tl.map((leaf, i) => {
    const name = paths[i]!;
    const t = tensors.get(name);
    if (!t) throw new Error(`${file}: tensor "${name}" is missing (the checkpoint does not match this model)`);
    if (t.shape.length !== leaf.shape.length || t.shape.some((d, j) => d !== leaf.shape[j]))
      throw new Error(`${file}: tensor "${name}" has shape [${t.shape.join(', ')}], the model expects [${leaf.shape.join(', ')}]`);
    return np.array(t.data, { shape: [...t.shape] });
  });
  return tree.unflatten(def, leaves) as Tree;
}

/** Save a checkpoint for `state.step`. Borrows params and optState. Returns the checkpoint directory. */
export async function saveCheckpoint(runDir: string, params: Tree, optState: Tree, state: Omit<TrainerState, 'version'>): Promise<string> {
  const root = checkpointsDir(runDir);
  mkdirSync(root, { recursive: true });
  const final = join(root, stepDirName(state.step));
  const tmp = `${final}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  const meta = { format: 'alignlab-checkpoint', step: String(state.step) };
  writeSafetensors(join(tmp, 'model.safetensors'), await treeToHost(params), meta);
  writeSafetensors(join(tmp, 'optimizer.safetensors'), await treeToHost(optState), meta);
  writeFileSync(join(tmp, 'state.json'), JSON.stringify({ version: CHECKPOINT_VERSION, ...state }, null, 2) + '\n');
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  return final;
}

/** Complete checkpoints of a run, oldest first. */
export function listCheckpoints(runDir: string): CheckpointRef[] {
  const root = checkpointsDir(runDir);
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((name) => ({ name, m: STEP_DIR.exec(name) }))
    .filter((e) => e.m && existsSync(join(root, e.name, 'state.json')))
    .map((e) => ({ dir: join(root, e.name), step: Number(e.m![1]) }))
    .sort((a, b) => a.step - b.step);
}

export function latestCheckpoint(runDir: string): CheckpointRef | null {
  return listCheckpoints(runDir).at(-1) ?? null;
}

/** Delete all but the newest `keep` checkpoints (and stale temporaries). */
export function pruneCheckpoints(runDir: string, keep: number): void {
  const root = checkpointsDir(runDir);
  if (!existsSync(root)) return;
  for (const name of readdirSync(root)) if (/^step-\d+\.tmp-/.test(name)) rmSync(join(root, name), { recursive: true, force: true });
  const all = listCheckpoints(runDir);
  for (const c of all.slice(0, Math.max(0, all.length - Math.max(1, keep)))) rmSync(c.dir, { recursive: true, force: true });
}

export function readTrainerState(dir: string): TrainerState {
  const file = join(dir, 'state.json');
  let s: TrainerState;
  try {
    s = JSON.parse(readFileSync(file, 'utf-8')) as TrainerState;
  } catch (e) {
    throw new Error(`${file}: cannot read the trainer state (${(e as Error).message})`);
  }
  if (s.version !== CHECKPOINT_VERSION) throw new Error(`${file}: field "version" is ${s.version}, this alignlab reads ${CHECKPOINT_VERSION}`);
  for (const k of ['step', 'rng', 'tokens'] as const)
    if (typeof s[k] !== 'number' || !Number.isFinite(s[k])) throw new Error(`${file}: field "${k}" must be a number, got ${JSON.stringify(s[k])}`);
  return s;
}

/**
 * Load a checkpoint. `paramsTemplate` and `optTemplate` give the tree structures and shapes (they are
 * not consumed). Returns fresh arrays owned by the caller.
 */
export function loadCheckpoint(dir: string, paramsTemplate: Tree, optTemplate: Tree): { params: Tree; optState: Tree; state: TrainerState } {
  const state = readTrainerState(dir);
  const mf = join(dir, 'model.safetensors'), of = join(dir, 'optimizer.safetensors');
  const params = hostToTree(paramsTemplate, readSafetensors(mf), mf);
  const optState = hostToTree(optTemplate, readSafetensors(of), of);
  return { params, optState, state };
}
