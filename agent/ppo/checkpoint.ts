/**
 * Checkpoints of a PPO run: everything the next iteration depends on.
 *
 *   <dir>/iter-000012/
 *     model.json, weights.bin   the policy (agent/policy's format, loadable by `tune`)
 *     optimizer.bin             Adam's moments, tf.io.encodeWeights layout (specs in state.json)
 *     state.json                iteration, env steps, RNG state, Adam step, elapsed seconds, extra
 *     manifest.json             size and SHA-256 of every file above, written last: the "complete" mark
 *   <dir>/latest                name of the newest checkpoint written (informative; not trusted)
 *
 * Writing: every file goes into `iter-NNNNNN.tmp-<pid>/`, is fsynced, the manifest is written and
 * fsynced last, then the folder is renamed into place and its parent fsynced. A checkpoint is
 * complete when its manifest matches its files; a truncated or corrupt one (a full disk, a
 * crash of the machine, a damaged copy) is detected and skipped: `findCheckpoint` returns the newest
 * complete one and names the damaged ones newer than it. Checkpoints of looptune before the
 * manifest are checked structurally (files parse, weight files have the size their specs say).
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import path from 'node:path';
import { tf } from '../backend.ts';
import { fail, LoopTuneError } from '../../ir/errors.ts';
import { readPolicyFiles, savePolicy, setPolicyWeights } from '../policy/index.ts';
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
export const MANIFEST = 'manifest.json';
const CHECKPOINT_FILES = ['model.json', 'weights.bin', 'optimizer.bin', 'state.json'];

interface Manifest {
  format: 'looptune-sealed-folder';
  version: 1;
  files: Record<string, { bytes: number; sha256: string }>;
}

// ------------------------------------------------------------------------------ sealed folders

function fsyncPath(p: string): void {
  let fd: number;
  try {
    fd = openSync(p, 'r');
  } catch {
    return;
  }
  try {
    fsyncSync(fd);
  } catch {
    // some file systems refuse fsync on a folder; the rename is still atomic
  } finally {
    closeSync(fd);
  }
}

function writeSynced(file: string, data: string | Uint8Array): void {
  const fd = openSync(file, 'w');
  try {
    writeFileSync(fd, data); // loops until every byte is written
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Replaces `file` atomically and durably (temp file, fsync, rename, fsync of the folder). */
function replaceSynced(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeSynced(tmp, data);
  renameSync(tmp, file);
  fsyncPath(path.dirname(file));
}

const sha256 = (data: Uint8Array) => createHash('sha256').update(data).digest('hex');

/**
 * fsyncs every file of `dir` and writes manifest.json (sizes and hashes) last: from then on,
 * `folderDamage` can tell the folder is complete. `dir` is published by renaming it afterwards.
 */
export function sealFolder(dir: string): void {
  const files: Manifest['files'] = {};
  for (const name of readdirSync(dir).sort()) {
    const p = path.join(dir, name);
    if (name === MANIFEST || name.includes('.tmp-') || !statSync(p).isFile()) continue;
    const data = readFileSync(p);
    files[name] = { bytes: data.byteLength, sha256: sha256(data) };
    fsyncPath(p);
  }
  const manifest: Manifest = { format: 'looptune-sealed-folder', version: 1, files };
  writeSynced(path.join(dir, MANIFEST), JSON.stringify(manifest, null, 2) + '\n');
  fsyncPath(dir);
}

function weightBytes(specs: readonly tf.io.WeightsManifestEntry[]): number | null {
  let total = 0;
  for (const s of specs) {
    if (s.quantization) return null; // not written by looptune: no size rule to check
    const per = s.dtype === 'float32' || s.dtype === 'int32' ? 4 : s.dtype === 'bool' ? 1 : null;
    if (per === null) return null;
    total += per * s.shape.reduce((a, b) => a * b, 1);
  }
  return total;
}

function sizeProblem(file: string, expected: number | null): string | null {
  if (!existsSync(file)) return `${path.basename(file)} is missing`;
  const bytes = statSync(file).size;
  return expected !== null && bytes !== expected ? `${path.basename(file)} has ${bytes} of ${expected} bytes` : null;
}

