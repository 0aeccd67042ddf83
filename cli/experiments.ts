/** `looptune train | eval | export`: the experiment file's PPO run, its evaluation, its policy. */
import type { Command } from 'commander';
import { nonEmpty, positiveInteger } from './options.ts';

export function registerExperimentCommands(program: Command): void {
  program
    .command('train')
    .description('train a PPO policy from an experiment file (progress bar, checkpoints; resumes after a kill)')
    .argument('<experiment>', 'e.g. experiments/ppo-mm-avx512.yaml')
    .option('--fresh', 'start over instead of resuming from the newest checkpoint')
    .option('--stop-after <n>', 'stop after n iterations (resume later)', positiveInteger)
    .option('--variant <name...>', 'train only these variants of the file')
    .action(async (file: string, o: { fresh?: boolean; stopAfter?: number; variant?: string[] }) => {
      const { trainExperiment } = await import('../experiments/runner.ts');
      const r = await trainExperiment(file, {
        resume: !o.fresh, ...(o.stopAfter !== undefined ? { stopAfter: o.stopAfter } : {}), ...(o.variant ? { variants: o.variant } : {}),
      });
      for (const v of r.variants) {
        console.log(`${v.name}: iteration ${v.iteration}, ${v.globalStep} env steps, ${v.stepsPerSecond?.toFixed(1) ?? '-'} steps/s, checkpoint ${v.checkpoint ?? '-'}${v.policyDir ? `, policy ${v.policyDir}` : ''}`);
      }
    });

  program
    .command('eval')
    .description('run an experiment\'s policy on its test split (writes eval.json in the run folder)')
    .argument('<experiment>', 'e.g. experiments/ppo-mm-avx512.yaml')
    .option('--checkpoint <dir>', 'a policy or checkpoints folder (default: the newest checkpoint)', nonEmpty('checkpoint folder'))
    .option('--problems <n>', 'only the first n test problems', positiveInteger)
    .option('--variant <name>', 'which variant of the file')
    .action(async (file: string, o: { checkpoint?: string; problems?: number; variant?: string }) => {
      const { evalExperiment } = await import('../experiments/runner.ts');
      const r = await evalExperiment(file, {
        ...(o.checkpoint ? { checkpoint: o.checkpoint } : {}), ...(o.problems !== undefined ? { problems: o.problems } : {}), ...(o.variant ? { variant: o.variant } : {}),
      });
      console.log(JSON.stringify(r.map((x) => ({ variant: x.variant, policy: x.policy, ...x.summary })), null, 2));
    });

  program
    .command('export')
    .description('ship an experiment\'s trained policy (tfjs files + manifest) to agent/pretrained/<target>')
    .argument('<experiment>', 'e.g. experiments/ppo-mm-avx512.yaml')
    .option('--to <dir>', 'destination (default agent/pretrained/<target>)', nonEmpty('destination'))
    .option('--variant <name>', 'which variant of the file')
    .option('--checkpoint <dir>', 'a checkpoint other than the newest', nonEmpty('checkpoint folder'))
    .action(async (file: string, o: { to?: string; variant?: string; checkpoint?: string }) => {
      const { exportPolicy } = await import('../experiments/runner.ts');
      const r = await exportPolicy(file, { ...(o.to ? { to: o.to } : {}), ...(o.variant ? { variant: o.variant } : {}), ...(o.checkpoint ? { checkpoint: o.checkpoint } : {}) });
      console.log(JSON.stringify(r.manifest, null, 2));
    });
}
