/**
 * A Backend over a CPU printer (x86, LLVM, arm64): compile = the shared lowering (loopnest/lower.ts)
 * with the printer's caps, then the printer, timed together (the "schedule to executable bytes" figure).
 */
import { fail } from '../ir/errors.ts';
import { parallelBand, type Schedule } from '../ir/schedule.ts';
import { THREAD_ACTIONS } from '../ir/transforms.ts';
import { lower } from '../loopnest/lower.ts';
import type { Backend, CompileOptions, Device, DeviceOptions, SketchRegisters, TimingKind } from './backend.ts';
import { describeDecision } from './describe.ts';
import type { Kernel, Target } from './kernel.ts';

/** LoopTune's loop limit on CPU nests. */
export const CPU_MAX_LOOPS = 10;

export interface CpuBackendSpec {
  printer: Target;
  nominalPeakGflops: number;
  timing: TimingKind;
  baselineFamily?: string;
  sketchRegisters: SketchRegisters;
  open(options: DeviceOptions): Promise<Device>;
  moduleText?(schedule: Schedule): string;
}

export function cpuBackend(spec: CpuBackendSpec): Backend & { printer: Target } {
  const { printer } = spec;
  return {
    name: printer.name,
    caps: printer.caps,
    printer,
    // printers that emit parallel bands add the parallel action (kernels on several threads)
    actions: printer.caps.threads ? THREAD_ACTIONS : [],
    maxLoops: CPU_MAX_LOOPS,
    nominalPeakGflops: spec.nominalPeakGflops,
    timing: spec.timing,
    ...(spec.baselineFamily ? { baselineFamily: spec.baselineFamily } : {}),
    sketchRegisters: spec.sketchRegisters,
    processor: 'cpu',
    validate: (schedule: Schedule) => unsupported(printer, schedule),
    compile(schedule: Schedule, options: CompileOptions = {}): Kernel {
      const why = unsupported(printer, schedule);
      if (why) fail(why);
      const t0 = performance.now();
      const kernel = printer.compile(lower(schedule, printer.caps, options));
      kernel.codegenMicros = (performance.now() - t0) * 1000;
      return kernel;
    },
    describe: describeDecision,
    ...(printer.disassemble ? { disassemble: printer.disassemble.bind(printer) } : {}),
    ...(spec.moduleText ? { moduleText: spec.moduleText } : {}),
    open: (options = {}) => spec.open(options),
  };
}

/** Why the printer cannot compile this schedule (element type, threads, epilogue ops), or undefined. */
function unsupported(printer: Target, schedule: Schedule): string | undefined {
  // CPU kernels multiply fp32: a bf16/f16/tf32 problem is refused, not silently run in fp32
  const dtype = schedule.problem.dtype;
  if (dtype !== undefined) return `${printer.name} kernels compute in f32 only: ${dtype} problems need --target cuda (${schedule.problem.spec})`;
  if (!printer.caps.threads && parallelBand(schedule.loops).length > 0) return singleThreaded(printer.name);
  const missing = (schedule.problem.epilogue ?? []).find((e) => printer.caps.epilogueScratch?.[e.kind] === undefined);
  if (missing) return `${printer.name} kernels have no fused ${missing.kind} epilogue yet (${schedule.problem.spec})`;
  return undefined;
}

function singleThreaded(target: string): string {
  return `${target} kernels run on one thread: a schedule with parallel loops (suffix p) needs a target with threads (avx2, avx512)`;
}
