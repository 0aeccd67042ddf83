/**
 * The GPU as a ModelDevice (agent/gpu-model-device.ts), through the CUDA driver API
 * (targets/cuda/driver.ts, runner.ts): cuMemAlloc'd regions (a view is a pointer into one),
 * cuMemcpyHtoD / DtoH, cuMemsetD32, one JIT-loaded module per kernel, launches and events on the
 * null stream, so everything runs in the order it is enqueued. Loaded only where a GPU is used:
 * it binds libcuda through koffi.
 */
import { fail } from '../ir/errors.ts';
import { CudaRunner } from '../targets/cuda/runner.ts';
import type { CudaKernel } from '../targets/cuda/target.ts';
import type { DeviceRegion, ModelDevice } from './gpu-model-device.ts';

class DriverRegion implements DeviceRegion {
  constructor(readonly pointer: bigint, readonly elements: number, readonly owned: boolean) {}
}

function driverRegion(r: DeviceRegion): DriverRegion {
  if (!(r instanceof DriverRegion)) fail('cuda device: the region was not made by this device');
  return r;
}

/** The 32-bit pattern of an fp32 value (what cuMemsetD32 writes). */
function bitsOf(value: number): number {
  return new Uint32Array(new Float32Array([value]).buffer)[0]!;
}

/** GPU `ordinal` (default 0) as a model device; one line (LoopTuneError) where there is no driver or GPU. */
export function driverDevice(ordinal = 0): ModelDevice {
  let gpu: CudaRunner;
  try {
    gpu = new CudaRunner(ordinal);
  } catch (e) {
    fail(`cuda: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`);
  }
  const d = gpu.device;
  const info = d.info();
  const loaded = new Set<CudaKernel>();
  return {
    name: `${info.name}, driver ${info.driverVersion}, sm_${info.computeCapability.replace('.', '')}`,
    alloc: (elements) => new DriverRegion(d.alloc(elements * 4), elements, true),
    view(base, offset, elements) {
      const b = driverRegion(base);
      if (offset < 0 || offset + elements > b.elements) fail(`cuda device: a view of ${elements} at ${offset} exceeds its region of ${b.elements}`);
      return new DriverRegion(b.pointer + BigInt(offset * 4), elements, false);
    },
    free(region) {
      const r = driverRegion(region);
      if (!r.owned) fail('cuda device: free takes an allocation, not a view');
      d.free(r.pointer);
    },
    upload(to, data) {
      const r = driverRegion(to);
      if (data.length !== r.elements) fail(`cuda device: upload of ${data.length} values into a region of ${r.elements}`);
      if (data.length > 0) d.upload(r.pointer, data);
    },
    download(from, into) {
      const r = driverRegion(from);
      if (into.length !== r.elements) fail(`cuda device: download of a region of ${r.elements} into ${into.length} values`);
      if (into.length > 0) d.download(into, r.pointer);
    },
    fill(region, value) {
      const r = driverRegion(region);
      if (r.elements > 0) d.fill32(r.pointer, bitsOf(value), r.elements);
    },
    load(kernel) {
      gpu.load(kernel);
      loaded.add(kernel);
    },
    launch: (kernel, tensors) => gpu.launch(kernel, tensors.map((t) => driverRegion(t).pointer)),
    synchronize: () => d.synchronize(),
    runner: gpu.runner(),
    timeParts(parts) {
      const events = Array.from({ length: parts.length + 1 }, () => d.event());
      try {
        d.record(events[0]!);
        parts.forEach((part, i) => {
          part();
          d.record(events[i + 1]!);
        });
        return parts.map((_, i) => d.elapsed(events[i]!, events[i + 1]!) / 1000);
      } finally {
        for (const e of events) d.destroyEvent(e);
      }
    },
    dispose() {
      for (const k of loaded) gpu.unload(k);
      loaded.clear();
    },
  };
}
