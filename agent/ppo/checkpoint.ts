/**
 * Checkpoints of a PPO run: everything the next iteration depends on.
 *
 *   <dir>/iter-000012/
 *     model.json, weights.bin   the policy (agent/policy's format, loadable by `tune`)
 *     optimizer.bin             Adam's moments, tf.io.encodeWeights layout (specs in state.json)
 *     state.json                iteration, env steps, RNG state, Adam step, elapsed seconds, extra
 *   <dir>/latest                name of the newest complete checkpoint
 *
 * A checkpoint directory is written under a temporary name and renamed when complete, then
 * `latest` is replaced atomically: a run killed at any moment leaves the previous checkpoint usable.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tf } from '../backend.ts';
import { fail } from '../../ir/errors.ts';
import { readPolicyFiles, savePolicy, setPolicyWeights, writeAtomic } from '../policy/index.ts';
import type { PPOTrainer, TrainerState } from './ppo.ts';

export interface CheckpointState extends TrainerState {
  version: 1;
  adamStep: number;
  optimizerSpecs: tf.io.WeightsManifestEntry[];
  elapsedSeconds: number;
  createdAt: string;
  extra: Record<string, unknown>;
}

const NAME = /^iter-(\d{6,})$/;

export async function saveCheckpoint(
  trainer: PPOTrainer, dir: string, opts: { elapsedSeconds?: number; extra?: Record<string, unknown>; keep?: number; metadata?: Record<string, unknown> } = {},
): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const name = `iter-${String(trainer.iteration).padStart(6, '0')}`;
  const final = path.join(dir, name);
  const tmp = path.join(dir, `${name}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  await savePolicy(trainer.policy, tmp, opts.metadata ?? {});
  const adam = trainer.optimizer.getState();
  const named = [
    ...adam.m.map((a, i) => ({ name: `m/${trainer.policy.params[i]!.name}`, tensor: tf.tensor(a, trainer.policy.params[i]!.variable.shape) })),
    ...adam.v.map((a, i) => ({ name: `v/${trainer.policy.params[i]!.name}`, tensor: tf.tensor(a, trainer.policy.params[i]!.variable.shape) })),
  ];
  const { data, specs } = await tf.io.encodeWeights(named, 'optimizer');
  tf.dispose(named.map((n) => n.tensor));
  writeFileSync(path.join(tmp, 'optimizer.bin'), new Uint8Array(data));
  const state: CheckpointState = {
    version: 1, ...trainer.state, adamStep: adam.step, optimizerSpecs: specs,
    elapsedSeconds: opts.elapsedSeconds ?? 0, createdAt: new Date().toISOString(), extra: opts.extra ?? {},
  };
  writeFileSync(path.join(tmp, 'state.json'), JSON.stringify(state, null, 2) + '\n');
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  writeAtomic(path.join(dir, 'latest'), name + '\n');
  if (opts.keep !== undefined) pruneCheckpoints(dir, opts.keep);
  return final;
}

/** Complete checkpoints of `dir`, oldest first. */
export function listCheckpoints(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => NAME.test(n) && existsSync(path.join(dir, n, 'state.json'))).sort();
}

function pruneCheckpoints(dir: string, keep: number): void {
  const all = listCheckpoints(dir);
  for (const n of all.slice(0, Math.max(0, all.length - keep))) rmSync(path.join(dir, n), { recursive: true, force: true });
  for (const n of readdirSync(dir)) if (n.includes('.tmp-')) rmSync(path.join(dir, n), { recursive: true, force: true });
}

/** The newest checkpoint directory of `dir` (from `latest`, else the highest complete one), or null. */
export function latestCheckpoint(dir: string): string | null {
  const pointer = path.join(dir, 'latest');
  if (existsSync(pointer)) {
    const name = readFileSync(pointer, 'utf8').trim();
    if (NAME.test(name) && existsSync(path.join(dir, name, 'state.json'))) return path.join(dir, name);
  }
  const all = listCheckpoints(dir);
  return all.length ? path.join(dir, all[all.length - 1]!) : null;
}

export function readCheckpointState(checkpoint: string): CheckpointState {
  try {
    return JSON.parse(readFileSync(path.join(checkpoint, 'state.json'), 'utf8')) as CheckpointState;
  } catch (e) {
    fail(`cannot read checkpoint ${checkpoint}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Restores weights, optimizer state, RNG state and counters into `trainer`. */
export function loadCheckpoint(trainer: PPOTrainer, checkpoint: string): CheckpointState {
  const state = readCheckpointState(checkpoint);
  const files = readPolicyFiles(checkpoint);
  if (JSON.stringify(files.spec.actions) !== JSON.stringify(trainer.policy.spec.actions)
    || JSON.stringify(files.spec.network) !== JSON.stringify(trainer.policy.spec.network)) {
    fail(`checkpoint ${checkpoint} holds a different network or action set than the experiment`);
  }
  setPolicyWeights(trainer.policy, files.weights);
  tf.dispose(Object.values(files.weights));
  const buf = readFileSync(path.join(checkpoint, 'optimizer.bin'));
  const moments = tf.io.decodeWeights(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer, state.optimizerSpecs);
  const params = trainer.policy.params;
  const get = (k: string) => {
    const t = moments[k];
    if (!t) fail(`checkpoint ${checkpoint}: optimizer state lacks '${k}'`);
    return t.dataSync() as Float32Array;
  };
  trainer.optimizer.setState({
    step: state.adamStep,
    m: params.map((p) => get(`m/${p.name}`).slice()),
    v: params.map((p) => get(`v/${p.name}`).slice()),
  });
  tf.dispose(Object.values(moments));
  trainer.restore(state);
  return state;
}
