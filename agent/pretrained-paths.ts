/**
 * Where shipped data lives: `agent/pretrained/<target>/` holds a target's policy (model.json,
 * weights.bin, manifest.json), its cost model (`costmodel/`) and the tuning records that cost
 * model was trained on (`records.jsonl`).
 *
 * Paths resolve from this file, so they hold in the device bundle too: esbuild puts this module
 * into `.device/looptune/looptune.mjs`, and targets/cuda/bundle.ts copies the data to
 * `.device/looptune/pretrained/<target>/`.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const PRETRAINED_ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'pretrained');

/** The folder of a target's shipped data (agent/pretrained/<target>). */
export function pretrainedDir(target: string): string {
  return path.join(PRETRAINED_ROOT, target);
}

/** A target's shipped cost model (agent/pretrained/<target>/costmodel: model.json + weights.bin). */
export function pretrainedCostModelDir(target: string): string {
  return path.join(pretrainedDir(target), 'costmodel');
}
