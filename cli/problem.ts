/** The problem and starting schedule a command works on, from its spec and options. */
import { parseProblem } from '../ir/spec.ts';
import { Schedule } from '../ir/schedule.ts';
import { applyActions } from '../ir/transforms.ts';

export function scheduleFor(spec: string, opts: { schedule?: string; actions?: string }): Schedule {
  const problem = parseProblem(spec);
  let s = opts.schedule !== undefined ? Schedule.parse(problem, opts.schedule) : Schedule.initial(problem);
  if (opts.actions !== undefined) s = applyActions(s, opts.actions.split(',').map((a) => a.trim()).filter((a) => a));
  return s;
}
