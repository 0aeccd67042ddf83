/**
 * Without a GPU: the driver bindings fail with one clear line, and the target registers as 'cuda'.
 * (The GPU paths themselves run on the device machine: bench/cuda.ts.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CudaDevice, CudaError, hasCudaDriver, NO_DRIVER } from '../../../targets/cuda/driver.ts';
import { backend, backendNames } from '../../../targets/registry.ts';

test('no CUDA driver: one line, "no CUDA driver (libcuda.so.1 not found)"', () => {
  if (hasCudaDriver()) {
    console.log('  (skipped: this machine has libcuda.so.1)');
    return;
  }
  assert.throws(() => new CudaDevice(), (e: unknown) => e instanceof CudaError && e.message === NO_DRIVER);
  assert.is(NO_DRIVER, 'no CUDA driver (libcuda.so.1 not found)');
});

test('the registry knows the cuda target, and it needs no GPU to compile', () => {
  assert.ok(backendNames().includes('cuda'));
  const t = backend('cuda');
  assert.is(t.name, 'cuda');
  assert.is(t.caps.vectorLanes, 1);
});

test.run();
