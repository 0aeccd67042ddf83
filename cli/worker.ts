/**
 * `looptune worker --redis URL [--targets avx512,cuda] [--threads N]`: serve a measurement farm
 * (targets/farm/worker.ts). Prints the hardware key of each target it serves (what callers ask
 * for), then takes jobs of exactly those keys until SIGINT or SIGTERM, and closes cleanly: the job
 * it is running finishes first. The URL may come from $LOOPTUNE_FARM (keeps the password out of
 * the process list).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { fail } from '../ir/errors.ts';
import { hostTarget } from '../targets/runtime/host.ts';
import { positiveNumber, threadCount } from './options.ts';

interface WorkerCliOptions { redis?: string; targets?: string[]; threads?: number; lockSeconds?: number; minSeconds?: number }

function targetList(value: string): string[] {
  const names = value.split(',').map((t) => t.trim()).filter((t) => t !== '');
  if (names.length === 0) throw new InvalidArgumentError('expected target names separated by commas, e.g. avx512,cuda');
  return names;
}

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('serve a measurement farm: take compile-and-measure jobs of this machine\'s hardware key from Redis (BullMQ) until SIGINT/SIGTERM')
    .option('--redis <url>', 'the farm\'s Redis, redis://:password@host:port (default $LOOPTUNE_FARM)')
    .option('--targets <names>', 'targets to serve, separated by commas (default: the host\'s best x86 target)', targetList)
    .option('--threads <n>', 'CPU threads of every kernel, the peak and the BLAS (part of the key; default 1)', threadCount)
    .option('--lock-seconds <s>', 'a job whose worker stops renewing its lock this long goes to another worker', positiveNumber, 10)
    .option('--min-seconds <s>', 'minimum sampled seconds of a timing whose job names none', positiveNumber)
    .action(async (opts: WorkerCliOptions) => {
      const url = opts.redis ?? process.env.LOOPTUNE_FARM;
      if (!url) fail('worker: give the farm\'s Redis with --redis redis://:password@host:port (or set LOOPTUNE_FARM)');
      const { startFarmWorker } = await import('../targets/farm/worker.ts');
      const { redactUrl } = await import('../targets/farm/connection.ts');
      const worker = await startFarmWorker({
        url, targets: opts.targets ?? [hostTarget()],
        ...(opts.threads !== undefined ? { threads: opts.threads } : {}),
        ...(opts.lockSeconds !== undefined ? { lockSeconds: opts.lockSeconds } : {}),
        ...(opts.minSeconds !== undefined ? { minSeconds: opts.minSeconds } : {}),
        log: (line) => process.stderr.write(`worker: ${line}\n`),
      });
      for (const key of worker.keys) console.log(`worker ${worker.name} serving key: ${key}`);
      console.log(`worker ${worker.name} connected to ${redactUrl(url)}; SIGINT or SIGTERM stops it`);
      await new Promise<void>((resolve) => {
        const stop = (signal: string): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          console.log(`worker ${worker.name}: ${signal}, finishing the running job`);
          void worker.close().then(resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
      console.log(`worker ${worker.name}: served ${worker.served()} jobs`);
    });
}

/** The value of `--farm` on search, tune and compile: a Redis URL (one line when it is not one). */
export function farmUrl(value: string): string {
  if (!/^rediss?:\/\/\S+$/.test(value)) throw new InvalidArgumentError(`expected a Redis URL such as redis://:password@127.0.0.1:6379, got '${value.slice(0, 40)}'`);
  return value;
}

/** What `--farm` says on search, tune and compile. */
/** --farm-key: measure for another machine kind's workers (the key `looptune worker` prints). */
export const FARM_KEY_HELP = 'with --farm: the hardware key to measure on, as `looptune worker` prints it (default: this machine\'s for the target and --threads)';
/** One line where --farm-key comes without --farm. */
export function checkFarmKey(opts: { farm?: string; farmKey?: string }): void {
  if (opts.farmKey !== undefined && opts.farm === undefined) fail('--farm-key needs --farm <url> (the farm whose workers serve that key)');
}

export const FARM_HELP = 'measure on the workers of a farm (looptune worker) through its Redis, redis://:password@host:port; they must serve this machine\'s key for the target and --threads (default 1)';
