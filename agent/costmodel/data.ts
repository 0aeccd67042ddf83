/**
 * Tuning records as training data: grouped by problem and thread count (a cost model ranks
 * schedules of ONE problem measured on one thread count; the count is the measurement's, read from
 * the record's host key `<host> threads=T`, targets/runtime/host.ts threadedHostKey), failed
 * measurements dropped, one figure per schedule (the best record of its hash, as the record store
 * answers), schedules parsed back from their text.
 */
import { statSync } from 'node:fs';
import { fail } from '../../ir/errors.ts';
import { parseProblem } from '../../ir/spec.ts';
import { Schedule } from '../../ir/schedule.ts';
import type { Problem } from '../../ir/problem.ts';
import { RecordStore, type TuningRecord } from '../../env/records.ts';

export interface RecordGroup {
  problem: string;
  schedules: Schedule[];
  /** measured GFLOPS, aligned with `schedules`. */
  gflops: number[];
  /** threads the kernels ran on (absent: 1). */
  threads?: number;
}

/** The thread count a record was measured on: `threads=T` at the end of its host key, else 1. */
export function threadsOfHost(host: string): number {
  const m = / threads=(\d+)$/.exec(host);
  const t = m ? Number(m[1]) : 1;
  return t >= 1 ? t : 1;
}

export interface GroupStats {
  records: number;
  used: number;
  failed: number;
  otherTarget: number;
  unreadable: number;
}

const problems = new Map<string, Problem>();
function problemOf(spec: string): Problem {
  let p = problems.get(spec);
  if (!p) {
    p = parseProblem(spec);
    problems.set(spec, p);
  }
  return p;
}

/** Every record of the JSONL files, in order. */
export function readRecordFiles(files: readonly string[]): TuningRecord[] {
  const out: TuningRecord[] = [];
  for (const f of files) {
    // a file named on purpose must exist (the records store itself treats a missing file as empty)
    let stat;
    try { stat = statSync(f); } catch { fail(`records file '${f}' does not exist`); }
    if (!stat.isFile()) fail(`records file '${f}' is not a file`);
    out.push(...RecordStore.open(f).records());
  }
  return out;
}

/**
 * Groups records by problem and thread count. `target` keeps only that target's records (and `host`
 * that host's, `threads` that thread count's); failed records (error or 0 GFLOPS) are dropped;
 * several records of one schedule keep the best.
 */
export function groupRecords(
  records: readonly TuningRecord[], options: { target?: string; host?: string; threads?: number } = {},
): { groups: RecordGroup[]; stats: GroupStats } {
  const stats: GroupStats = { records: records.length, used: 0, failed: 0, otherTarget: 0, unreadable: 0 };
  const byProblem = new Map<string, { spec: string; threads: number; m: Map<string, { text: string; gflops: number }> }>();
  for (const r of records) {
    const threads = threadsOfHost(r.host);
    if ((options.target !== undefined && r.target !== options.target) || (options.host !== undefined && r.host !== options.host)
      || (options.threads !== undefined && threads !== options.threads)) {
      stats.otherTarget++;
      continue;
    }
    if (r.error !== undefined || !(r.gflops > 0)) {
      stats.failed++;
      continue;
    }
    const key = `${r.problem}|${threads}`;
    let entry = byProblem.get(key);
    if (!entry) byProblem.set(key, (entry = { spec: r.problem, threads, m: new Map() }));
    const m = entry.m;
    const prev = m.get(r.hash);
    if (!prev || r.gflops > prev.gflops) m.set(r.hash, { text: r.schedule, gflops: r.gflops });
  }
  const groups: RecordGroup[] = [];
  for (const { spec, threads, m } of byProblem.values()) {
    let problem: Problem;
    try {
      problem = problemOf(spec);
    } catch {
      stats.unreadable += m.size;
      continue;
    }
    const g: RecordGroup = { problem: spec, schedules: [], gflops: [], ...(threads > 1 ? { threads } : {}) };
    for (const { text, gflops } of m.values()) {
      try {
        g.schedules.push(Schedule.parse(problem, text));
        g.gflops.push(gflops);
      } catch {
        stats.unreadable++;
      }
    }
    if (g.schedules.length > 0) {
      stats.used += g.schedules.length;
      groups.push(g);
    }
  }
  return { groups, stats };
}

/** Records or groups, as groups. */
export function asGroups(data: readonly TuningRecord[] | readonly RecordGroup[], target?: string): RecordGroup[] {
  if (data.length === 0) return [];
  if ('schedules' in data[0]!) return data as RecordGroup[];
  return groupRecords(data as readonly TuningRecord[], target !== undefined ? { target } : {}).groups;
}
