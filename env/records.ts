/**
 * Tuning records: measurement results keyed by (problem spec, target, schedule hash), persisted as
 * append-only JSONL, one JSON object per line:
 *
 *   {"problem":"matmul 64x64x64","target":"avx512","schedule":"m:4 n:4 k:64 m:16 n:16","hash":"…",
 *    "gflops":91.3,"bestSeconds":5.7e-6,"medianSeconds":6.1e-6,"timestamp":"2026-…",
 *    "host":"AMD EPYC (AuthenticAMD family 26 model 2 stepping 1, avx2+…, 2 cores)"}
 *
 * Failed kernels are recorded too (gflops 0 and `error`), so a crashing schedule is not run again.
 *
 * Crash safety: every record is one whole line written by a single appendFileSync call (O_APPEND),
 * so a process killed mid-write can only leave a torn LAST line. Loading skips (and counts) a torn
 * last line and any malformed line; the next append first writes a newline so the new record never
 * joins the torn fragment.
 *
 * Distrust: a line is a record only if it passes the schema (finite, positive figures), its problem
 * spec parses, its schedule parses for that problem and hashes to its `hash`. A caller that knows
 * the measured peak drops this host's figures above it (rejectAbovePeak). What was skipped is
 * reported in ONE warning line per file, at the first use of the store. A file that cannot be read
 * or written (a folder, no permission, read-only) is a warning too: the store goes on in memory.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fsReason, isFsError } from '../ir/fs-errors.ts';
import { z } from 'zod';
import { fail } from '../ir/errors.ts';
import type { Problem } from '../ir/problem.ts';
import { Schedule } from '../ir/schedule.ts';
import { parseProblem } from '../ir/spec.ts';
import { cacheDir } from '../targets/runtime/cache-dir.ts';

export interface TuningRecord {
  problem: string;
  target: string;
  schedule: string;
  hash: string;
  gflops: number;
  bestSeconds?: number;
  medianSeconds?: number;
  /** why the kernel produced no timing (compile error, crash, timeout). */
  error?: string;
  /** ISO date. */
  timestamp: string;
  /** the machine the timing was taken on: targets/runtime/host.ts hostKey (gpuHostKey on cuda). */
  host: string;
  /** a farm's timing: the worker that took it (its host name and pid); `host` is then that machine's kind */
  servedBy?: string;
}

/** A record's fields and their ranges; problem/schedule agreement is checked after this. */
const RecordSchema = z.object({
  problem: z.string().min(1),
  target: z.string().min(1),
  schedule: z.string().min(1),
  hash: z.string().min(1),
  gflops: z.number().nonnegative(),
  bestSeconds: z.number().positive().optional(),
  medianSeconds: z.number().positive().optional(),
  error: z.string().optional(),
  timestamp: z.string(),
  host: z.string(),
  servedBy: z.string().optional(),
}).refine((r) => r.error !== undefined || r.gflops > 0, { message: 'must be positive (or the record must carry an error)', path: ['gflops'] });

/**
 * A figure above this multiple of the peak is not a timing but a corrupt or forged line. The margin
 * covers a peak probe that read low (a probe on a busy machine reads up to 2x low; callers pass the
 * larger of the measured and nominal peaks) and the probe's own noise: kernels here reach 1.02-1.08x
 * the nominal 230 GFLOPS of one Zen 5 core, never 1.25x.
 */
export const PEAK_MARGIN = 1.25;

export interface LoadStats {
  /** non-empty lines read. */
  lines: number;
  /** records kept. */
  records: number;
  /** the last line was incomplete (a write was interrupted) and was skipped. */
  tornLastLine: boolean;
  /** other lines that were not valid records, skipped: unparseable + invalid. */
  badLines: number;
  /** not JSON. */
  unparseable: number;
  /** JSON, but not a record of its problem (schema, problem spec, schedule or hash). */
  invalid: number;
  /** this host's figures above PEAK_MARGIN × the measured peak (rejectAbovePeak). */
  abovePeak: number;
  /** the first skipped line and why. */
  firstSkipped?: { line: number; reason: string };
}

export interface RecordStoreOptions {
  /** where warning lines go (default: stderr, each distinct line once per process). */
  warn?: (line: string) => void;
}

export function recordKey(problem: string, target: string, hash: string): string {
  return `${problem}|${target}|${hash}`;
}

/**
 * The records file used when none is given: $LOOPTUNE_RECORDS, else records.jsonl in looptune's
 * cache folder (targets/runtime/cache-dir.ts). A set but empty variable is an error, not "unset".
 */
export function defaultRecordsPath(): string {
  const fromEnv = process.env.LOOPTUNE_RECORDS;
  if (fromEnv !== undefined) {
    if (fromEnv.trim() === '') fail('LOOPTUNE_RECORDS is set but empty (name a records file, or unset it)');
    return fromEnv;
  }
  return path.join(cacheDir(), 'records.jsonl');
}

const warnedLines = new Set<string>();

