/**
 * The looptune command line: one file per command, each a thin layer over the library (index.ts).
 * Every failure prints one `looptune: …` line and exits 1 (cli/errors.ts); --debug adds the trace.
 */
import { Command } from 'commander';
import { registerShow } from './show.ts';
import { registerRun } from './run.ts';
import { registerSearch } from './search.ts';
import { registerTune } from './tune.ts';
import { registerExperimentCommands } from './experiments.ts';
import { registerCompare } from './compare.ts';
import { registerCostModel } from './costmodel.ts';
import { registerPeak } from './peak.ts';
import { registerRunModel } from './run-model.ts';
import { registerCompile } from './compile.ts';
import { registerWorker } from './worker.ts';
import { exitWithFailure, installFailureHandlers } from './errors.ts';

export { parseBudget } from './options.ts';

export function buildCli(): Command {
  const program = new Command();
  program
    .name('looptune')
    .description('Reinforcement-learning loop optimizer for tensor programs with direct machine-code generation.')
    .option('--debug', 'on a failure, also print the stack trace (or set LOOPTUNE_DEBUG=1)')
    // commander's own errors (unknown option, a bad value) as the same one line as ours
    .configureOutput({
      outputError: (text, write) => write(`looptune: ${text.trim().replace(/^error: /, '')} (see looptune --help)\n`),
    });
  registerShow(program);
  registerRun(program);
  registerSearch(program);
  registerTune(program);
  registerExperimentCommands(program);
  registerCompare(program);
  registerCostModel(program);
  registerPeak(program);
  registerRunModel(program);
  registerCompile(program);
  registerWorker(program);
  return program;
}

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  installFailureHandlers();
  try {
    // --debug may stand anywhere; commander would reject it after a sub-command
    await buildCli().parseAsync(argv.filter((a) => a !== '--debug'));
  } catch (e) {
    exitWithFailure(e);
  }
}
