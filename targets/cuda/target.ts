/**
 * The cuda target: compile = emit PTX for the schedule (ptx.ts, mapping rule in mapping.ts).
 * A Kernel's `text` is the PTX module and `code` its UTF-8 bytes (what cuModuleLoadDataEx takes,
 * plus a NUL); `launch` gives the entry name, grid and block dims. The ABI passes one global
 * pointer per tensor, output first; there is no repetition count (the runner launches again).
 *
 * The GPU code is generated from the schedule itself (bindings, staging and tiles are GPU notions
 * the target-independent LoopProgram does not carry): `compile(program)` reads `program.schedule`.
 */
import { flops } from '../../ir/problem.ts';
import { Schedule } from '../../ir/schedule.ts';
import type { LoopProgram } from '../../loopnest/program.ts';
import type { Kernel, Target, TargetCaps } from '../kernel.ts';
import { describeMapping, type GpuMapping, MAX_ACCUMULATORS, MAX_UNROLLED } from './mapping.ts';
import { emitPtx, type CudaLaunch, type EmitOptions } from './ptx.ts';

export interface CudaKernel extends Kernel {
  launch: CudaLaunch;
  mapping: GpuMapping;
}

export function isCudaKernel(k: Kernel): k is CudaKernel {
  return k.abi.kind === 'cuda' && (k as CudaKernel).launch !== undefined;
}

/** Caps for the shared lowering (used for `show` and the cost model; PTX comes from the schedule). */
export function cudaCaps(): TargetCaps {
  return {
    vectorLanes: 1,
    vectorRegisters: MAX_ACCUMULATORS,
    scalarRegisters: MAX_ACCUMULATORS,
    hasMaskedTails: true,
    zeroRegisterForRelu: false,
    maskRegisterForTails: false,
    // fp32 FFMA: 4-cycle latency, 4 warp schedulers per SM
    fmaLatency: 4,
    fmaPorts: 4,
    unrollBudget: MAX_UNROLLED,
  };
}

const encoder = new TextEncoder();

function kernelFor(schedule: Schedule, program: LoopProgram, t0: number, options: EmitOptions = {}): CudaKernel {
  const e = emitPtx(schedule, options);
  return {
    target: 'cuda',
    code: encoder.encode(e.ptx),
    text: e.ptx,
    abi: { kind: 'cuda', tensors: program.tensors },
    flops: flops(schedule.problem),
    program,
    codegenMicros: (performance.now() - t0) * 1000,
    launch: e.launch,
    mapping: e.mapping,
  };
}

/** A LoopProgram stand-in for kernels compiled straight from a schedule (no CPU lowering). */
function scheduleProgram(s: Schedule, m: GpuMapping | null): LoopProgram {
  const p = s.problem;
  return {
    problem: p,
    schedule: s.text(),
    combine: p.combine,
    tensors: p.tensors.map((t) => ({ name: t.name, elements: t.shape.reduce((a, b) => a * b, 1) })),
    decision: {
      lanes: 1, vectorVar: null,
      unrollFrom: m?.unrollFrom ?? s.loops.length, tileFrom: m?.tileFrom ?? s.loops.length,
      accumulators: m?.accumulators ?? 1, unrolledOps: m?.unrolledOps ?? 1,
      zeroRegister: false, maskRegister: false,
    },
    body: [],
  };
}

/** Schedule -> PTX kernel directly (what searches use: no CPU lowering in between). */
export function compileCuda(schedule: Schedule, options: EmitOptions = {}): CudaKernel {
  const t0 = performance.now();
  const k = kernelFor(schedule, scheduleProgram(schedule, null), t0, options);
  k.program = scheduleProgram(schedule, k.mapping);
  return k;
}

export function cudaTarget(): Target {
  return {
    name: 'cuda',
    caps: cudaCaps(),
    compile(program: LoopProgram): Kernel {
      const t0 = performance.now();
      const schedule = Schedule.parse(program.problem, program.schedule);
      return kernelFor(schedule, program, t0);
    },
    disassemble(kernel: Kernel): string {
      const k = kernel as CudaKernel;
      const head = k.mapping ? `// mapping: ${describeMapping(k.mapping)}\n` : '';
      return head + (kernel.text ?? new TextDecoder().decode(kernel.code));
    },
  };
}
