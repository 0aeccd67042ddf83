/** Schedules a target must refuse when it compiles them: a one-line LoopTuneError matching each pattern. */
import * as assert from 'uvu/assert';
import { LoopTuneError } from '../../ir/errors.ts';
import type { Problem } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';

export function assertSchedulesRefused(p: Problem, compile: (s: Schedule) => unknown, bad: readonly (readonly [string, RegExp])[]): void {
  for (const [text, re] of bad) {
    try {
      compile(Schedule.parse(p, text));
      assert.unreachable(text);
    } catch (e) {
      assert.instance(e, LoopTuneError);
      assert.match((e as Error).message, re, text);
      assert.not.match((e as Error).message, /\n/);
    }
  }
}
