/**
 * Hand-assembled x86-64 kernels for the runtime tests (no dependency on the emitter).
 * Every sequence was checked with `llvm-mc-14 --disassemble -triple=x86_64 -output-asm-variant=1`.
 */
import type { NativeKernel } from '../../../targets/runtime/executable-memory.ts';

function kernel(bytes: number[], elements: number[], flops = 0): NativeKernel {
  return {
    code: Uint8Array.from(bytes),
    abi: { kind: 'sysv-x86-64', tensors: elements.map((n, i) => ({ name: `t${i}`, elements: n })) },
    flops,
  };
}

/** `*t0 = 1.0f` — mov dword ptr [rdi], 0x3f800000; ret */
export const storeOne = kernel([0xc7, 0x07, 0x00, 0x00, 0x80, 0x3f, 0xc3], [1]);

/**
 * `repeat reps: t0[0] += t1[0] * t2[0]` (a 1x1x1 matmul honouring reps, 2 flops a rep):
 *   loop: vmovss xmm0, [rsi]; vmulss xmm0, xmm0, [rdx]; vaddss xmm0, xmm0, [rdi]; vmovss [rdi], xmm0
 *         dec rcx; jnz loop
 *   ret
 */
export const multiplyAccumulate = kernel(
  [
    0xc5, 0xfa, 0x10, 0x06, // vmovss xmm0, dword ptr [rsi]
    0xc5, 0xfa, 0x59, 0x02, // vmulss xmm0, xmm0, dword ptr [rdx]
    0xc5, 0xfa, 0x58, 0x07, // vaddss xmm0, xmm0, dword ptr [rdi]
    0xc5, 0xfa, 0x11, 0x07, // vmovss dword ptr [rdi], xmm0
    0x48, 0xff, 0xc9, //       dec rcx
    0x75, 0xeb, //             jnz -21 (loop)
    0xc3, //                   ret
  ],
  [1, 1, 1],
  2,
);

/** mov dword ptr [0], eax — SIGSEGV */
export const segfault = kernel([0x89, 0x04, 0x25, 0x00, 0x00, 0x00, 0x00, 0xc3], [1]);

/** ud2 — SIGILL */
export const illegal = kernel([0x0f, 0x0b], [1]);

/** jmp $ — never returns */
export const hang = kernel([0xeb, 0xfe], [1]);

/** `t0[index] = 1.0f` on a tensor of `elements`: mov dword ptr [rdi + 4*index], 0x3f800000; ret */
export function storeOneAt(index: number, elements: number): NativeKernel {
  const disp = index * 4;
  if (disp > 127) throw new RangeError('fixture uses a disp8');
  return kernel([0xc7, 0x47, disp, 0x00, 0x00, 0x80, 0x3f, 0xc3], [elements]);
}

/**
 * A peak probe, `void f(float *dummy, int64_t reps)`, AVX2, 1 to 8 chains:
 *   vxorps xmm14/xmm15 (sources), vxorps xmm0..xmm{c-1} (accumulators)
 *   outer: mov eax, iters
 *   inner: vfmadd231ps ymm{i}, ymm14, ymm15  (i < chains)
 *          dec eax; jnz inner
 *          dec rsi; jnz outer
 *   vzeroupper; ret
 */
export function avx2FmaChains(isa: 'avx2' | 'avx512', chains: number, iters: number): Uint8Array {
  if (isa !== 'avx2' || chains < 1 || chains > 8) throw new RangeError('fixture: avx2 with 1..8 chains only');
  const bytes: number[] = [0xc4, 0x41, 0x08, 0x57, 0xf6, 0xc4, 0x41, 0x00, 0x57, 0xff];
  for (let i = 0; i < chains; i++) bytes.push(0xc5, 0x80 | ((~i & 0xf) << 3), 0x57, 0xc0 | (i << 3) | i);
  bytes.push(0xb8, iters & 0xff, (iters >> 8) & 0xff, (iters >> 16) & 0xff, (iters >>> 24) & 0xff);
  for (let i = 0; i < chains; i++) bytes.push(0xc4, 0xc2, 0x0d, 0xb8, 0xc7 | (i << 3));
  bytes.push(0xff, 0xc8, 0x75, 0x100 - (5 * chains + 4)); // dec eax; jnz inner
  bytes.push(0x48, 0xff, 0xce, 0x75, 0x100 - (5 + 5 * chains + 4 + 5)); // dec rsi; jnz outer
  bytes.push(0xc5, 0xf8, 0x77, 0xc3); // vzeroupper; ret
  return Uint8Array.from(bytes);
}
