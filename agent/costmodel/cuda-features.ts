/**
 * Features of a cuda schedule for the learned cost model (feature set 'cuda'). The CPU features
 * describe a LoopProgram's register tile and cache footprints; a GPU kernel's speed is decided by
 * other things, so these come from the GPU mapping (loopnest/gpu.ts) and the emitted PTX
 * itself (an instruction mix of the very text the driver JITs):
 *
 *   parallelism   blocks, threads per block, waves over the multiprocessors and the last wave's
 *                 fill, an occupancy estimate from threads, registers (accumulators) and shared bytes
 *   per thread    accumulators, unrolled operations, FLOPs per thread, split-reduction threads
 *   memory        staged or not, shared bytes, global/shared loads and stores per FMA in the PTX,
 *                 the fraction of them that are 128-bit, barriers
 *   coalescing    per tensor, the stride (elements) of the fastest thread index
 *   waste         computed points over useful points (tails rounded up to whole tiles)
 *   problem       log FLOPs, log output elements, op family
 *
 * Multiprocessor figures assume an H100/H200-class GPU (132 SMs, 2048 threads and 228 KiB shared
 * memory per SM, 64K registers); the model learns the rest from measurements.
 */
import { isReduction, flops as problemFlops, elementCount, tensorStrides } from '../../ir/problem.ts';
import type { Schedule } from '../../ir/schedule.ts';
import { loopIterations } from '../../loopnest/gpu.ts';
import { compileCuda, type CudaKernel } from '../../targets/cuda/target.ts';

const SMS = 132;
const THREADS_PER_SM = 2048;
const SHARED_PER_SM = 228 * 1024;
const REGISTERS_PER_SM = 65536;
const TENSOR_SLOTS = 3;

export const CUDA_FEATURE_NAMES: readonly string[] = Object.freeze([
  'log_blocks', 'log_threads', 'log_waves', 'last_wave_fill', 'occupancy', 'blocks_per_sm',
  'log_accumulators', 'log_unrolled_ops', 'log_flops_per_thread', 'log_reduction_threads', 'log_est_registers',
  'staged', 'log_shared_bytes', 'global_loads_per_fma', 'shared_loads_per_fma', 'global_stores_per_fma', 'vector_load_fraction',
  'barriers', 'log_ptx_lines', 'other_per_fma', 'defaulted',
  ...Array.from({ length: TENSOR_SLOTS }, (_, t) => `log_thread_stride_t${t}`),
  ...Array.from({ length: TENSOR_SLOTS }, (_, t) => `thread_moves_t${t}`),
  'waste', 'log_problem_flops', 'log_output_elements', 'op_gemm', 'op_conv', 'op_other', 'reduction_in_tile',
]);
export const CUDA_FEATURE_COUNT = CUDA_FEATURE_NAMES.length;

const lg = (x: number) => Math.log2(Math.max(1, x));

/**
 * Multiply-adds per thread of one tensor-core instruction, so that its count is in the same unit
 * as an fp32 SIMT kernel's fma count: mma.sync m16n8kK runs 16*8*K over a warp's 32 lanes, wgmma
 * m64nNk16 64*N*16 over a warpgroup's 128 threads.
 */
function tensorCoreMacs(op: string): number {
  const mma = /^mma\.sync\.aligned\.m(\d+)n(\d+)k(\d+)/.exec(op);
  if (mma) return (Number(mma[1]) * Number(mma[2]) * Number(mma[3])) / 32;
  const wgmma = /^wgmma\.mma_async\.sync\.aligned\.m(\d+)n(\d+)k(\d+)/.exec(op);
  if (wgmma) return (Number(wgmma[1]) * Number(wgmma[2]) * Number(wgmma[3])) / 128;
  return 0;
}

/** Counts of PTX instruction kinds in a module (static: the unrolled tile appears once); tensor-core instructions count their multiply-adds per thread as fma. */
function instructionMix(ptx: string): { fma: number; fmaOps: number; ldGlobal: number; ldShared: number; stGlobal: number; vector: number; loads: number; bar: number; total: number } {
  // fma: multiply-adds per thread; fmaOps: the instructions that do them
  const c = { fma: 0, fmaOps: 0, ldGlobal: 0, ldShared: 0, stGlobal: 0, vector: 0, loads: 0, bar: 0, total: 0 };
  for (const line of ptx.split('\n')) {
    const m = /^\s+(?:@!?%\w+\s+)?([a-z][\w.]*)/.exec(line);
    if (!m) continue;
    const op = m[1]!;
    c.total++;
    if (op.startsWith('fma.')) {
      c.fma++;
      c.fmaOps++;
    } else if (op.startsWith('mma.') || op.startsWith('wgmma.mma_async')) {
      c.fma += tensorCoreMacs(op);
      c.fmaOps++;
    }
    else if (op.startsWith('ld.global')) c.ldGlobal++;
    else if (op.startsWith('ld.shared')) c.ldShared++;
    // a split-k share's atomic adds into the output count as its stores
    else if (op.startsWith('st.global') || op.startsWith('red.global')) c.stGlobal++;
    else if (op.startsWith('bar.')) c.bar++;
    if (op.startsWith('ld.global') || op.startsWith('ld.shared')) {
      c.loads++;
      if (op.includes('.v4') || op.includes('.v2')) c.vector++;
    }
  }
  return c;
}

