/**
 * Command line of the experiment runner, until cli.ts wires the same functions in:
 *   npx tsx experiments/main.ts train   <file.yaml> [--fresh] [--stop-after N] [--output DIR] [--variant NAME]
 *   npx tsx experiments/main.ts eval    <file.yaml> [--checkpoint DIR] [--problems N] [--variant NAME]
 *   npx tsx experiments/main.ts compare <file.yaml> [--checkpoint DIR] [--problems N]
 *   npx tsx experiments/main.ts export  <file.yaml> [--to DIR] [--variant NAME] [--checkpoint DIR]
 */
import { Command, InvalidArgumentError } from 'commander';
import { LoopTuneError } from '../ir/errors.ts';
import { compareExperiment, evalExperiment, exportPolicy, trainExperiment } from './runner.ts';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a positive integer');
  return n;
}

const program = new Command().name('experiments').description('train, evaluate, compare and ship PPO policies from experiment files');
program.command('train').argument('<file>')
  .option('--fresh', 'start over instead of resuming from the newest checkpoint')
  .option('--stop-after <n>', 'stop after n iterations (resume later)', positiveInt)
  .option('--output <dir>', 'run folder (default: the file\'s output)')
  .option('--variant <name...>', 'train only these variants')
  .action(async (file: string, o: { fresh?: boolean; stopAfter?: number; output?: string; variant?: string[] }) => {
    const r = await trainExperiment(file, {
      resume: !o.fresh, ...(o.stopAfter ? { stopAfter: o.stopAfter } : {}), ...(o.output ? { output: o.output } : {}),
      ...(o.variant ? { variants: o.variant } : {}),
    });
    for (const v of r.variants) {
      console.log(`${v.name}: iteration ${v.iteration}, ${v.globalStep} env steps, ${v.stepsPerSecond?.toFixed(1) ?? '-'} steps/s, `
        + `checkpoint ${v.checkpoint ?? '-'}${v.policyDir ? `, policy ${v.policyDir}` : ''}`);
    }
  });
program.command('eval').argument('<file>')
  .option('--checkpoint <dir>', 'policy or checkpoints folder')
  .option('--problems <n>', 'first n test problems', positiveInt)
  .option('--variant <name>')
  .option('--output <dir>')
  .action(async (file: string, o: { checkpoint?: string; problems?: number; variant?: string; output?: string }) => {
    const r = await evalExperiment(file, {
      ...(o.checkpoint ? { checkpoint: o.checkpoint } : {}), ...(o.problems ? { problems: o.problems } : {}),
      ...(o.variant ? { variant: o.variant } : {}), ...(o.output ? { output: o.output } : {}),
    });
    console.log(JSON.stringify(r.map((x) => ({ variant: x.variant, policy: x.policy, ...x.summary })), null, 2));
  });
program.command('compare').argument('<file>')
  .option('--checkpoint <dir>')
  .option('--problems <n>', 'first n test problems', positiveInt)
  .option('--output <dir>')
  .action(async (file: string, o: { checkpoint?: string; problems?: number; output?: string }) => {
    const r = await compareExperiment(file, {
      ...(o.checkpoint ? { checkpoint: o.checkpoint } : {}), ...(o.problems ? { problems: o.problems } : {}), ...(o.output ? { output: o.output } : {}),
    });
    console.log(r.html);
  });
program.command('export').argument('<file>')
  .option('--to <dir>', 'destination (default agent/pretrained/<target>)')
  .option('--variant <name>')
  .option('--checkpoint <dir>')
  .option('--output <dir>')
  .action(async (file: string, o: { to?: string; variant?: string; checkpoint?: string; output?: string }) => {
    const r = await exportPolicy(file, {
      ...(o.to ? { to: o.to } : {}), ...(o.variant ? { variant: o.variant } : {}),
      ...(o.checkpoint ? { checkpoint: o.checkpoint } : {}), ...(o.output ? { output: o.output } : {}),
    });
    console.log(JSON.stringify(r.manifest, null, 2));
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof LoopTuneError) {
    console.error(`experiments: ${e.message}`);
    process.exit(1);
  }
  throw e;
}
