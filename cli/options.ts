/**
 * Parsers for the CLI's option values. Each rejects what it cannot read with commander's
 * InvalidArgumentError, which prints one line naming the option and exits 1 before any work starts.
 */
import { InvalidArgumentError } from 'commander';
import type { Budget } from '../agent/searcher.ts';
import { LoopTuneError } from '../ir/errors.ts';
import type { Backend } from '../targets/backend.ts';
import { MAX_THREADS, threadCountError } from '../targets/runtime/threads.ts';

/** At most this many characters of a bad value are echoed back. */
const ECHO_CHARS = 40;

export function echo(value: string): string {
  return value.length > ECHO_CHARS ? `'${value.slice(0, ECHO_CHARS)}…' (${value.length} characters)` : `'${value}'`;
}

/** "10s" (seconds), "200" or "200m" (measurements), "50steps"; several joined by commas. */
export function parseBudget(text: string): Budget {
  const budget: Budget = {};
  const parts = text.split(',').map((x) => x.trim()).filter((x) => x);
  if (parts.length === 0) throw new InvalidArgumentError('empty budget (expected e.g. 10s, 200m for measurements, 50steps)');
  for (const part of parts) {
    const m = /^(\d+(?:\.\d+)?)(s|m|steps)?$/.exec(part);
    if (!m || Number(m[1]) <= 0 || !Number.isFinite(Number(m[1]))) {
      throw new InvalidArgumentError(`cannot read budget ${echo(part)} (expected e.g. 10s, 200m for measurements, 50steps)`);
    }
    const n = Number(m[1]);
    if (m[2] === 's') budget.seconds = n;
    else if (m[2] === 'steps') budget.steps = Math.ceil(n);
    else budget.measurements = Math.ceil(n);
  }
  return budget;
}

/** A finite number > 0 (seconds, minimum times). */
export function positiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`expected a positive number, got ${echo(value)}`);
  return n;
}

/** Seconds, with an optional trailing "s" ("1" or "1s"). */
export function positiveSeconds(value: string): number {
  return positiveNumber(value.replace(/s$/, ''));
}

/** An integer >= 1 (iteration counts, problem counts, epochs). */
export function positiveInteger(value: string): number {
  const n = Number(value);
  if (!/^\s*\+?\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`expected a whole number >= 1, got ${echo(value)}`);
  return n;
}

/** A thread count: an integer from 1 to MAX_THREADS. */
export function threadCount(value: string): number {
  const n = Number(value);
  if (!/^\s*\+?\d+\s*$/.test(value) || threadCountError(n)) throw new InvalidArgumentError(`expected a thread count from 1 to ${MAX_THREADS}, got ${echo(value)}`);
  return n;
}

/** A seed: an integer from 0 to 2^32 - 1. */
export function seed(value: string): number {
  const n = Number(value);
  if (!/^\s*\+?\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n > 0xffffffff) throw new InvalidArgumentError(`expected a whole number from 0 to 4294967295, got ${echo(value)}`);
  return n;
}

/** A text that must not be empty (schedules, action lists, paths). */
export function nonEmpty(what: string): (value: string) => string {
  return (value) => {
    if (value.trim() === '') throw new InvalidArgumentError(`empty ${what}`);
    return value;
  };
}

/** --compare: 'openblas' (the device's BLAS, whatever it is: the historical name) or the device's own
 *  baseline by family ('cublas' on a GPU with cuBLAS). */
export function checkCompare(compare: string | undefined, b: Backend): void {
  if (compare === undefined || compare === 'openblas') return;
  const family = b.baselineFamily?.toLowerCase();
  if (compare === family) return;
  const others = family && family !== 'openblas' ? ` or ${family}` : '';
  throw new LoopTuneError(`--compare: unknown baseline '${compare}' (expected openblas${others})`);
}