function warnOnStderr(line: string): void {
  if (warnedLines.has(line)) return;
  warnedLines.add(line);
  process.stderr.write(`${line}\n`);
}

/** The records' wording where a store's path differs from the general one (a parent that is a file). */
const RECORDS_WORDING: Readonly<Record<string, string>> = {
  EISDIR: 'it is a folder', ENOTDIR: 'a parent is not a folder', EEXIST: 'a parent is not a folder',
};

/** "EACCES: permission denied", "EISDIR: it is a folder"... from a Node file-system error. */
function recordsFsReason(e: unknown): string {
  if (!isFsError(e)) return (e instanceof Error ? e.message : String(e)).split('\n')[0]!;
  return `${e.code}: ${RECORDS_WORDING[e.code] ?? fsReason(e)}`;
}

/**
 * In-memory index over a JSONL file (or memory only, with a null path). Several records of one key
 * may exist (re-measurements, other hosts): `get` returns the best-timed one, optionally of one host.
 * Loaded once at open; shared by every evaluator and searcher of the process.
 */
export class RecordStore {
  readonly path: string | null;
  readonly loadStats: LoadStats;
  readonly #byKey = new Map<string, TuningRecord[]>();
  #all: TuningRecord[] = [];
  /** records read from the file (an earlier run's figures: see fromEarlierRun), with their line numbers. */
  readonly #loaded = new WeakMap<TuningRecord, number>();
  readonly #warn: (line: string) => void;
  /** the file does not end with a newline (torn tail): the next append starts with one. */
  #needsNewline = false;
  #dirReady = false;
  /** false once the file could not be read or written: records then live in memory only. */
  #writable = true;
  /** the skipped-lines warning was given (it is given at the first use of the store). */
  #reported = false;

  private constructor(file: string | null, options: RecordStoreOptions) {
    this.path = file;
    this.#warn = options.warn ?? warnOnStderr;
    this.loadStats = { lines: 0, records: 0, tornLastLine: false, badLines: 0, unparseable: 0, invalid: 0, abovePeak: 0 };
    if (file && existsSync(file)) this.#load(file);
  }

  /** Opens (and loads) the JSONL file; `null` keeps records in memory only. */
  static open(file: string | null = null, options: RecordStoreOptions = {}): RecordStore {
    return new RecordStore(file, options);
  }