/** The feature row of a schedule (throws where it has no GPU kernel). */
export function cudaFeatures(s: Schedule, kernel: CudaKernel = compileCuda(s)): Float32Array {
  const f = new Float32Array(CUDA_FEATURE_COUNT);
  const m = kernel.mapping;
  const p = s.problem;
  const threads = Math.max(1, m.threads);
  // static shared memory, or a tensor-core kernel's dynamic pipeline buffers (its depth shows here)
  const shared = kernel.launch.sharedBytes + (kernel.launch.dynamicSharedBytes ?? 0);
  const estRegisters = Math.min(255, m.accumulators + 24 + (m.staged !== null ? 8 : 0));
  const byThreads = Math.floor(THREADS_PER_SM / threads);
  const byShared = shared > 0 ? Math.floor(SHARED_PER_SM / shared) : 32;
  const byRegs = Math.floor(REGISTERS_PER_SM / (threads * estRegisters));
  const perSm = Math.max(0, Math.min(32, byThreads, byShared, byRegs));
  const slots = Math.max(1, perSm * SMS);
  const waves = m.blocks / slots;
  const mix = instructionMix(kernel.text!);
  const fma = Math.max(1, mix.fma);
  const totalFlops = problemFlops(p);
  const strides = tensorStrides(p);
  // the fastest-varying thread index: the innermost thread loop (block x)
  const xLoop = m.indices.find((b) => b.source === 'tid' && b.dim === 'x' && b.div === 1);
  // computed points: bound and serial iteration counts of output variables, tails rounded up
  let computed = 1;
  for (const l of m.schedule.loops) if (!isReduction(p, l.var)) computed *= loopIterations(l);
  const outputs = elementCount(p.tensors[0]!);
  let i = 0;
  const put = (x: number) => (f[i++] = Number.isFinite(x) ? x : 0);
  put(lg(m.blocks));
  put(lg(threads));
  put(lg(waves * 8) / 8);
  put(waves >= 1 ? (waves % 1 === 0 ? 1 : (waves % 1)) : waves);
  put((perSm * threads) / THREADS_PER_SM);
  put(perSm / 32);
  put(lg(m.accumulators));
  put(lg(m.unrolledOps));
  put(lg(totalFlops / (m.blocks * threads)));
  put(lg(m.reductionThreads));
  put(estRegisters / 255);
  put(m.staged !== null ? 1 : 0);
  put(lg(shared + 1) / 16);
  put(Math.min(4, mix.ldGlobal / fma));
  put(Math.min(4, mix.ldShared / fma));
  put(Math.min(4, mix.stGlobal / fma));
  put(mix.loads ? mix.vector / mix.loads : 0);
  put(Math.min(8, mix.bar) / 8);
  put(lg(mix.total) / 16);
  put(Math.min(8, (mix.total - mix.fmaOps) / fma));
  put(m.defaulted ? 1 : 0);
  for (let t = 0; t < TENSOR_SLOTS; t++) {
    const st = t < strides.length && xLoop ? Math.abs(strides[t]![m.schedule.loops[xLoop.loop]!.var]!) : 0;
    put(lg(st + 1) / 16);
  }
  for (let t = 0; t < TENSOR_SLOTS; t++) {
    const st = t < strides.length && xLoop ? strides[t]![m.schedule.loops[xLoop.loop]!.var]! : 0;
    put(st === 0 ? 0 : st === 1 ? 1 : 0.5);
  }
  put(Math.min(4, computed / Math.max(1, outputs)));
  put(lg(totalFlops) / 48);
  put(lg(outputs) / 32);
  put(p.op === 'matmul' || p.op === 'bmm' ? 1 : 0);
  put(p.op.startsWith('conv') ? 1 : 0);
  put(p.op !== 'matmul' && p.op !== 'bmm' && !p.op.startsWith('conv') ? 1 : 0);
  put(m.tileFrom < m.unrollFrom ? 1 : 0);
  return f;
}

/** Rows for many schedules; a schedule without a GPU kernel gets a row of zeros plus NaN in slot 0 (callers rank it last). */
export function featurizeCuda(schedules: readonly Schedule[], cache?: Map<string, Float32Array>): Float32Array {
  const out = new Float32Array(schedules.length * CUDA_FEATURE_COUNT);
  schedules.forEach((s, j) => {
    const key = `${s.problem.spec}|${s.hash()}`;
    let row = cache?.get(key);
    if (!row) {
      try {
        row = cudaFeatures(s);
      } catch {
        row = new Float32Array(CUDA_FEATURE_COUNT);
      }
      if (cache) {
        if (cache.size > 20000) cache.clear();
        cache.set(key, row);
      }
    }
    out.set(row, j * CUDA_FEATURE_COUNT);
  });
  return out;
}
