/**
 * Assembly source of the AArch64 harness: a static Linux program with no libc (raw syscalls)
 * that reads a job file (format: job-format.ts), runs each kernel with the AAPCS64 call
 * `kernel(t0, ..., t(n-1), reps)` and streams one result record per job to stdout.
 *
 * What it guards against, and how:
 *   - a crashing kernel: SIGSEGV/SIGBUS/SIGILL/SIGTRAP/SIGFPE handlers on an alternate stack write
 *     a "signal" record (signal, pc, fault address, code and tensor bases) and exit EXIT.signal;
 *     core dumps are disabled (RLIMIT_CORE = 0) so a fault never leaves a qemu core file behind;
 *   - an ABI violation: x19-x29, d8-d15 are set to canaries before the call and sp is saved; all
 *     are compared after it (status 1, with a bit per clobbered register); the harness keeps its
 *     own state in memory, not in registers, so a bad kernel cannot derail it;
 *   - W^X: code is copied into a RW mapping which is then made R+X (never W and X together), and
 *     cleaned from the d-cache / invalidated from the i-cache (needed on real hardware);
 *   - overruns (guard mode): each tensor ends right before a PROT_NONE page.
 * A hang is the runner's business (it kills the process).
 *
 * Assembled with `llvm-mc-14 -triple=aarch64-linux-gnu -mattr=+neon -filetype=obj`, linked with
 * `ld.lld-14 -static` (harness.ts does both and caches the binary).
 */
import { CALLEE_SAVED, EXIT, JOB, RESULT } from './job-format.ts';

/** Layout of the harness's state block (`st` in .bss), byte offsets. */
const ST = {
  page: 0, fd: 8, buf: 16, cap: 24, len: 32, p: 40, end: 48, jobs: 56,
  code: 64, codeLen: 72, nt: 80, flags: 88, reps: 96, sp: 104, t0: 112, t1: 128,
  elems: 144, ptrs: 208, args: 272, maps: 336, mapLens: 400, after: 464, res: 624,
  size: 752,
} as const;

const SLOTS = CALLEE_SAVED.length; // 20: x19..x29, d8..d15, sp

/** Syscall numbers (asm-generic, as used by arm64). */
const SYS = {
  openat: 56, lseek: 62, read: 63, write: 64, exit_group: 94, clock_gettime: 113, sigaltstack: 132,
  rt_sigaction: 134, munmap: 215, mremap: 216, mmap: 222, mprotect: 226, prlimit64: 261,
} as const;

const ALTSTACK_BYTES = 65536;

const hex = (n: number) => `0x${n.toString(16)}`;