  #load(file: string): void {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (e) {
      this.#writable = false;
      this.#warn(`looptune: warning: cannot read tuning records from ${file} (${recordsFsReason(e)}); continuing with in-memory records`);
      return;
    }
    if (text.length === 0) return;
    const lines = text.split('\n');
    const endsWithNewline = text.endsWith('\n');
    if (endsWithNewline) lines.pop(); // the empty string after the final newline
    this.#needsNewline = !endsWithNewline;
    const problems = new Map<string, Problem | string>();
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      this.loadStats.lines++;
      let parsed: unknown;
      let unparseable = false;
      try {
        parsed = JSON.parse(line);
      } catch {
        unparseable = true;
      }
      const why = unparseable ? 'not JSON' : invalidReason(parsed, problems);
      if (why === undefined) {
        const record = parsed as TuningRecord;
        this.#index(record);
        this.#loaded.set(record, i + 1);
        this.loadStats.records++;
        return;
      }
      if (i === lines.length - 1 && !endsWithNewline) {
        this.loadStats.tornLastLine = true;
        return;
      }
      this.loadStats.badLines++;
      if (unparseable) this.loadStats.unparseable++;
      else this.loadStats.invalid++;
      this.loadStats.firstSkipped ??= { line: i + 1, reason: why };
    });
  }

  #index(r: TuningRecord): void {
    const key = recordKey(r.problem, r.target, r.hash);
    const list = this.#byKey.get(key);
    if (list) list.push(r);
    else this.#byKey.set(key, [r]);
    this.#all.push(r);
  }

  /** The one warning line about skipped lines, at the first use of the store (after rejectAbovePeak). */
  #report(): void {
    if (this.#reported) return;
    this.#reported = true;
    const s = this.loadStats;
    const skipped = s.badLines + s.abovePeak + (s.tornLastLine ? 1 : 0);
    if (skipped === 0 || this.path === null) return;
    const parts = [
      s.unparseable ? `${s.unparseable} unparseable` : '',
      s.invalid ? `${s.invalid} invalid` : '',
      s.abovePeak ? `${s.abovePeak} above peak` : '',
      s.tornLastLine ? '1 torn last line' : '',
    ].filter(Boolean).join(', ');
    const first = s.firstSkipped ? `; first: line ${s.firstSkipped.line}: ${s.firstSkipped.reason.slice(0, 120)}` : '';
    this.#warn(`looptune: warning: ${this.path}: skipped ${skipped} of ${s.lines} lines (${parts}${first})`);
  }

  /**
   * Drops the records of `host` on `target` read from the file whose figure is above PEAK_MARGIN ×
   * `peakGflops` (no kernel runs faster than the machine's FMA peak: such a line is corrupt or
   * forged). Call it once the peak is known, before the store is used. Returns how many were dropped.
   * A peak probed on a busy machine reads about half of the real one: callers pass the larger of
   * the measured and the nominal peak, so that genuine records are not taken for forged ones.
   */
  rejectAbovePeak(target: string, host: string, peakGflops: number): number {
    if (!(Number.isFinite(peakGflops) && peakGflops > 0)) return 0;
    const limit = PEAK_MARGIN * peakGflops;
    const impossible = (r: TuningRecord) => r.target === target && r.host === host && r.gflops > limit && this.#loaded.has(r);
    const dropped = this.#all.filter(impossible);
    if (dropped.length === 0) return 0;
    this.#all = this.#all.filter((r) => !impossible(r));
    for (const r of dropped) {
      const key = recordKey(r.problem, r.target, r.hash);
      const kept = this.#byKey.get(key)!.filter((x) => x !== r);
      if (kept.length) this.#byKey.set(key, kept);
      else this.#byKey.delete(key);
    }
    this.loadStats.abovePeak += dropped.length;
    this.loadStats.records -= dropped.length;
    this.loadStats.firstSkipped ??= {
      line: this.#loaded.get(dropped[0]!)!,
      reason: `gflops: ${dropped[0]!.gflops} is above ${PEAK_MARGIN} x the peak of ${target} (${peakGflops.toFixed(1)})`,
    };
    if (this.#reported && this.path !== null) {
      this.#warn(`looptune: warning: ${this.path}: skipped ${dropped.length} records above ${PEAK_MARGIN} x the peak of ${target} (${peakGflops.toFixed(1)} GFLOPS)`);
    }
    return dropped.length;
  }

  /** Whether the record was read from the file (an earlier run's figure) rather than added now. */
  fromEarlierRun(record: TuningRecord): boolean {
    return this.#loaded.has(record);
  }

  /** best record of the key (of `host` if given); undefined if none. */
  get(problem: string, target: string, hash: string, host?: string): TuningRecord | undefined {
    this.#report();
    const list = this.#byKey.get(recordKey(problem, target, hash));
    if (!list) return undefined;
    let best: TuningRecord | undefined;
    for (const r of list) {
      if (host !== undefined && r.host !== host) continue;
      if (!best || r.gflops > best.gflops) best = r;
    }
    return best;
  }

  /**
   * Appends one record: to memory, and to the file as one whole line in a single write. A file
   * that cannot be written gives one warning; the records then stay in memory.
   */
  add(record: TuningRecord): void {
    this.#report();
    if (!RecordSchema.safeParse(record).success) throw new TypeError(`not a tuning record: ${JSON.stringify(record)}`);
    if (this.path && this.#writable) {
      try {
        if (!this.#dirReady) {
          mkdirSync(path.dirname(path.resolve(this.path)), { recursive: true });
          this.#dirReady = true;
        }
        appendFileSync(this.path, `${this.#needsNewline ? '\n' : ''}${JSON.stringify(record)}\n`);
        this.#needsNewline = false;
      } catch (e) {
        this.#writable = false;
        this.#warn(`looptune: warning: cannot write tuning records to ${this.path} (${recordsFsReason(e)}); continuing with in-memory records`);
      }
    }
    this.#index(record);
  }

  /** whether records still reach the file (false after a read or write failure, or with no file). */
  get persistent(): boolean {
    return this.path !== null && this.#writable;
  }

  /** every record, in file order. */
  records(): readonly TuningRecord[] {
    this.#report();
    return this.#all;
  }

  get size(): number {
    this.#report();
    return this.#all.length;
  }

  /** the best successful record of a problem on a target (of `host` if given). */
  best(problem: string, target: string, host?: string): TuningRecord | undefined {
    this.#report();
    let best: TuningRecord | undefined;
    for (const r of this.#all) {
      if (r.problem !== problem || r.target !== target || r.error !== undefined) continue;
      if (host !== undefined && r.host !== host) continue;
      if (!best || r.gflops > best.gflops) best = r;
    }
    return best;
  }
}

/** Why a parsed line is not a record of its problem (undefined when it is one). `problems` caches parsed specs. */
function invalidReason(x: unknown, problems: Map<string, Problem | string>): string | undefined {
  const checked = RecordSchema.safeParse(x);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    return `${issue.path.join('.') || 'record'}: ${issue.message}`;
  }
  const r = checked.data;
  let problem = problems.get(r.problem);
  if (problem === undefined) {
    try {
      problem = parseProblem(r.problem);
    } catch (e) {
      problem = e instanceof Error ? e.message : String(e);
    }
    problems.set(r.problem, problem);
  }
  if (typeof problem === 'string') return `problem: ${problem}`;
  let schedule: Schedule;
  try {
    schedule = Schedule.parse(problem, r.schedule);
  } catch (e) {
    return `schedule: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (schedule.hash() !== r.hash) return `hash: ${r.hash} is not the schedule's (${schedule.hash()})`;
  return undefined;
}
