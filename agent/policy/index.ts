/**
 * Policy networks (MLP on the vector form, GNN on the graph form), selected by name, and their
 * on-disk form: the TensorFlow.js layout of a model directory,
 *
 *   model.json    { format: 'looptune-policy', generatedBy, modelTopology: PolicySpec,
 *                   weightsManifest: [{ paths: ['weights.bin'], weights: [{ name, shape, dtype }] }],
 *                   userDefinedMetadata }
 *   weights.bin   the weights, concatenated little-endian float32 (tf.io.encodeWeights)
 *
 * Loading reads both files with node:fs and decodes them with tf.io.decodeWeights: no tfjs-node.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tf } from '../backend.ts';
import { fail } from '../../ir/errors.ts';
import { GnnPolicy } from './gnn.ts';
import { MlpPolicy } from './mlp.ts';
import type { NetworkConfig, PolicyNetwork, PolicySpec } from './network.ts';

export * from './network.ts';
export { MlpPolicy, VECTOR_SIZE } from './mlp.ts';
export { GnnPolicy, encodeGraphs, RELATIONS } from './gnn.ts';

export const DEFAULT_MLP: NetworkConfig = { kind: 'mlp', hidden: [256, 256], activation: 'tanh' };
export const DEFAULT_GNN: NetworkConfig = { kind: 'gnn', hidden: 64, layers: 3, headHidden: 128, activation: 'tanh', maxNodes: 16 };

export function observationFor(network: NetworkConfig): 'vector' | 'graph' {
  return network.kind === 'gnn' ? 'graph' : 'vector';
}

/** A fresh network; `seed` null leaves the weights zero (for loading). */
export function createPolicy(spec: PolicySpec, seed: number | null = 0): PolicyNetwork {
  switch (spec.network.kind) {
    case 'mlp': return new MlpPolicy(spec, seed);
    case 'gnn': return new GnnPolicy(spec, seed);
  }
}

/** Current weights by logical name (copies). */
export function policyWeights(policy: PolicyNetwork): tf.NamedTensorMap {
  const out: tf.NamedTensorMap = {};
  for (const p of policy.params) out[p.name] = p.variable.clone();
  return out;
}

/** Assigns weights by logical name; every parameter must be present with its shape. */
export function setPolicyWeights(policy: PolicyNetwork, weights: tf.NamedTensorMap): void {
  for (const p of policy.params) {
    const w = weights[p.name];
    if (!w) fail(`policy weights lack '${p.name}'`);
    if (w.shape.join('x') !== p.variable.shape.join('x')) {
      fail(`policy weight '${p.name}' has shape ${w.shape.join('x')}, the network expects ${p.variable.shape.join('x')}`);
    }
    p.variable.assign(w as tf.Tensor);
  }
}

export interface PolicyFiles {
  spec: PolicySpec;
  weights: tf.NamedTensorMap;
  metadata: Record<string, unknown>;
}

/** Writes model.json + weights.bin into `dir` (each file written to a temporary name, then renamed). */
export async function savePolicy(policy: PolicyNetwork, dir: string, metadata: Record<string, unknown> = {}): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const named = policy.params.map((p) => ({ name: p.name, tensor: p.variable as tf.Tensor }));
  const { data, specs } = await tf.io.encodeWeights(named);
  const model = {
    format: 'looptune-policy',
    generatedBy: `TensorFlow.js ${tf.version_core}`,
    convertedBy: null,
    modelTopology: policy.spec,
    weightsManifest: [{ paths: ['weights.bin'], weights: specs }],
    userDefinedMetadata: metadata,
  };
  writeAtomic(path.join(dir, 'weights.bin'), new Uint8Array(data));
  writeAtomic(path.join(dir, 'model.json'), JSON.stringify(model, null, 2) + '\n');
}

export function writeAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

/** Reads a policy directory (no network is built). */
export function readPolicyFiles(dir: string): PolicyFiles {
  let model: {
    format?: string; modelTopology?: PolicySpec; userDefinedMetadata?: Record<string, unknown>;
    weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
  };
  try {
    model = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8'));
  } catch (e) {
    fail(`cannot read policy ${path.join(dir, 'model.json')}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (model.format !== 'looptune-policy' || !model.modelTopology || !model.weightsManifest) {
    fail(`${path.join(dir, 'model.json')} is not a looptune policy (format '${model.format}')`);
  }
  const specs = model.weightsManifest.flatMap((g) => g.weights);
  const buffers = model.weightsManifest.flatMap((g) => g.paths).map((p) => {
    const b = readFileSync(path.join(dir, p));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  });
  const data = buffers.length === 1 ? buffers[0]! : tf.io.concatenateArrayBuffers(buffers);
  return { spec: model.modelTopology, weights: tf.io.decodeWeights(data, specs), metadata: model.userDefinedMetadata ?? {} };
}

/** Builds the network of a policy directory and loads its weights. */
export function loadPolicy(dir: string): { policy: PolicyNetwork; metadata: Record<string, unknown> } {
  const files = readPolicyFiles(dir);
  const policy = createPolicy(files.spec, null);
  setPolicyWeights(policy, files.weights);
  tf.dispose(Object.values(files.weights));
  return { policy, metadata: files.metadata };
}
