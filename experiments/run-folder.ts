/**
 * A run folder is recognisably looptune's: `.looptune-run` (a small JSON marker) is written when the
 * runner creates the folder, before anything else goes in. The runner removes or replaces files
 * (checkpoints/, policy/, metrics.jsonl, experiment.yaml) only in a folder that carries the marker,
 * so an `output:` that names someone else's folder is refused instead of emptied. A folder that
 * does not exist is created; an existing empty folder is adopted (the marker is written into it).
 */
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeSync, closeSync, fsyncSync } from 'node:fs';
import path from 'node:path';
import { fail } from '../ir/errors.ts';
import { fsReason } from '../ir/fs-errors.ts';

export const RUN_MARKER = '.looptune-run';

export interface RunMarker {
  format: 'looptune-run';
  version: 1;
  /** ISO time the folder was created or adopted. */
  created: string;
  /** the experiment file the folder was created for. */
  experiment: string;
}

/** The marker of `dir`, or null when it has none; a marker that is not looptune's is an error. */
export function readRunMarker(dir: string): RunMarker | null {
  const file = path.join(dir, RUN_MARKER);
  if (!existsSync(file)) return null;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    fail(`cannot read ${file}: ${fsReason(e)}`);
  }
  // empty: the creating process is between its open and its write (or died there)
  if (text.trim() === '') return { format: 'looptune-run', version: 1, created: '', experiment: '' };
  let marker: Partial<RunMarker> | null = null;
  try {
    marker = JSON.parse(text) as Partial<RunMarker>;
  } catch {
    marker = null;
  }
  if (!marker || marker.format !== 'looptune-run') fail(`${file} is not a looptune run marker; refusing to use ${dir} as a run folder`);
  return marker as RunMarker;
}

/** The nearest existing ancestor of `p` (itself included). */
function existingAncestor(p: string): string {
  let at = path.resolve(p);
  while (!existsSync(at) && path.dirname(at) !== at) at = path.dirname(at);
  return at;
}

function createFolder(dir: string): void {
  const base = existingAncestor(dir);
  if (!statSync(base).isDirectory()) {
    fail(`cannot create run folder ${dir}: ${path.relative(process.cwd(), base) || base} is a file, not a folder`);
  }
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    fail(`cannot create run folder ${dir}: ${fsReason(e)}`);
  }
}

function writeMarker(dir: string, experiment: string): void {
  const marker: RunMarker = { format: 'looptune-run', version: 1, created: new Date().toISOString(), experiment: path.resolve(experiment) };
  let fd: number;
  try {
    // 'wx': never replace a marker another process has just written
    fd = openSync(path.join(dir, RUN_MARKER), 'wx');
  } catch (e) {
    if ((e as { code?: string }).code === 'EEXIST') return;
    fail(`cannot write to run folder ${dir}: ${fsReason(e)}`);
  }
  try {
    writeSync(fd, JSON.stringify(marker) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Makes `dir` a usable run folder for `experiment`: creates it (with the marker) when absent, adopts
 * it when empty, accepts it when it carries the marker, and refuses it otherwise (one line).
 */
export function openRunFolder(dir: string, experiment: string): void {
  if (!existsSync(dir)) {
    createFolder(dir);
    writeMarker(dir, experiment);
    return;
  }
  if (!statSync(dir).isDirectory()) fail(`cannot use ${dir} as a run folder: it is a file, not a folder`);
  if (readRunMarker(dir)) return;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (e) {
    fail(`cannot read run folder ${dir}: ${fsReason(e)}`);
  }
  if (entries.length > 0) {
    fail(`${dir} is not a looptune run folder (it has files and no ${RUN_MARKER}); name a new or empty folder in output:`);
  }
  writeMarker(dir, experiment);
}
