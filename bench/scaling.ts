/**
 * Multi-core scaling beyond this 2-core machine (issue #15): on a many-core host (the GPU machine's
 * 16 cores, through the CLI bundle: `sh .device/looptune/scaling.sh`), looptune's kernels at 1, 2,
 * 4, ... threads against numpy (its OpenBLAS) and torch CPU at the same counts on that machine
 * (bench/peers/cpu_peers.py, one python process per count). Each problem is tuned once on the most
 * threads; that kernel is then timed at every count, beside the FMA peak of as many cores.
 * Writes the JSON and an SVG plot (GFLOPS against threads, one panel per problem).
 *
 *   npx tsx bench/scaling.ts --threads 1,2 --out bench/results/scaling.json                      (here)
 *   sh .device/looptune/scaling.sh --threads 1,2,4,8,16 --out $OUT/scaling.json                  (GPU machine)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { tune } from '../agent/tune.ts';
import { linePlot, type Series } from '../agent/report/svg.ts';
import { parseProblem } from '../ir/spec.ts';
import { flops } from '../ir/problem.ts';
import { backend } from '../targets/registry.ts';
import { hostIsa, hostTarget } from '../targets/runtime/host.ts';
import { MeasurementPool } from '../targets/runtime/measure.ts';
import { forkJoinSeconds, peakRecord } from '../targets/runtime/peak.ts';

const DEFAULT_PROBLEMS = ['matmul 2048x2048x2048', 'matmul 4096x4096x4096', 'conv2d n1 c64 h58 w58 k64 r3 s3 stride1'];

const opts = new Command()
  .option('--threads <list>', 'thread counts, comma-separated', '1,2')
  .option('--problems <list>', 'problem specs separated by ";"', DEFAULT_PROBLEMS.join(';'))
  .option('--budget <seconds>', 'tune budget per problem on the most threads (default: tune\'s own)', Number)
  .option('--out <file>', 'where the JSON goes (the SVG beside it)', 'bench/results/scaling.json')
  .parse(process.argv)
  .opts<{ threads: string; problems: string; budget?: number; out: string }>();

const counts = opts.threads.split(',').map(Number);
if (counts.some((t) => !Number.isInteger(t) || t < 1)) throw new Error(`--threads: expected counts such as 1,2,4, got ${opts.threads}`);
const most = Math.max(...counts);
const specs = opts.problems.split(';').map((s) => s.trim()).filter((s) => s);
const target = hostTarget();
const b = backend(target);

/** cpu_peers.py: beside the working tree's bench/ (the bundle runs from the repository root). */
function peerScript(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  return [join(process.cwd(), 'bench', 'peers', 'cpu_peers.py'), join(here, 'peers', 'cpu_peers.py')].find((p) => existsSync(p));
}

interface PeerRow { peer: string; problem?: string; threads?: number; gflops?: number; error?: string }

function peers(threads: number): PeerRow[] {
  const script = peerScript();
  if (!script) return [{ peer: 'python peers', error: 'bench/peers/cpu_peers.py not found' }];
  const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const r = spawnSync('python3', [script, String(threads), ...specs], { env, encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) return [{ peer: 'python peers', error: (r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').pop() ?? '' }];
  return r.stdout.trim().split('\n').filter((l) => l).map((l) => JSON.parse(l) as PeerRow);
}

const pool = new MeasurementPool({ timeoutSeconds: 120 });
const device = await b.open({ threads: most, timeoutSeconds: 120 });
try {
  console.log(`${hostIsa().model}: ${cpus().length} logical CPUs; ${target}; thread counts ${counts.join(', ')}`);
  const peaks: Record<number, number> = {};
  const forkJoinMicros: Record<number, number> = {};
  for (const t of counts) {
    peaks[t] = (await peakRecord(target, { pool, threads: t, fresh: true, cacheFile: null })).gflops;
    if (t > 1) forkJoinMicros[t] = (await forkJoinSeconds(pool, t)) * 1e6;
    console.log(`peak ${t} thread(s): ${peaks[t]!.toFixed(0)} GFLOPS${t > 1 ? `, fork-join ${forkJoinMicros[t]!.toFixed(1)} us` : ''}`);
  }
  const peerRows = counts.flatMap((t) => peers(t));
  for (const e of peerRows.filter((r) => r.error)) console.log(`peer ${e.peer}: ${e.error}`);
  const problems = [];
  for (const spec of specs) {
    const problem = parseProblem(spec);
    const r = await tune(problem, { target: b, device, noRecords: true, seed: 0, ...(opts.budget ? { budgetSeconds: opts.budget } : {}) });
    const rows = [];
    for (const t of counts) {
      const timing = await device.time(r.kernel, { threads: t, minSeconds: 0.3 });
      const gflops = timing.ok ? timing.gflops : 0;
      const of = (name: string) => peerRows.find((p) => p.problem === spec && p.threads === t && p.peer.startsWith(name))?.gflops;
      rows.push({ threads: t, gflops, percentOfPeak: (100 * gflops) / peaks[t]!, numpy: of('numpy'), torch: of('torch') });
    }
    const g1 = rows.find((x) => x.threads === 1)?.gflops;
    for (const row of rows) {
      const efficiency = g1 ? row.gflops / (row.threads * g1) : undefined;
      Object.assign(row, { efficiency });
      console.log(`${spec.padEnd(42)} ${String(row.threads).padStart(2)} threads: ${row.gflops.toFixed(0).padStart(5)} GFLOPS (${row.percentOfPeak.toFixed(0)}% of peak${efficiency ? `, efficiency ${(100 * efficiency).toFixed(0)}%` : ''}); numpy ${row.numpy?.toFixed(0) ?? '-'}, torch ${row.torch?.toFixed(0) ?? '-'}`);
    }
    problems.push({ problem: spec, flops: flops(problem), schedule: r.schedule, verified: r.verified, tuneSeconds: r.seconds, rows });
  }
  const result = { host: hostIsa().model, cpus: cpus().length, target, date: new Date().toISOString(), counts, peaks, forkJoinMicros, problems, peers: peerRows };
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, JSON.stringify(result, null, 2) + '\n');
  // one panel per problem: GFLOPS against threads, looptune and the peers, and the cores' peak
  const panels = problems.map((p) => {
    const line = (name: string, pick: (r: (typeof p.rows)[number]) => number | undefined, color: string, dashed = false): Series => ({
      name, color, step: false, dashed, points: p.rows.flatMap((r) => (pick(r) ? [[r.threads, pick(r)!] as const] : [])),
    });
    return linePlot([
      line('looptune', (r) => r.gflops, '#d62728'), line('numpy', (r) => r.numpy, '#1f77b4'), line('torch', (r) => r.torch, '#2ca02c'),
      line('FMA peak', (r) => peaks[r.threads], '#999', true),
    ], { title: p.problem, xLabel: 'threads', yLabel: 'GFLOPS', yMin: 0 });
  });
  const svgFile = opts.out.replace(/\.json$/, '.html');
  writeFileSync(svgFile, `<!doctype html><meta charset="utf-8"><title>looptune scaling</title><h3>${result.host}: GFLOPS against threads</h3>${panels.join('\n')}\n`);
  console.log(`wrote ${opts.out} and ${svgFile}`);
} finally {
  await Promise.all([device.close(), pool.close()]);
}
