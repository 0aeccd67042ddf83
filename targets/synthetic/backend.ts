/**
 * synthetic: a target whose figures are a deterministic model of the schedule (model.ts), for
 * tests, demos and experiments on machines that cannot run generated code. It generates no code:
 * compile and the device's run/time say so in one line; its peak is the model's.
 */
import { fail } from '../../ir/errors.ts';
import type { Backend, Device } from '../backend.ts';
import { describeDecision } from '../describe.ts';
import { x86Caps } from '../x86/target.ts';
import { syntheticGflops } from './model.ts';

/** The model's peak GFLOPS (the synthetic evaluator's default). */
export const SYNTHETIC_PEAK = 100;

const NO_CODE = 'the synthetic target generates no code (its figures are a model of the schedule)';

function syntheticDevice(): Device {
  return {
    native: false,
    host: 'synthetic',
    run: async () => ({ ok: false, error: NO_CODE }),
    time: async () => ({ ok: false, error: NO_CODE }),
    peak: async () => ({ gflops: SYNTHETIC_PEAK, source: 'model', method: 'synthetic' }),
    close: async () => {},
  };
}

export function syntheticBackend(): Backend {
  return {
    name: 'synthetic',
    // the model rewards AVX-512-like vectors (16 lanes): the sketches tile for those
    caps: x86Caps('avx512'),
    actions: [],
    maxLoops: 10,
    nominalPeakGflops: SYNTHETIC_PEAK,
    timing: 'model',
    sketchRegisters: { lanes: 16, registers: 31 },
    processor: 'cpu',
    compile: () => fail(NO_CODE),
    describe: describeDecision,
    model: syntheticGflops,
    open: async () => syntheticDevice(),
  };
}
