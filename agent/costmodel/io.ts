/**
 * Saving and loading TF.js layers models as files in the standard tfjs format (a `model.json`
 * with the topology and weights manifest, plus one `weights.bin`), without tfjs-node: an IOHandler
 * over node:fs. `tf.loadLayersModel('file://...')` needs tfjs-node; `fileIO(dir)` works anywhere:
 *
 *   await model.save(fileIO(dir, { looptune: meta }));
 *   const model = await tf.loadLayersModel(fileIO(dir));
 *   const meta = readModelMetadata(dir);   // what was passed as extra metadata
 *
 * The files load in any TF.js (browser `tf.loadLayersModel('http://.../model.json')` included).
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tf } from '../backend.ts';

export const MODEL_FILE = 'model.json';
export const WEIGHTS_FILE = 'weights.bin';

function joinWeights(data: tf.io.WeightData | undefined): ArrayBuffer {
  if (!data) return new ArrayBuffer(0);
  return Array.isArray(data) ? tf.io.CompositeArrayBuffer.join(data) : data;
}

function writeAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, file);
}

/** An IOHandler that saves to / loads from `dir`/model.json + `dir`/weights.bin. */
export function fileIO(dir: string, metadata?: Record<string, unknown>): tf.io.IOHandler {
  return {
    async save(artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> {
      mkdirSync(dir, { recursive: true });
      const weights = new Uint8Array(joinWeights(artifacts.weightData));
      const json = {
        format: artifacts.format ?? 'layers-model',
        generatedBy: artifacts.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version_layers}`,
        convertedBy: artifacts.convertedBy ?? null,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [WEIGHTS_FILE], weights: artifacts.weightSpecs ?? [] }],
        userDefinedMetadata: { ...(artifacts.userDefinedMetadata ?? {}), ...(metadata ?? {}) },
      };
      // weights first: a model.json on disk always has its weights next to it
      writeAtomic(path.join(dir, WEIGHTS_FILE), weights);
      writeAtomic(path.join(dir, MODEL_FILE), `${JSON.stringify(json)}\n`);
      return {
        modelArtifactsInfo: {
          dateSaved: new Date(),
          modelTopologyType: 'JSON',
          weightDataBytes: weights.byteLength,
        },
      };
    },
    async load(): Promise<tf.io.ModelArtifacts> {
      const json = JSON.parse(readFileSync(path.join(dir, MODEL_FILE), 'utf8')) as tf.io.ModelJSON;
      const specs: tf.io.WeightsManifestEntry[] = [];
      const buffers: ArrayBuffer[] = [];
      for (const group of json.weightsManifest ?? []) {
        specs.push(...group.weights);
        for (const p of group.paths) {
          const b = readFileSync(path.join(dir, p));
          buffers.push(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer);
        }
      }
      return {
        modelTopology: json.modelTopology,
        weightSpecs: specs,
        weightData: tf.io.CompositeArrayBuffer.join(buffers),
        format: json.format,
        generatedBy: json.generatedBy,
        convertedBy: json.convertedBy,
        ...(json.userDefinedMetadata ? { userDefinedMetadata: json.userDefinedMetadata } : {}),
      };
    },
  };
}

/** The user-defined metadata of a saved model (what `fileIO(dir, metadata)` wrote). */
export function readModelMetadata(dir: string): Record<string, unknown> {
  const json = JSON.parse(readFileSync(path.join(dir, MODEL_FILE), 'utf8')) as { userDefinedMetadata?: Record<string, unknown> };
  return json.userDefinedMetadata ?? {};
}
