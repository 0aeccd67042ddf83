/**
 * The tuned model artifact: what `looptune compile` (agent/tune-model.ts) writes and `loadModel`
 * (agent/compiled-model.ts) reads, shipped next to the ONNX file. It holds schedules, not code:
 * kernels regenerate from them in microseconds at load.
 *
 *   {
 *     "format": "looptune-tuned-model", "version": 1,
 *     "model": { "name": "resnet18", "sha256": "<of the ONNX bytes>", "inputShapes": { "input": [1, 3, 224, 224] } },
 *     "target": "avx512", "threads": 1, "host": "<hostKey()>", "createdAt": "2025-01-01T00:00:00.000Z",
 *     "tasks": [
 *       { "spec": "conv2d n1 c64 h56 w56 k64 r3 s3 stride1 pad1 +bias +relu", "schedule": "n:1 k:4 ...",
 *         "implementation": "generated", "layout": "nchw", "gflops": 180.2, "seconds": 2.1 }
 *     ]
 *   }
 *
 * A task's `spec` is a ModelGraph kernel node's problem spec (ir/model/graph.ts modelTasks), its
 * `schedule` a Schedule text of that problem, or of its blocked twin when `layout` is blocked
 * ('nchw16c'); `implementation` says whether tuning kept the generated kernel or the vendor library.
 * A file that is not such an artifact, or is one of another model (its sha256) or target, is
 * refused in one line naming the file.
 */
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import { fail } from '../ir/errors.ts';
import { fsFailure } from '../ir/fs-errors.ts';

export const TUNED_MODEL_FORMAT = 'looptune-tuned-model';
export const TUNED_MODEL_VERSION = 1;
export const TASK_IMPLEMENTATIONS = ['generated', 'library'] as const;
export type TaskImplementation = typeof TASK_IMPLEMENTATIONS[number];

const dims = z.array(z.number().int().positive());

const taskSchema = z.object({
  spec: z.string().min(1),
  schedule: z.string().min(1),
  implementation: z.enum(TASK_IMPLEMENTATIONS),
  layout: z.string().regex(/^nchw(\d+c)?$/, 'must be nchw or nchw<B>c (e.g. nchw16c)').optional(),
  gflops: z.number().nonnegative().optional(),
  seconds: z.number().nonnegative().optional(),
});

export const tunedModelSchema = z.object({
  format: z.literal(TUNED_MODEL_FORMAT),
  version: z.literal(TUNED_MODEL_VERSION),
  model: z.object({
    name: z.string(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
    inputShapes: z.record(z.string(), dims),
  }),
  target: z.string().min(1),
  threads: z.number().int().positive(),
  host: z.string(),
  createdAt: z.string().min(1),
  tasks: z.array(taskSchema),
});

export type TunedTask = z.infer<typeof taskSchema>;
export type TunedModel = z.infer<typeof tunedModelSchema>;

/** The artifact's sha256 of model bytes: lowercase hex. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Reads an artifact from its JSON text; `where` (a path) names it in the one-line errors. */
export function parseTunedModel(text: string, where: string): TunedModel {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    fail(`${where}: not a tuned model (invalid JSON: ${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof raw !== 'object' || raw === null || (raw as { format?: unknown }).format !== TUNED_MODEL_FORMAT) {
    fail(`${where}: not a tuned model (expected "format": "${TUNED_MODEL_FORMAT}", as looptune compile writes)`);
  }
  const parsed = tunedModelSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const at = issue.path.length > 0 ? issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('').replace(/^\./, '') : 'the file';
    const more = parsed.error.issues.length > 1 ? ` (and ${parsed.error.issues.length - 1} more)` : '';
    fail(`${where}: malformed tuned model: ${at} ${issue.message}${more}`);
  }
  const seen = new Set<string>();
  parsed.data.tasks.forEach((t, i) => {
    if (seen.has(t.spec)) fail(`${where}: malformed tuned model: tasks[${i}] repeats the task "${t.spec}"`);
    seen.add(t.spec);
  });
  return parsed.data;
}

export async function readTunedModel(path: string): Promise<TunedModel> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw fsFailure(e);
  }
  return parseTunedModel(text, path);
}

/** Writes `model` as indented JSON after checking it against the schema (a writer's bug is one line too). */
export async function writeTunedModel(path: string, model: TunedModel): Promise<void> {
  const text = `${JSON.stringify(model, null, 2)}\n`;
  parseTunedModel(text, path);
  try {
    await writeFile(path, text);
  } catch (e) {
    throw fsFailure(e);
  }
}

/** Fails in one line unless the artifact was tuned for these model bytes and this target. */
export function checkTunedModelFor(t: TunedModel, expected: { readonly sha256: string; readonly target: string; readonly where: string }): void {
  if (t.model.sha256 !== expected.sha256) {
    fail(`${expected.where}: tuned for another model (${t.model.name}, sha256 ${t.model.sha256.slice(0, 12)}…; this file's is ${expected.sha256.slice(0, 12)}…): compile this model again`);
  }
  if (t.target !== expected.target) {
    fail(`${expected.where}: tuned for target ${t.target}, not ${expected.target} (compile again for ${expected.target}, or load with target ${t.target})`);
  }
}

/** The artifact's tasks by spec. */
export function tasksBySpec(t: TunedModel): ReadonlyMap<string, TunedTask> {
  return new Map(t.tasks.map((task) => [task.spec, task]));
}
