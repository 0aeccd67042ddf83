/**
 * The looptune command line. Every command is a thin layer over the library (index.ts); user
 * errors (LoopTuneError) print one line and exit 1.
 */
import { Command, InvalidArgumentError } from 'commander';
import { LoopTuneError } from './ir/errors.ts';
import { parseProblem } from './ir/spec.ts';
import { Schedule } from './ir/schedule.ts';
import { applyActions } from './ir/transforms.ts';
import { prettyPrint } from './ir/pretty.ts';

function scheduleFor(spec: string, opts: { schedule?: string; actions?: string }): Schedule {
  const problem = parseProblem(spec);
  let s = opts.schedule ? Schedule.parse(problem, opts.schedule) : Schedule.initial(problem);
  if (opts.actions) s = applyActions(s, opts.actions.split(',').map((a) => a.trim()).filter((a) => a));
  return s;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

export function buildCli(): Command {
  const program = new Command();
  program
    .name('looptune')
    .description('Reinforcement-learning loop optimizer for tensor programs with direct machine-code generation.')
    .showHelpAfterError('(run looptune --help for usage)');

  program
    .command('show')
    .description('print a problem\'s scheduled loop nest and its textual schedule')
    .argument('<spec>', 'problem, e.g. "matmul 256x256x256" or "conv2d n1 c64 h56 w56 k64 r3 s3 stride1"')
    .option('--schedule <text>', 'start from this schedule, e.g. "m:64 n:4 k:256 m:4 n:64"')
    .option('--actions <list>', 'comma-separated actions applied at the cursor, e.g. split_16,down,swap_up')
    .option('--json', 'print the schedule as JSON')
    .action((spec: string, opts: { schedule?: string; actions?: string; json?: boolean }) => {
      const s = scheduleFor(spec, opts);
      if (opts.json) {
        console.log(JSON.stringify({
          problem: s.problem.spec,
          schedule: s.text(),
          cursor: s.cursor,
          hash: s.hash(),
          loops: s.loops.map((l, i) => ({ var: s.problem.vars[l.var]!.name, size: l.size, tail: l.tail, step: s.steps[i] })),
        }, null, 2));
        return;
      }
      console.log(prettyPrint(s));
      console.log(`schedule: ${s.text()}`);
    });
  void positiveNumber;
  return program;
}

async function main(): Promise<void> {
  try {
    await buildCli().parseAsync(process.argv);
  } catch (e) {
    if (e instanceof LoopTuneError) {
      console.error(`looptune: ${e.message}`);
      process.exit(1);
    }
    throw e;
  }
}

await main();