export const HARNESS_ASM = `// looptune AArch64 harness (generated from targets/arm64/harness-asm.ts; do not edit the .s copy)
        .equ JOB_MAGIC, ${hex(JOB.magic)}
        .equ JOB_VERSION, ${JOB.version}
        .equ JOB_HDR, ${JOB.jobHeaderBytes}
        .equ JOB_MAXT, ${JOB.maxTensors}
        .equ JOB_GUARD, ${JOB.flagGuard}
        .equ RES_MAGIC, ${hex(RESULT.magic)}
        .equ RES_BYTES, ${RESULT.headerBytes}
        .equ RES_STATUS, ${RESULT.off.status}
        .equ RES_NANOS, ${RESULT.off.nanos}
        .equ RES_OUTN, ${RESULT.off.outElements}
        .equ RES_INFO0, ${RESULT.off.info0}
        .equ RES_INFO1, ${RESULT.off.info1}
        .equ RES_INFO2, ${RESULT.off.info2}
        .equ RES_CODE, ${RESULT.off.codeBase}
        .equ RES_NT, ${RESULT.off.nTensors}
        .equ RES_TBASE, ${RESULT.off.tensorBase}
        .equ ST_ABI, ${RESULT.status.abi}
        .equ ST_SIGNAL, ${RESULT.status.signal}
        .equ EXIT_SIGNAL, ${EXIT.signal}
        .equ EXIT_USAGE, ${EXIT.usage}
        .equ EXIT_READ, ${EXIT.read}
        .equ EXIT_FORMAT, ${EXIT.format}
        .equ EXIT_MMAP, ${EXIT.mmap}
        .equ EXIT_WRITE, ${EXIT.write}
        .equ SLOTS, ${SLOTS}
        .equ MAX_ELEMS, ${hex(JOB.maxElements)}
${Object.entries(ST).map(([k, v]) => `        .equ ST_${k.toUpperCase()}, ${v}`).join('\n')}
${Object.entries(SYS).map(([k, v]) => `        .equ SYS_${k}, ${v}`).join('\n')}
        .equ ALTSTACK_BYTES, ${ALTSTACK_BYTES}

        .text
        .globl _start
        .p2align 4
_start:
        mov     x29, #0
        adrp    x19, st
        add     x19, x19, :lo12:st
        mov     x0, sp
        str     x0, [x19, #ST_SP]

        // ---- page size from the auxiliary vector (AT_PAGESZ = 6), default 4096
        ldr     x0, [sp]                    // argc
        add     x1, sp, #8                  // argv
        add     x2, x1, x0, lsl #3
        add     x2, x2, #8                  // envp
1:      ldr     x3, [x2], #8
        cbnz    x3, 1b                      // skip the environment; x2 = auxv
        mov     x4, #4096
2:      ldp     x5, x6, [x2], #16
        cbz     x5, 3f
        cmp     x5, #6
        b.ne    2b
        mov     x4, x6
3:      str     x4, [x19, #ST_PAGE]

        // ---- input: argv[1] unless absent or "-", else stdin
        str     xzr, [x19, #ST_FD]
        cmp     x0, #2
        b.lt    5f
        ldr     x1, [x1, #8]
        ldrb    w3, [x1]
        cmp     w3, #'-'
        b.ne    4f
        ldrb    w3, [x1, #1]
        cbz     w3, 5f
4:      mov     x0, #-100                   // AT_FDCWD
        mov     x2, #0                      // O_RDONLY
        mov     x3, #0
        mov     x8, #SYS_openat
        svc     #0
        tbnz    x0, #63, err_open
        str     x0, [x19, #ST_FD]
5:
        // ---- no core files: prlimit64(0, RLIMIT_CORE, {0, 0}, NULL)
        stp     xzr, xzr, [sp, #-16]!
        mov     x0, #0
        mov     x1, #4
        mov     x2, sp
        mov     x3, #0
        mov     x8, #SYS_prlimit64
        svc     #0
        add     sp, sp, #16

        // ---- fault handlers on an alternate stack
        adrp    x0, sigstk
        add     x0, x0, :lo12:sigstk
        adrp    x1, altstack
        add     x1, x1, :lo12:altstack
        str     x1, [x0]                    // ss_sp
        str     xzr, [x0, #8]               // ss_flags
        mov     x1, #ALTSTACK_BYTES
        str     x1, [x0, #16]               // ss_size
        mov     x1, #0
        mov     x8, #SYS_sigaltstack
        svc     #0
        adrp    x20, sigact
        add     x20, x20, :lo12:sigact
        adr     x1, on_signal
        str     x1, [x20]                   // sa_handler
        mov     x1, #0x4                    // SA_SIGINFO
        orr     x1, x1, #0x08000000         // SA_ONSTACK
        orr     x1, x1, #0x80000000         // SA_RESETHAND: a fault in the handler kills
        str     x1, [x20, #8]               // sa_flags
        stp     xzr, xzr, [x20, #16]        // sa_restorer / sa_mask (either layout): 0
        adr     x21, fault_signals
6:      ldrb    w0, [x21], #1
        cbz     w0, 7f
        mov     x1, x20
        mov     x2, #0
        mov     x3, #8                      // sizeof(kernel sigset_t)
        mov     x8, #SYS_rt_sigaction
        svc     #0
        b       6b
7:
        // ---- read the whole input into a growing anonymous mapping
        mov     x21, #(1 << 20)             // capacity
        mov     x0, #0
        mov     x1, x21
        mov     x2, #3                      // PROT_READ | PROT_WRITE
        mov     x3, #0x22                   // MAP_PRIVATE | MAP_ANONYMOUS
        mov     x4, #-1
        mov     x5, #0
        mov     x8, #SYS_mmap
        svc     #0
        cmn     x0, #4095
        b.hs    err_mmap
        mov     x22, x0                     // buffer
        mov     x23, #0                     // length
8:      cmp     x23, x21
        b.lo    9f
        mov     x0, x22                     // full: double it (mremap, MREMAP_MAYMOVE)
        mov     x1, x21
        lsl     x2, x21, #1
        mov     x3, #1
        mov     x8, #SYS_mremap
        svc     #0
        cmn     x0, #4095
        b.hs    err_mmap
        mov     x22, x0
        lsl     x21, x21, #1
9:      ldr     x0, [x19, #ST_FD]
        add     x1, x22, x23
        sub     x2, x21, x23
        mov     x8, #SYS_read
        svc     #0
        cmn     x0, #4                      // -EINTR: retry
        b.eq    9b
        tbnz    x0, #63, err_read
        cbz     x0, 10f
        add     x23, x23, x0
        b       8b
10:
        // ---- file header
        cmp     x23, #16
        b.lo    err_format
        ldr     w0, [x22]
        movz    w1, #(JOB_MAGIC & 0xffff)
        movk    w1, #(JOB_MAGIC >> 16), lsl #16
        cmp     w0, w1
        b.ne    err_format
        ldr     w0, [x22, #4]
        cmp     w0, #JOB_VERSION
        b.ne    err_format
        ldr     w0, [x22, #8]
        str     x0, [x19, #ST_JOBS]
        add     x0, x22, #16
        str     x0, [x19, #ST_P]
        add     x0, x22, x23
        str     x0, [x19, #ST_END]

// ==== one job per iteration; everything lives in st (x19 = &st), reloaded after the call
job_loop:
        adrp    x19, st
        add     x19, x19, :lo12:st
        ldr     x24, [x19, #ST_JOBS]
        cbz     x24, all_done
        ldr     x25, [x19, #ST_P]
        ldr     x26, [x19, #ST_END]
        add     x0, x25, #JOB_HDR
        cmp     x0, x26
        b.hi    err_format
        ldr     w27, [x25]                  // codeBytes
        ldr     w28, [x25, #4]              // nTensors
        cbz     w27, err_format
        tst     w27, #3
        b.ne    err_format
        cbz     w28, err_format
        cmp     w28, #JOB_MAXT
        b.hi    err_format
        str     x28, [x19, #ST_NT]
        ldr     w0, [x25, #8]
        str     x0, [x19, #ST_FLAGS]
        ldr     x0, [x25, #16]
        str     x0, [x19, #ST_REPS]
        add     x25, x25, #JOB_HDR

        // elements[]
        add     x0, x25, x28, lsl #3
        cmp     x0, x26
        b.hi    err_format
        add     x1, x19, #ST_ELEMS
        mov     x2, #0
11:     ldr     x3, [x25, x2, lsl #3]
        mov     x4, #MAX_ELEMS
        cmp     x3, x4
        b.hi    err_format
        str     x3, [x1, x2, lsl #3]
        add     x2, x2, #1
        cmp     x2, x28
        b.lo    11b
        mov     x25, x0

        // code: RW mapping, copy, then R+X and cache maintenance
        add     x20, x27, #7
        and     x20, x20, #~7               // padded size in the file
        add     x0, x25, x20
        cmp     x0, x26
        b.hi    err_format
        ldr     x21, [x19, #ST_PAGE]
        sub     x1, x21, #1
        add     x1, x27, x1
        neg     x2, x21
        and     x1, x1, x2                  // mapping length: codeBytes rounded up to pages
        str     x1, [x19, #ST_CODELEN]
        mov     x0, #0
        mov     x2, #3
        mov     x3, #0x22
        mov     x4, #-1
        mov     x5, #0
        mov     x8, #SYS_mmap
        svc     #0
        cmn     x0, #4095
        b.hs    err_mmap
        str     x0, [x19, #ST_CODE]
        mov     x1, x25
        mov     x2, x27
        bl      memcpy
        ldr     x0, [x19, #ST_CODE]
        ldr     x1, [x19, #ST_CODELEN]
        mov     x2, #5                      // PROT_READ | PROT_EXEC
        mov     x8, #SYS_mprotect
        svc     #0
        cbnz    x0, err_mmap
        ldr     x0, [x19, #ST_CODE]
        add     x1, x0, x27
        bl      sync_icache
        add     x25, x25, x20

        // tensors
        mov     x20, #0                     // i
12:     add     x0, x19, #ST_ELEMS
        ldr     x21, [x0, x20, lsl #3]
        lsl     x21, x21, #2                // bytes
        add     x22, x21, #7
        and     x22, x22, #~7               // padded size in the file
        add     x0, x25, x22
        cmp     x0, x26
        b.hi    err_format
        ldr     x3, [x19, #ST_PAGE]
        sub     x4, x3, #1
        add     x23, x21, x4
        neg     x4, x3
        and     x23, x23, x4                // data length rounded up to pages
        ldr     x5, [x19, #ST_FLAGS]
        tst     x5, #JOB_GUARD
        b.eq    13f
        add     x1, x23, x3                 // guard: one more page, PROT_NONE
        b       14f
13:     cmp     x23, x3
        csel    x1, x23, x3, hs             // at least one page
14:     add     x2, x19, #ST_MAPLENS
        str     x1, [x2, x20, lsl #3]
        mov     x0, #0
        mov     x2, #3
        mov     x3, #0x22
        mov     x4, #-1
        mov     x5, #0
        mov     x8, #SYS_mmap
        svc     #0
        cmn     x0, #4095
        b.hs    err_mmap
        add     x2, x19, #ST_MAPS
        str     x0, [x2, x20, lsl #3]
        mov     x27, x0                     // tensor pointer (normal mode: the mapping start)
        ldr     x5, [x19, #ST_FLAGS]
        tst     x5, #JOB_GUARD
        b.eq    15f
        add     x0, x0, x23                 // guard page right after the rounded data
        ldr     x1, [x19, #ST_PAGE]
        mov     x2, #0                      // PROT_NONE
        mov     x8, #SYS_mprotect
        svc     #0
        cbnz    x0, err_mmap
        add     x2, x19, #ST_MAPS
        ldr     x27, [x2, x20, lsl #3]
        add     x27, x27, x23
        sub     x27, x27, x21               // ends exactly at the guard page
15:     add     x2, x19, #ST_PTRS
        str     x27, [x2, x20, lsl #3]
        mov     x0, x27
        mov     x1, x25
        mov     x2, x21
        bl      memcpy
        add     x25, x25, x22
        add     x20, x20, #1
        cmp     x20, x28
        b.lo    12b
        str     x25, [x19, #ST_P]

        // arguments: x0..x(n-1) = tensors, x(n) = reps, the rest 0
        add     x0, x19, #ST_ARGS
        stp     xzr, xzr, [x0]
        stp     xzr, xzr, [x0, #16]
        stp     xzr, xzr, [x0, #32]
        stp     xzr, xzr, [x0, #48]
        add     x1, x19, #ST_PTRS
        mov     x2, #0
16:     ldr     x3, [x1, x2, lsl #3]
        str     x3, [x0, x2, lsl #3]
        add     x2, x2, #1
        cmp     x2, x28
        b.lo    16b
        ldr     x3, [x19, #ST_REPS]
        str     x3, [x0, x28, lsl #3]

        // ---- the call
        mov     x0, sp
        str     x0, [x19, #ST_SP]
        mov     x0, #1                      // CLOCK_MONOTONIC
        add     x1, x19, #ST_T0
        mov     x8, #SYS_clock_gettime
        svc     #0
        ldr     x17, [x19, #ST_CODE]
        add     x16, x19, #ST_ARGS
        ldp     x0, x1, [x16]
        ldp     x2, x3, [x16, #16]
        ldp     x4, x5, [x16, #32]
        ldp     x6, x7, [x16, #48]
        adr     x16, canary
        ldp     d8, d9, [x16, #88]
        ldp     d10, d11, [x16, #104]
        ldp     d12, d13, [x16, #120]
        ldp     d14, d15, [x16, #136]
        ldp     x19, x20, [x16]
        ldp     x21, x22, [x16, #16]
        ldp     x23, x24, [x16, #32]
        ldp     x25, x26, [x16, #48]
        ldp     x27, x28, [x16, #64]
        ldr     x29, [x16, #80]
        blr     x17
        adrp    x16, st
        add     x16, x16, :lo12:st
        add     x16, x16, #ST_AFTER
        stp     x19, x20, [x16]
        stp     x21, x22, [x16, #16]
        stp     x23, x24, [x16, #32]
        stp     x25, x26, [x16, #48]
        stp     x27, x28, [x16, #64]
        str     x29, [x16, #80]
        stp     d8, d9, [x16, #88]
        stp     d10, d11, [x16, #104]
        stp     d12, d13, [x16, #120]
        stp     d14, d15, [x16, #136]
        mov     x17, sp
        str     x17, [x16, #152]
        adrp    x19, st
        add     x19, x19, :lo12:st
        ldr     x0, [x19, #ST_SP]
        mov     sp, x0
        mov     x29, #0
        mov     x0, #1
        add     x1, x19, #ST_T1
        mov     x8, #SYS_clock_gettime
        svc     #0

        // ---- ABI check: bit i set when slot i differs from its canary (slot 19: sp)
        add     x0, x19, #ST_AFTER
        adr     x1, canary
        mov     x2, #0                      // slot
        mov     x3, #0                      // mask
        mov     x6, #1
17:     ldr     x4, [x0, x2, lsl #3]
        ldr     x5, [x1, x2, lsl #3]
        cmp     x2, #(SLOTS - 1)
        b.ne    18f
        ldr     x5, [x19, #ST_SP]
18:     cmp     x4, x5
        lsl     x7, x6, x2
        orr     x7, x3, x7
        csel    x3, x3, x7, eq
        add     x2, x2, #1
        cmp     x2, #SLOTS
        b.lo    17b
        mov     x21, x3                     // mask (clear_res clobbers x0-x6)

        // ---- result record
        add     x20, x19, #ST_RES
        mov     x0, x20
        bl      clear_res
        movz    w0, #(RES_MAGIC & 0xffff)
        movk    w0, #(RES_MAGIC >> 16), lsl #16
        str     w0, [x20]
        cmp     x21, #0
        mov     x0, #ST_ABI
        csel    x0, xzr, x0, eq
        str     w0, [x20, #RES_STATUS]
        str     x21, [x20, #RES_INFO0]
        ldp     x0, x1, [x19, #ST_T0]
        ldp     x2, x4, [x19, #ST_T1]
        sub     x2, x2, x0
        sub     x4, x4, x1
        movz    x5, #(1000000000 & 0xffff)
        movk    x5, #(1000000000 >> 16), lsl #16
        madd    x4, x2, x5, x4
        str     x4, [x20, #RES_NANOS]
        ldr     x0, [x19, #ST_ELEMS]
        str     x0, [x20, #RES_OUTN]
        mov     x0, #1
        mov     x1, x20
        mov     x2, #RES_BYTES
        bl      write_all
        ldr     x1, [x19, #ST_PTRS]
        ldr     x2, [x19, #ST_ELEMS]
        lsl     x2, x2, #2
        mov     x0, #1
        bl      write_all
        ldr     x2, [x19, #ST_ELEMS]
        tbz     x2, #0, 19f                 // odd count: pad to 8 bytes
        mov     x0, #1
        adr     x1, canary + 160            // 8 zero bytes
        mov     x2, #4
        bl      write_all
19:
        // ---- unmap and continue
        ldr     x0, [x19, #ST_CODE]
        ldr     x1, [x19, #ST_CODELEN]
        mov     x8, #SYS_munmap
        svc     #0
        ldr     x28, [x19, #ST_NT]
        mov     x20, #0
20:     add     x2, x19, #ST_MAPS
        ldr     x0, [x2, x20, lsl #3]
        add     x2, x19, #ST_MAPLENS
        ldr     x1, [x2, x20, lsl #3]
        mov     x8, #SYS_munmap
        svc     #0
        add     x20, x20, #1
        cmp     x20, x28
        b.lo    20b
        ldr     x0, [x19, #ST_JOBS]
        sub     x0, x0, #1
        str     x0, [x19, #ST_JOBS]
        b       job_loop

all_done:
        mov     x0, #0
        mov     x8, #SYS_exit_group
        svc     #0

// ==== fault handler (x0 = signal, x1 = siginfo, x2 = ucontext), on the alternate stack
on_signal:
        adrp    x19, st
        add     x19, x19, :lo12:st
        mov     x21, x0
        mov     x22, x1
        mov     x23, x2
        add     x20, x19, #ST_RES
        mov     x0, x20
        bl      clear_res
        movz    w0, #(RES_MAGIC & 0xffff)
        movk    w0, #(RES_MAGIC >> 16), lsl #16
        str     w0, [x20]
        mov     w0, #ST_SIGNAL
        str     w0, [x20, #RES_STATUS]
        str     x21, [x20, #RES_INFO0]
        ldr     x0, [x23, #440]             // uc_mcontext.pc (ucontext: 176 + 8 + 31*8 + 8)
        str     x0, [x20, #RES_INFO1]
        ldr     x0, [x22, #16]              // si_addr
        str     x0, [x20, #RES_INFO2]
        mov     x0, #1
        mov     x1, x20
        mov     x2, #RES_BYTES
        bl      write_all
        mov     x0, #EXIT_SIGNAL
        mov     x8, #SYS_exit_group
        svc     #0

// ==== clear_res(x0 = record): zero it, fill code base, tensor count and bases
clear_res:
        mov     x1, #0
21:     str     xzr, [x0, x1]
        add     x1, x1, #8
        cmp     x1, #RES_BYTES
        b.lo    21b
        ldr     x1, [x19, #ST_CODE]
        str     x1, [x0, #RES_CODE]
        ldr     x2, [x19, #ST_NT]
        str     x2, [x0, #RES_NT]
        add     x3, x19, #ST_PTRS
        add     x4, x0, #RES_TBASE
        mov     x5, #0
22:     cmp     x5, x2
        b.hs    23f
        ldr     x6, [x3, x5, lsl #3]
        str     x6, [x4, x5, lsl #3]
        add     x5, x5, #1
        b       22b
23:     ret

// ==== memcpy(x0 = dst, x1 = src, x2 = bytes): 64 bytes per iteration, then bytes
memcpy:
        cmp     x2, #64
        b.lo    25f
24:     ldp     q0, q1, [x1], #32
        ldp     q2, q3, [x1], #32
        stp     q0, q1, [x0], #32
        stp     q2, q3, [x0], #32
        sub     x2, x2, #64
        cmp     x2, #64
        b.hs    24b
25:     cbz     x2, 27f
26:     ldrb    w3, [x1], #1
        strb    w3, [x0], #1
        subs    x2, x2, #1
        b.ne    26b
27:     ret

// ==== write_all(x0 = fd, x1 = buf, x2 = bytes); exits EXIT_WRITE on error
write_all:
        mov     x9, x0
28:     cbz     x2, 29f
        mov     x0, x9
        mov     x8, #SYS_write
        svc     #0
        cmn     x0, #4                      // -EINTR
        b.eq    28b
        cmn     x0, #11                     // -EAGAIN
        b.eq    28b
        cmp     x0, #0
        b.le    err_write
        add     x1, x1, x0
        sub     x2, x2, x0
        b       28b
29:     ret

// ==== sync_icache(x0 = start, x1 = end): make freshly written code visible to fetch
sync_icache:
        mrs     x2, ctr_el0
        ubfx    x3, x2, #16, #4
        mov     x4, #4
        lsl     x3, x4, x3                  // d-cache line bytes
        and     x5, x2, #0xf
        lsl     x5, x4, x5                  // i-cache line bytes
        sub     x6, x3, #1
        bic     x6, x0, x6
30:     dc      cvau, x6
        add     x6, x6, x3
        cmp     x6, x1
        b.lo    30b
        dsb     ish
        sub     x6, x5, #1
        bic     x6, x0, x6
31:     ic      ivau, x6
        add     x6, x6, x5
        cmp     x6, x1
        b.lo    31b
        dsb     ish
        isb
        ret

// ==== errors: one line on stderr, then a distinct exit code
err_open:   adr x1, msg_open
            mov x2, #(msg_open_end - msg_open)
            mov x3, #EXIT_USAGE
            b   die
err_read:   adr x1, msg_read
            mov x2, #(msg_read_end - msg_read)
            mov x3, #EXIT_READ
            b   die
err_format: adr x1, msg_format
            mov x2, #(msg_format_end - msg_format)
            mov x3, #EXIT_FORMAT
            b   die
err_mmap:   adr x1, msg_mmap
            mov x2, #(msg_mmap_end - msg_mmap)
            mov x3, #EXIT_MMAP
            b   die
err_write:  mov x0, #EXIT_WRITE
            mov x8, #SYS_exit_group
            svc #0
die:        mov x0, #2
            mov x8, #SYS_write
            svc #0
            mov x0, x3
            mov x8, #SYS_exit_group
            svc #0

msg_open:   .ascii "harness: cannot open the job file\\n"
msg_open_end:
msg_read:   .ascii "harness: read error on the job file\\n"
msg_read_end:
msg_format: .ascii "harness: malformed job file\\n"
msg_format_end:
msg_mmap:   .ascii "harness: mmap/mprotect failed\\n"
msg_mmap_end:
fault_signals:
        .byte 4, 5, 7, 8, 11, 0             // SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV

        .p2align 3
// canaries for x19..x29 (slots 0..10) and d8..d15 (11..18); slot 19 (sp) compares with st.sp;
// the 8 zero bytes after it are the output padding
canary:
${CALLEE_SAVED.map((_, i) => `        .quad 0x${(0x5a17c0de00000000n + BigInt(i) * 0x1010101n).toString(16)}`).join('\n')}
        .quad 0

        .bss
        .p2align 4
st:     .zero ST_SIZE
sigstk: .zero 24
        .p2align 3
sigact: .zero 32
        .p2align 4
altstack:
        .zero ALTSTACK_BYTES
`;
