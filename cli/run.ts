/** `looptune run`: compile one schedule, verify it, time it (beside the device's BLAS when asked). */
import type { Command } from 'commander';
import { backend, backendNames } from '../targets/registry.ts';
import { runSchedule } from '../targets/run-schedule.ts';
import { hostTarget } from '../targets/runtime/host.ts';
import { scheduleFor, withScheduleOptions } from './problem.ts';
import { formatRun, runFailed } from './format.ts';
import { checkCompare, positiveNumber } from './options.ts';
import { threadsFor, withThreadsOption } from './threads.ts';
import { bandedFor } from '../ir/parallelize.ts';

interface RunOptions { schedule?: string; actions?: string; target?: string; compare?: string; minSeconds?: number; threads?: number; json?: boolean }

export function registerRun(program: Command): void {
  withThreadsOption(withScheduleOptions(program
    .command('run')
    .description('compile a schedule, verify it against the interpreter, measure it (GFLOPS, % of peak, BLAS ratio)')
    .argument('<spec>', 'problem, e.g. "matmul 256x256x256"')))
    .option('--target <name>', `target (${backendNames().join(', ')}; default: the host's best)`)
    .option('--compare <what>', 'also measure the BLAS baseline in the same run: openblas (on cuda: cuBLAS for matmul, cuDNN for conv2d; cublas is accepted too)')
    .option('--min-seconds <s>', 'minimum measured time per figure', positiveNumber)
    .option('--json', 'print the result as JSON')
    .action(async (spec: string, opts: RunOptions) => {
      const b = backend(opts.target ?? hostTarget());
      checkCompare(opts.compare, b);
      const threads = threadsFor(b, opts.threads);
      const given = scheduleFor(spec, opts);
      // no schedule given: the default one, its outer band parallel on several threads
      const s = opts.schedule === undefined && opts.actions === undefined ? bandedFor(given, threads ?? 1) : given;
      const device = await b.open(threads !== undefined ? { threads } : {});
      try {
        const r = await runSchedule(s, b, device, {
          compareBaseline: opts.compare !== undefined, ...(opts.minSeconds ? { minSeconds: opts.minSeconds } : {}),
        });
        if (opts.json) console.log(JSON.stringify(r, null, 2));
        else console.log(formatRun(r));
        // a crash, hang or failed comparison is a failed run, not a result
        if (runFailed(r)) process.exitCode = 1;
      } finally {
        await device.close();
      }
    });
}
