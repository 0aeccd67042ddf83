/**
 * The GPU mapping rule moved to the GPU lowering (loopnest/gpu.ts); these names stay importable
 * from here for the modules that still do (cli.ts, cli/show.ts, bench/cuda.ts, the cuda cost model).
 */
export {
  describeMapping, gpuMapping, loopIterations, MAX_ACCUMULATORS, MAX_GRID_X, MAX_THREADS, MAX_UNROLLED,
  reductionThreadObstacle, tileCost, withDefaultBindings, type BoundIndex, type Dim, type GpuMapping,
} from '../../loopnest/gpu.ts';
