/**
 * The GPU's measured fp32 FMA peak: the denominator of rewards and "% of peak" on the cuda target,
 * as the x86 peak probe is for the CPU targets. A PTX kernel in which every thread runs CHAINS
 * independent fma.rn.f32 recurrences (a = a*y + x: a loop-carried dependence the JIT cannot drop),
 * UNROLL times per iteration, and stores their sum so nothing is dead. The grid fills every
 * multiprocessor many times over (8 blocks of 256 threads per SM), so the figure is the
 * FMA pipes' throughput, not a latency.
 */
import { PTX_TARGET, PTX_VERSION } from './ptx.ts';
import type { CudaRunner } from './runner.ts';

const CHAINS = 16;
const UNROLL = 8;
const ITERATIONS = 2048;
const THREADS = 256;
const BLOCKS_PER_SM = 8;
export const PEAK_ENTRY = 'looptune_fma_peak';

/** The peak kernel's PTX: CHAINS x UNROLL x ITERATIONS fused multiply-adds per thread. */
export function peakPtx(): string {
  const lines: string[] = [
    `.version ${PTX_VERSION}`, `.target ${PTX_TARGET}`, '.address_size 64', '',
    `.visible .entry ${PEAK_ENTRY}(.param .u64 out)`, '{',
    `  .reg .f32 %a<${CHAINS}>;`, '  .reg .f32 %x, %y, %s;', '  .reg .u32 %i, %t, %b, %n, %g;', '  .reg .u64 %o, %off;', '  .reg .pred %p;',
    '  mov.u32 %t, %tid.x;', '  mov.u32 %b, %ctaid.x;', '  mov.u32 %n, %ntid.x;', '  mad.lo.u32 %g, %b, %n, %t;',
    '  cvt.rn.f32.u32 %x, %t;', '  mul.f32 %x, %x, 0f38000000;', // x = tid * 2^-15: small, thread-dependent
    '  mov.f32 %y, 0f3F7FFF00;', // y just below 1: the recurrences stay bounded
  ];
  for (let c = 0; c < CHAINS; c++) lines.push(`  add.f32 %a${c}, %x, 0f${(0x3f800000 + c * 0x10000).toString(16).toUpperCase()};`);
  lines.push('  mov.u32 %i, 0;', 'LOOP:');
  for (let u = 0; u < UNROLL; u++) for (let c = 0; c < CHAINS; c++) lines.push(`  fma.rn.f32 %a${c}, %a${c}, %y, %x;`);
  lines.push('  add.u32 %i, %i, 1;', `  setp.lt.u32 %p, %i, ${ITERATIONS};`, '  @%p bra LOOP;', '  mov.f32 %s, %a0;');
  for (let c = 1; c < CHAINS; c++) lines.push(`  add.f32 %s, %s, %a${c};`);
  lines.push(
    '  ld.param.u64 %o, [out];', '  cvta.to.global.u64 %o, %o;', '  mul.wide.u32 %off, %g, 4;', '  add.u64 %o, %o, %off;',
    '  st.global.f32 [%o], %s;', '  ret;', '}', '',
  );
  return lines.join('\n');
}

export interface GpuPeak {
  gflops: number;
  blocks: number;
  threads: number;
  bestMs: number;
}

/** Times the peak kernel on the runner's device (best of repeated launches, CUDA events). */
export function measureGpuPeak(gpu: CudaRunner, opts: { minSeconds?: number } = {}): GpuPeak {
  const sms = gpu.device.info().multiprocessors;
  const blocks = sms * BLOCKS_PER_SM;
  const out = gpu.device.alloc(blocks * THREADS * 4);
  const m = gpu.device.loadPtx(peakPtx(), PEAK_ENTRY);
  try {
    const flops = 2 * CHAINS * UNROLL * ITERATIONS * blocks * THREADS;
    const t = gpu.timeLaunches(() => gpu.device.launch(m.func, [blocks, 1, 1], [THREADS, 1, 1], 0, [out]), flops, { minSeconds: opts.minSeconds ?? 0.1 });
    return { gflops: t.gflops, blocks, threads: THREADS, bestMs: t.bestSeconds * 1e3 };
  } finally {
    gpu.device.unload(m);
    gpu.device.free(out);
  }
}
