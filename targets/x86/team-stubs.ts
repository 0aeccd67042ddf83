/**
 * The two x86-64 stubs between OpenMP's libgomp and a parallel kernel (targets/runtime/threads.ts
 * owns the data block they read; its layout is TEAM_DATA here):
 *
 *   drive(data, p0, ..., p4): stores the tensor pointers, then `forks` times: GOMP_parallel(team, data, threads, 0)
 *   team(data):  for (t = omp_get_thread_num(); t < threads; t += omp_get_num_threads())
 *                  kernel(p0..pN-1, kernelReps, t, threads)
 *
 * libgomp calls `team` once on every thread of the team (the caller's thread included) and joins
 * them before GOMP_parallel returns. With a full team each thread runs exactly its own tid, the
 * static schedule of OpenMP (a first version handed out tids by an atomic ticket: threads that
 * woke first took the tids of threads still waking, and 16 threads ran like 8 on a 16-core Xeon);
 * a smaller team (a thread limit) only means some threads run several tids. Both stubs keep the
 * stack 16-byte aligned at calls and use only rbx, r12 and r13 (saved) across them.
 */
import { Assembler } from './encoder.ts';
import { type Gp64, eax, qword, rax, rbx, rcx, rdi, rdx, rsi, rsp, r8, r9, r12, r13, ecx, r12d, r13d } from './registers.ts';

/** Byte offsets of the data block's fields. */
export const TEAM_DATA = Object.freeze({
  kernel: 0,
  /** tensor pointers, 8 bytes each, from here */
  pointers: 8,
  threads: 48,
  kernelReps: 56,
  gompParallel: 64,
  team: 72,
  forks: 80,
  ompThreadNum: 88,
  ompNumThreads: 96,
  bytes: 128,
});

/** Most tensor pointers a kernel takes (the x86 emitter's limit). */
export const TEAM_MAX_POINTERS = 5;

const ARGS: Gp64[] = [rdi, rsi, rdx, rcx, r8, r9];

export interface TeamStubs {
  code: Uint8Array;
  /** byte offset of drive(data, p0, ..., p4): the pointers arrive as arguments, so a caller may pass memory
   *  that is valid only for the call (koffi's Float32Array arguments) */
  drive: number;
  /** byte offset of team(data) for kernels of 1..5 pointers (index = pointers - 1) */
  team: number[];
}

export function teamStubs(): TeamStubs {
  const a = new Assembler();
  const drive = a.offset;
  emitDrive(a);
  const team: number[] = [];
  for (let n = 1; n <= TEAM_MAX_POINTERS; n++) {
    a.align(16);
    team.push(a.offset);
    emitTeam(a, n);
  }
  return { code: a.finish(), drive, team };
}

function emitDrive(a: Assembler): void {
  // the five pointer arguments into the data block (unused ones are whatever the caller passed)
  [rsi, rdx, rcx, r8, r9].forEach((r, i) => a.mov(qword(rdi, TEAM_DATA.pointers + 8 * i), r));
  a.push(rbx);
  a.push(r12);
  a.sub(rsp, 8);
  a.mov(rbx, rdi);
  a.mov(r12, qword(rbx, TEAM_DATA.forks));
  const top = a.newLabel();
  a.bind(top);
  a.mov(rdi, qword(rbx, TEAM_DATA.team));
  a.mov(rsi, rbx);
  a.mov(rdx, qword(rbx, TEAM_DATA.threads));
  a.xor(ecx, ecx);
  a.call(qword(rbx, TEAM_DATA.gompParallel));
  a.dec(r12);
  a.jnz(top);
  a.add(rsp, 8);
  a.pop(r12);
  a.pop(rbx);
  a.ret();
}

/** team(data) for a kernel of `n` pointers: arguments p0..pn-1, kernelReps, tid, threads. */
function emitTeam(a: Assembler, n: number): void {
  a.push(rbx);
  a.push(r12);
  a.push(r13);
  a.sub(rsp, 16); // two stack arguments at most; rsp stays 16-byte aligned at the calls
  a.mov(rbx, rdi);
  a.call(qword(rbx, TEAM_DATA.ompThreadNum));
  a.mov(r12d, eax);
  a.call(qword(rbx, TEAM_DATA.ompNumThreads));
  a.mov(r13d, eax);
  const top = a.newLabel();
  const done = a.newLabel();
  const stride = a.newLabel();
  // a team of 0 threads cannot call this; guard the stride anyway, never loop forever
  a.test(r13, r13);
  a.jnz(stride);
  a.mov(r13, 1);
  a.bind(stride);
  a.bind(top);
  a.cmp(r12, qword(rbx, TEAM_DATA.threads));
  a.jae(done);
  type Source = { field: number } | { reg: Gp64 };
  const args: Source[] = [
    ...Array.from({ length: n }, (_, i) => ({ field: TEAM_DATA.pointers + 8 * i })),
    { field: TEAM_DATA.kernelReps }, { reg: r12 }, { field: TEAM_DATA.threads },
  ];
  const load = (dst: Gp64, src: Source): void => {
    if ('reg' in src) a.mov(dst, src.reg);
    else a.mov(dst, qword(rbx, src.field));
  };
  // stack arguments first (through rax), then the registers
  args.forEach((src, i) => {
    if (i < ARGS.length) return;
    load(rax, src);
    a.mov(qword(rsp, 8 * (i - ARGS.length)), rax);
  });
  args.forEach((src, i) => {
    if (i < ARGS.length) load(ARGS[i]!, src);
  });
  a.call(qword(rbx, TEAM_DATA.kernel));
  a.add(r12, r13);
  a.jmp(top);
  a.bind(done);
  a.add(rsp, 16);
  a.pop(r13);
  a.pop(r12);
  a.pop(rbx);
  a.ret();
}
