/** `looptune costmodel train | eval`: the learned cost model. */
import type { Command } from 'commander';
import { hostTarget } from '../targets/runtime/host.ts';
import { progressLine } from './progress.ts';
import { formatCostModelEval } from './format.ts';
import { nonEmpty, positiveInteger } from './options.ts';

export function registerCostModel(program: Command): void {
  const costmodel = program
    .command('costmodel')
    .description('the learned cost model: train it from tuning records, evaluate its ranking quality');
  costmodel
    .command('train')
    .description('train a cost model on tuning records (JSONL) and save it in the tfjs format')
    .argument('<records...>', 'record files, e.g. agent/pretrained/avx512/records.jsonl')
    .option('--out <dir>', 'where model.json and weights.bin go', nonEmpty('output folder'), 'runs/costmodel')
    .option('--target <name>', 'the records\' target (default: the host\'s)')
    .option('--epochs <n>', 'training epochs', positiveInteger)
    .option('--init <model>', 'warm start (transfer) from this model ("default" or a folder)', nonEmpty('model'))
    .option('--validation <file>', 'held-out records evaluated after training', nonEmpty('validation file'))
    .action(async (records: string[], opts: { out: string; target?: string; epochs?: number; init?: string; validation?: string }) => {
      const { trainCostModel } = await import('../agent/costmodel/cli.ts');
      const line = progressLine();
      const r = await trainCostModel(records, {
        out: opts.out, target: opts.target ?? hostTarget(),
        ...(opts.epochs ? { epochs: opts.epochs } : {}), ...(opts.init ? { init: opts.init } : {}),
        ...(opts.validation ? { validation: [opts.validation] } : {}),
        onProgress: (p) => line.update(`epoch ${p.epoch}/${p.epochs} loss ${p.loss.toFixed(4)} (${p.seconds.toFixed(1)} s)`),
      });
      line.done();
      console.log(`saved ${r.out}`);
      if (r.validation) console.log(formatCostModelEval(r.validation));
    });
  costmodel
    .command('eval')
    .description('ranking quality on records: Spearman and pairwise accuracy within each problem, top-10 recall of the measured best')
    .argument('<model>', '"default" (the shipped model for the host target) or a model folder')
    .argument('<records>', 'record file (JSONL)')
    .option('--json', 'print {spearman, pairwiseAccuracy, top10Recall, records, ...} as JSON')
    .action(async (model: string, records: string, opts: { json?: boolean }) => {
      const { evalCostModel } = await import('../agent/costmodel/cli.ts');
      const r = await evalCostModel(model, records);
      if (opts.json) {
        const { perProblem: _, ...summary } = r;
        console.log(JSON.stringify(summary, null, 2));
      } else console.log(formatCostModelEval(r));
    });
}
