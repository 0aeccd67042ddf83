/**
 * Tuning records: measurement results keyed by (problem spec, target, schedule hash), persisted as
 * append-only JSONL, one JSON object per line:
 *
 *   {"problem":"matmul 64x64x64","target":"avx512","schedule":"m:4 n:4 k:64 m:16 n:16","hash":"…",
 *    "gflops":91.3,"bestSeconds":5.7e-6,"medianSeconds":6.1e-6,"timestamp":"2026-…","host":"AMD EPYC …"}
 *
 * Failed kernels are recorded too (gflops 0 and `error`), so a crashing schedule is not run again.
 *
 * Crash safety: every record is one whole line written by a single appendFileSync call (O_APPEND),
 * so a process killed mid-write can only leave a torn LAST line. Loading skips (and counts) a torn
 * last line and any malformed line; the next append first writes a newline so the new record never
 * joins the torn fragment.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

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
  /** CPU model the timing was taken on. */
  host: string;
}

export interface LoadStats {
  /** records read. */
  records: number;
  /** the last line was incomplete (a write was interrupted) and was skipped. */
  tornLastLine: boolean;
  /** other lines that were not valid records, skipped. */
  badLines: number;
}

export function recordKey(problem: string, target: string, hash: string): string {
  return `${problem}|${target}|${hash}`;
}

function isRecord(x: unknown): x is TuningRecord {
  if (!x || typeof x !== 'object') return false;
  const r = x as Record<string, unknown>;
  return typeof r.problem === 'string' && typeof r.target === 'string' && typeof r.schedule === 'string'
    && typeof r.hash === 'string' && typeof r.gflops === 'number' && Number.isFinite(r.gflops)
    && typeof r.timestamp === 'string' && typeof r.host === 'string';
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
  readonly #all: TuningRecord[] = [];
  /** the file does not end with a newline (torn tail): the next append starts with one. */
  #needsNewline = false;
  #dirReady = false;

  private constructor(file: string | null) {
    this.path = file;
    this.loadStats = { records: 0, tornLastLine: false, badLines: 0 };
    if (file && existsSync(file)) this.#load(file);
  }

  /** Opens (and loads) the JSONL file; `null` keeps records in memory only. */
  static open(file: string | null = null): RecordStore {
    return new RecordStore(file);
  }

  #load(file: string): void {
    const text = readFileSync(file, 'utf8');
    if (text.length === 0) return;
    const lines = text.split('\n');
    const endsWithNewline = text.endsWith('\n');
    if (endsWithNewline) lines.pop(); // the empty string after the final newline
    this.#needsNewline = !endsWithNewline;
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (isRecord(parsed)) {
        this.#index(parsed);
        this.loadStats.records++;
      } else if (i === lines.length - 1 && !endsWithNewline) {
        this.loadStats.tornLastLine = true;
      } else {
        this.loadStats.badLines++;
      }
    });
  }

  #index(r: TuningRecord): void {
    const key = recordKey(r.problem, r.target, r.hash);
    const list = this.#byKey.get(key);
    if (list) list.push(r);
    else this.#byKey.set(key, [r]);
    this.#all.push(r);
  }

  /** best record of the key (of `host` if given); undefined if none. */
  get(problem: string, target: string, hash: string, host?: string): TuningRecord | undefined {
    const list = this.#byKey.get(recordKey(problem, target, hash));
    if (!list) return undefined;
    let best: TuningRecord | undefined;
    for (const r of list) {
      if (host !== undefined && r.host !== host) continue;
      if (!best || r.gflops > best.gflops) best = r;
    }
    return best;
  }

  /** Appends one record: to memory, and to the file as one whole line in a single write. */
  add(record: TuningRecord): void {
    if (!isRecord(record)) throw new TypeError(`not a tuning record: ${JSON.stringify(record)}`);
    if (this.path) {
      const line = `${this.#needsNewline ? '\n' : ''}${JSON.stringify(record)}\n`;
      if (!this.#dirReady) {
        mkdirSync(path.dirname(path.resolve(this.path)), { recursive: true });
        this.#dirReady = true;
      }
      appendFileSync(this.path, line);
      this.#needsNewline = false;
    }
    this.#index(record);
  }

  /** every record, in file order. */
  records(): readonly TuningRecord[] {
    return this.#all;
  }

  get size(): number {
    return this.#all.length;
  }

  /** the best successful record of a problem on a target (of `host` if given). */
  best(problem: string, target: string, host?: string): TuningRecord | undefined {
    let best: TuningRecord | undefined;
    for (const r of this.#all) {
      if (r.problem !== problem || r.target !== target || r.error !== undefined) continue;
      if (host !== undefined && r.host !== host) continue;
      if (!best || r.gflops > best.gflops) best = r;
    }
    return best;
  }
}