/** A folder without a manifest (looptune before it): its files parse and have their specs' sizes. */
function structuralDamage(dir: string): string | null {
  const readJson = <T>(name: string): T | string => {
    const p = path.join(dir, name);
    if (!existsSync(p)) return `${name} is missing`;
    try {
      return JSON.parse(readFileSync(p, 'utf8')) as T;
    } catch {
      return `${name} is not valid JSON (truncated?)`;
    }
  };
  const model = readJson<{ weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[] }>('model.json');
  if (typeof model === 'string') return model;
  const groups = model.weightsManifest ?? [];
  if (groups.length === 1 && groups[0]!.paths.length === 1) {
    const bad = sizeProblem(path.join(dir, groups[0]!.paths[0]!), weightBytes(groups[0]!.weights));
    if (bad) return bad;
  }
  if (existsSync(path.join(dir, 'state.json')) || existsSync(path.join(dir, 'optimizer.bin'))) {
    const state = readJson<Partial<CheckpointState>>('state.json');
    if (typeof state === 'string') return state;
    const bad = sizeProblem(path.join(dir, 'optimizer.bin'), Array.isArray(state.optimizerSpecs) ? weightBytes(state.optimizerSpecs) : null);
    if (bad) return bad;
  }
  return null;
}

/**
 * Why the policy or checkpoint folder `dir` cannot be trusted ('weights.bin has 100 of 4224
 * bytes'), or null when it is complete.
 */
export function folderDamage(dir: string, required: readonly string[] = []): string | null {
  const manifestFile = path.join(dir, MANIFEST);
  if (!existsSync(manifestFile)) return structuralDamage(dir);
  let manifest: Partial<Manifest>;
  try {
    manifest = JSON.parse(readFileSync(manifestFile, 'utf8')) as Partial<Manifest>;
  } catch {
    return `${MANIFEST} is not valid JSON (truncated?)`;
  }
  if (manifest.format !== 'looptune-sealed-folder' || typeof manifest.files !== 'object' || manifest.files === null) return `${MANIFEST} is not a looptune manifest`;
  for (const name of required) if (!(name in manifest.files)) return `${MANIFEST} does not list ${name}`;
  for (const [name, want] of Object.entries(manifest.files)) {
    const p = path.join(dir, name);
    if (!existsSync(p)) return `${name} is missing`;
    const data = readFileSync(p);
    if (data.byteLength !== want.bytes) return `${name} has ${data.byteLength} of ${want.bytes} bytes`;
    if (sha256(data) !== want.sha256) return `${name} does not match its checksum`;
  }
  return null;
}

// ------------------------------------------------------------------------------ checkpoints

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
  sealFolder(tmp);
  rmSync(final, { recursive: true, force: true });
  renameSync(tmp, final);
  fsyncPath(dir);
  replaceSynced(path.join(dir, 'latest'), name + '\n');
  if (opts.keep !== undefined) pruneCheckpoints(dir, opts.keep);
  return final;
}

/** Checkpoint folder names of `dir` (complete or not), oldest first. */
function checkpointNames(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).filter((n) => NAME.test(n)).sort();
}

/** Why the checkpoint folder cannot be resumed from, or null when it is complete. */
export function checkpointDamage(checkpoint: string): string | null {
  return folderDamage(checkpoint, CHECKPOINT_FILES);
}

/** Complete checkpoints of `dir`, oldest first. */
export function listCheckpoints(dir: string): string[] {
  return checkpointNames(dir).filter((n) => checkpointDamage(path.join(dir, n)) === null);
}

/** Keeps the newest `keep` complete checkpoints; damaged ones and leftovers of killed writes go. */
function pruneCheckpoints(dir: string, keep: number): void {
  const kept = new Set(listCheckpoints(dir).slice(-keep));
  for (const n of checkpointNames(dir)) if (!kept.has(n)) rmSync(path.join(dir, n), { recursive: true, force: true });
  for (const n of readdirSync(dir)) if (n.includes('.tmp-')) rmSync(path.join(dir, n), { recursive: true, force: true });
}

export interface CheckpointSearch {
  /** the newest complete checkpoint, or null. */
  checkpoint: string | null;
  /** checkpoints newer than it that are incomplete or corrupt, newest first. */
  damaged: { name: string; reason: string }[];
}

/** The newest complete checkpoint of `dir` and the damaged ones skipped to reach it. */
export function findCheckpoint(dir: string): CheckpointSearch {
  const damaged: CheckpointSearch['damaged'] = [];
  for (const name of checkpointNames(dir).reverse()) {
    const reason = checkpointDamage(path.join(dir, name));
    if (reason === null) return { checkpoint: path.join(dir, name), damaged };
    damaged.push({ name, reason });
  }
  return { checkpoint: null, damaged };
}

/** The newest complete checkpoint directory of `dir`, or null. */
export function latestCheckpoint(dir: string): string | null {
  return findCheckpoint(dir).checkpoint;
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
  const damage = checkpointDamage(checkpoint);
  if (damage) fail(`checkpoint ${checkpoint} is damaged: ${damage}`);
  try {
    return restore(trainer, checkpoint);
  } catch (e) {
    if (e instanceof LoopTuneError) throw e;
    fail(`cannot load checkpoint ${checkpoint}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function restore(trainer: PPOTrainer, checkpoint: string): CheckpointState {
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
