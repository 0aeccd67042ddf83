/** The problem and starting schedule a command works on, from its spec and options. */
import type { Command } from 'commander';
import { parseProblem } from '../ir/spec.ts';
import { Schedule } from '../ir/schedule.ts';
import { applyActions } from '../ir/transforms.ts';
import { nonEmpty } from './options.ts';

export function scheduleFor(spec: string, opts: { schedule?: string; actions?: string }): Schedule {
  const problem = parseProblem(spec);
  let s = opts.schedule !== undefined ? Schedule.parse(problem, opts.schedule) : Schedule.initial(problem);
  if (opts.actions !== undefined) s = applyActions(s, opts.actions.split(',').map((a) => a.trim()).filter((a) => a));
  return s;
}

/** The options that say which schedule a command starts from (read by scheduleFor). */
export function withScheduleOptions(command: Command): Command {
  return command
    .option('--schedule <text>', 'schedule text, e.g. "m:64 n:4 k:256 m:4 n:64"', nonEmpty('schedule'))
    .option('--actions <list>', 'comma-separated actions applied at the cursor, e.g. split_16,down,swap_up', nonEmpty('action list'));
}
