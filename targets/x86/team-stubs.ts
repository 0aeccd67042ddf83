/**
 * The two x86-64 stubs between OpenMP's libgomp and a parallel kernel (targets/runtime/threads.ts
 * owns the data block they read; its layout is TEAM_DATA here):
 *
 *   drive(data): `forks` times: ticket = 0, GOMP_parallel(team, data, threads, 0)
 *   team(data):  while ((t = atomic ticket++) < threads) kernel(p0..pN-1, kernelReps, t, threads)
 *
 * libgomp calls `team` once on every thread of the team (the caller's thread included) and joins
 * them before GOMP_parallel returns. Each call takes tickets until none are left, so the kernel
 * runs once per tid 0..threads-1 however many threads libgomp actually started (a smaller team
 * only means some threads run two tids). Both stubs keep the stack 16-byte aligned at calls and
 * use only rbx and r12 (saved) across them.
 */
import { Assembler } from './encoder.ts';
import { type Gp64, eax, qword, rax, rbx, rcx, rdi, rdx, rsi, rsp, r8, r9, r12, ecx } from './registers.ts';

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
  /** on its own cache line: every thread writes it */
  ticket: 128,
  bytes: 192,
});

/** Most tensor pointers a kernel takes (the x86 emitter's limit). */
export const TEAM_MAX_POINTERS = 5;

const ARGS: Gp64[] = [rdi, rsi, rdx, rcx, r8, r9];

export interface TeamStubs {
  code: Uint8Array;
  /** byte offset of drive(data) */
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
  a.push(rbx);
  a.push(r12);
  a.sub(rsp, 8);
  a.mov(rbx, rdi);
  a.mov(r12, qword(rbx, TEAM_DATA.forks));
  const top = a.newLabel();
  a.bind(top);
  a.mov(qword(rbx, TEAM_DATA.ticket), 0);
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
  a.sub(rsp, 24); // two stack arguments at most, and alignment
  a.mov(rbx, rdi);
  const top = a.newLabel();
  const done = a.newLabel();
  a.bind(top);
  a.mov(eax, 1);
  a.lockXadd(qword(rbx, TEAM_DATA.ticket), rax);
  a.cmp(rax, qword(rbx, TEAM_DATA.threads));
  a.jae(done);
  a.mov(r12, rax);
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
  a.jmp(top);
  a.bind(done);
  a.add(rsp, 24);
  a.pop(r12);
  a.pop(rbx);
  a.ret();
}
