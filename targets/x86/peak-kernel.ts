/**
 * The FMA peak probe: `void f(float *dummy, int64_t reps)` (System V: rdi, rsi) that runs
 * `reps * itersPerRep` rounds of `chains` independent `vfmadd231ps acc_i, src_a, src_b`
 * (register operands only). With chains >= FMA latency x FMA ports the FMA pipes never wait,
 * so the best GFLOPS over a few chain counts is the machine's single-core fp32 peak.
 *
 *   flops per rep = chains * lanes * 2 * itersPerRep      (peakFlopsPerRep)
 *
 * Registers: accumulators v0..v(chains-1), sources v(chains) and v(chains+1), all zeroed first
 * (0 * 0 + 0 stays 0: no denormals, no overflow); counters rax and rsi. Only caller-saved
 * registers are touched (every vector register is caller-saved in System V), `dummy` is unused,
 * and vzeroupper runs before ret.
 */
import { Assembler } from './encoder.ts';
import { Zmm, eax, rsi, ymm, zmm, type Ymm } from './registers.ts';

export type PeakIsa = 'avx2' | 'avx512';

const LANES = { avx2: 8, avx512: 16 } as const;
const VREGS = { avx2: 16, avx512: 32 } as const;
/** FMAs per inner-loop body the unroll aims at, so that dec/jnz is a small share of the front end */
const BODY_TARGET = 24;

/** most chains an ISA allows: its vector registers less the two sources */
export function maxPeakChains(isa: PeakIsa): number {
  return VREGS[isa] - 2;
}

export function peakFlopsPerRep(isa: PeakIsa, chains: number, itersPerRep: number): number {
  return chains * LANES[isa] * 2 * itersPerRep;
}

export function peakKernel(isa: PeakIsa, chains: number, itersPerRep: number): Uint8Array {
  if (isa !== 'avx2' && isa !== 'avx512') throw new Error(`peakKernel: unknown isa ${String(isa)}`);
  if (!Number.isInteger(chains) || chains < 1 || chains > maxPeakChains(isa)) {
    throw new RangeError(`peakKernel(${isa}): chains must be 1..${maxPeakChains(isa)} (accumulators + 2 sources <= ${VREGS[isa]} registers), got ${chains}`);
  }
  if (!Number.isInteger(itersPerRep) || itersPerRep < 1 || itersPerRep > 0x7fff_ffff) {
    throw new RangeError(`peakKernel: itersPerRep must be an integer 1..2^31-1, got ${itersPerRep}`);
  }
  // unroll the inner loop by the largest divisor of itersPerRep that keeps the body near BODY_TARGET FMAs
  let unroll = 1;
  for (let u = Math.max(1, Math.floor(BODY_TARGET / chains)); u > 1; u--) {
    if (itersPerRep % u === 0) {
      unroll = u;
      break;
    }
  }

  const a = new Assembler();
  const v = (i: number): Ymm | Zmm => (isa === 'avx512' ? zmm(i) : ymm(i));
  const srcA = v(chains);
  const srcB = v(chains + 1);
  for (let i = 0; i < chains + 2; i++) {
    const r = v(i);
    if (r instanceof Zmm) a.vpxord(r, r, r);
    else a.vxorps(r, r, r);
  }
  const done = a.newLabel();
  const outer = a.newLabel();
  const inner = a.newLabel();
  a.test(rsi, rsi);
  a.jle(done);
  a.bind(outer);
  a.mov(eax, itersPerRep / unroll); // writing eax zero-extends into rax
  a.align(16);
  a.bind(inner);
  for (let u = 0; u < unroll; u++) {
    for (let i = 0; i < chains; i++) a.vfmadd231ps(v(i), srcA, srcB);
  }
  a.dec(eax);
  a.jnz(inner);
  a.dec(rsi);
  a.jnz(outer);
  a.bind(done);
  a.vzeroupper();
  a.ret();
  return a.finish();
}
