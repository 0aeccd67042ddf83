/**
 * A simulator for the PTX subset that ptx.ts emits, so kernels can be checked without a GPU: it
 * parses the module text (the very text the driver would JIT) and runs every block of the grid,
 * the threads of a block one after the other between barriers. It is strict where hardware is
 * silent:
 *  - a global access outside its tensor, or not aligned to its width, is an error (with the
 *    instruction and the offending offset);
 *  - shared memory: out-of-range or misaligned accesses, and data races between barriers (a word
 *    written by one thread and read or written by another in the same barrier interval), are errors;
 *  - a barrier that not all threads of a block reach is an error.
 * Floating point follows fp32 (Math.fround per operation; fma rounds a*b+c once from double;
 * ex2.approx is 2^x rounded, where hardware may differ by its 2 ulps).
 *
 * Tensor-core instructions (mma-ptx.ts) are warp-collective: a thread reaching `ldmatrix` or
 * `mma.sync` waits until all 32 lanes of its warp are at the same instruction, then the warp
 * executes it together (lanes at different instructions, or a lane that exited, are an error).
 * `mma.sync` follows the PTX ISA's fragment layouts (m16n8k16 bf16/f16, m16n8k8 tf32, which reads
 * the top 19 bits of each fp32 register): the 16 (or 8) products and the accumulator are summed in
 * float64 and rounded to fp32 once, a model of the hardware's fused adder (which truncates
 * instead; the typed tolerance allows for either). `cp.async` copies land when a `wait_group`
 * of the issuing thread retires their group, not before: a kernel that reads a buffer before
 * waiting reads stale data (NaN in fresh shared memory) and fails its check.
 * Warpgroup instructions (wgmma-ptx.ts, sm_90a) run once all 128 threads of a warpgroup reach
 * them: `wgmma.mma_async` m64nNk16 (bf16/f16 into f32) reads A and B from shared memory through
 * matrix descriptors (built whole by `mov.b64 d, {lo, hi}`, decoded per the PTX ISA with the
 * 128-byte swizzle; other modes, base offsets and reserved bits are errors) and computes when a
 * `wgmma.wait_group` retires its `commit_group`; meanwhile its accumulators read NaN and a shared
 * write into what it reads is an error. It needs a `wgmma.fence` since the last wait, and every
 * word it reads must have been made visible to the async proxy by its writer's `fence.proxy.async`.
 * Global tensors are Float32Array (fp32) or Uint16Array (bf16/f16 bit patterns).
 * It is an oracle for tests and a development aid, far slower than a GPU: keep problems small.
 */

import { bf16FromBits, f16FromBits } from '../../ir/dtype.ts';

export class SimError extends Error {
  override name = 'SimError';
}

export interface SimLaunch {
  entry?: string;
  grid: [number, number, number];
  block: [number, number, number];
  /** bytes of dynamic shared memory (`.extern .shared`) */
  dynamicSharedBytes?: number;
}

/** What the simulator accepts as a tensor: fp32 values or 16-bit patterns (bf16, f16). */
export type SimTensor = Float32Array | Uint16Array;

export interface SimStats {
  instructions: number;
  blocks: number;
  barriers: number;
}

type Fn = (R: Float64Array, th: ThreadCtx) => void;

interface Ins {
  text: string;
  guard: number;
  neg: boolean;
  kind: 'op' | 'bra' | 'bar' | 'ret' | 'warp' | 'group';
  fn?: Fn;
  /** warp-collective: runs once for the 32 lanes' register files, lane order */
  warpFn?: (lanes: Float64Array[]) => void;
  /** warpgroup-collective (wgmma): runs once for the 128 threads' register files; `base` is the first thread's index */
  groupFn?: (lanes: Float64Array[], base: number) => void;
  target?: number;
  label?: string;
}

interface ThreadCtx {
  tid: [number, number, number];
  ctaid: [number, number, number];
  linear: number;
}

const TENSOR_SPAN = 2 ** 32;

interface Module {
  entry: string;
  params: string[];
  regs: Map<string, number>;
  sharedBytes: number;
  sharedName: string | null;
  prog: Ins[];
}

function parseModule(text: string): Module {
  const lines = text.split('\n').map((l) => l.replace(/\/\/.*$/, '').trim()).filter((l) => l.length > 0);
  let entry = '';
  const params: string[] = [];
  let sharedBytes = 0;
  let sharedName: string | null = null;
  const body: string[] = [];
  let inBody = false;
  for (const l of lines) {
    if (!inBody) {
      const ext = /^\.extern\s+\.shared\s+\.align\s+\d+\s+\.b8\s+([\w$]+)\[\];$/.exec(l);
      if (ext) {
        sharedName = ext[1]!;
        sharedBytes = -1; // dynamic: the launch says how much
      }
      const e = /\.entry\s+([\w$]+)\s*\(/.exec(l);
      if (e) entry = e[1]!;
      for (const pm of l.matchAll(/\.param\s+\.u64\s+([\w$]+)/g)) params.push(pm[1]!);
      if (l === '{') inBody = true;
      continue;
    }
    if (l === '}') break;
    const sh = /^\.shared\s+\.align\s+\d+\s+\.b8\s+([\w$]+)\[(\d+)\];$/.exec(l);
    if (sh) {
      sharedName = sh[1]!;
      sharedBytes = Number(sh[2]);
      continue;
    }
    if (l.startsWith('.reg')) continue;
    body.push(l);
  }
  if (!entry) throw new SimError('no .entry in the module');
  const regs = new Map<string, number>();
  const slot = (name: string): number => {
    let s = regs.get(name);
    if (s === undefined) {
      s = regs.size;
      regs.set(name, s);
    }
    return s;
  };
  const labels = new Map<string, number>();
  const raw: { text: string; label?: string }[] = [];
  for (const l of body) {
    const lab = /^([\w$]+):$/.exec(l);
    if (lab) {
      labels.set(lab[1]!, raw.length);
      continue;
    }
    if (!l.endsWith(';')) throw new SimError(`cannot read line '${l}'`);
    raw.push({ text: l.slice(0, -1).trim() });
  }
  const prog = raw.map(({ text }) => compile(text, slot, params, sharedName));
  for (const ins of prog) {
    if (ins.kind === 'bra') {
      const t = labels.get(ins.label!);
      if (t === undefined) throw new SimError(`unknown label ${ins.label}`);
      ins.target = t;
    }
  }
  return { entry, params, regs, sharedBytes, sharedName, prog };
}

function splitOperands(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '{' || ch === '[') depth++;
    if (ch === '}' || ch === ']') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  if (cur.trim()) out.push(cur.trim());
  return out;
}

function f32FromHex(h: string): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, parseInt(h.slice(2), 16));
  return dv.getFloat32(0);
}

// Memory access goes through these, set per run.
let globalMem: SimTensor[] = [];
let globalBytes: Uint8Array[] = [];
let sharedMem: Float32Array = new Float32Array(0);
let sharedWords: Uint32Array = new Uint32Array(0);
let sharedBytesView: Uint8Array = new Uint8Array(0);
/** per thread: committed cp.async groups (oldest first) and the open one; a copy is [shared byte, source bytes] */
type PendingCopy = [number, Uint8Array];
let asyncGroups: PendingCopy[][][] = [];
let asyncOpen: PendingCopy[][] = [];
let sharedMeta: Int32Array = new Int32Array(0);
let epoch = 0;
let currentThread = 0;
let paramValues: number[] = [];

/** `bytes` bytes of global memory at addr (16-byte cp.async sources), bounds- and alignment-checked. */
function globalSlice(addr: number, bytes: number, text: string): Uint8Array {
  const t = Math.floor(addr / TENSOR_SPAN) - 1;
  const off = addr - (t + 1) * TENSOR_SPAN;
  const buf = globalBytes[t];
  if (!buf) throw new SimError(`global access at a non-tensor address 0x${addr.toString(16)} (${text})`);
  if (off % bytes !== 0) throw new SimError(`misaligned ${bytes}-byte global access at byte ${off} of tensor ${t} (${text})`);
  if (off < 0 || off + bytes > buf.length) throw new SimError(`out-of-bounds global access: tensor ${t} byte ${off} (+${bytes}) of ${buf.length} (${text})`);
  return buf.slice(off, off + bytes);
}

function globalIndex(addr: number, width: number, text: string): [Float32Array, number] {
  const t = Math.floor(addr / TENSOR_SPAN) - 1;
  const off = addr - (t + 1) * TENSOR_SPAN;
  const buf = globalMem[t];
  if (!buf) throw new SimError(`global access at a non-tensor address 0x${addr.toString(16)} (${text})`);
  if (!(buf instanceof Float32Array)) throw new SimError(`fp32 access to tensor ${t}, which holds 16-bit elements (${text})`);
  if (off % (4 * width) !== 0) throw new SimError(`misaligned ${width * 4}-byte global access at byte ${off} of tensor ${t} (${text})`);
  if (off < 0 || off / 4 + width > buf.length) {
    throw new SimError(`out-of-bounds global access: tensor ${t} element ${off / 4} (+${width}) of ${buf.length} (${text})`);
  }
  return [buf, off / 4];
}

function sharedIndex(addr: number, width: number, text: string): number {
  if (addr % (4 * width) !== 0) throw new SimError(`misaligned ${width * 4}-byte shared access at ${addr} (${text})`);
  if (addr < 0 || addr / 4 + width > sharedMem.length) throw new SimError(`out-of-bounds shared access at byte ${addr} of ${sharedMem.length * 4} (${text})`);
  return addr / 4;
}

// sharedMeta per word: [writeEpoch, writer, readEpoch, reader(-2 = several)]
function noteShared(word: number, write: boolean, text: string): void {
  const m = sharedMeta;
  const k = word * 4;
  const me = currentThread;
  if (write) {
    if (m[k] === epoch && m[k + 1] !== me) throw new SimError(`shared-memory race: word ${word} written by threads ${m[k + 1]} and ${me} between barriers (${text})`);
    if (m[k + 2] === epoch && m[k + 3] !== me) throw new SimError(`shared-memory race: word ${word} read by thread ${m[k + 3] === -2 ? 'several' : m[k + 3]} then written by ${me} between barriers (${text})`);
    m[k] = epoch;
    m[k + 1] = me;
    if (trackProxy) {
      checkNoInflightRead(word, 1, text);
      asyncVisible[word] = 0;
      lastWriter[word] = me;
      unfenced[me]!.push(word);
    }
  } else {
    if (m[k] === epoch && m[k + 1] !== me) throw new SimError(`shared-memory race: word ${word} written by thread ${m[k + 1]} and read by ${me} between barriers (${text})`);
    if (m[k + 2] === epoch) {
      if (m[k + 3] !== me) m[k + 3] = -2;
    } else {
      m[k + 2] = epoch;
      m[k + 3] = me;
    }
  }
}

/** Applies the copies of one retired cp.async group: bytes land in shared memory, written by `thread`. */
function landCopies(group: PendingCopy[], text: string): void {
  for (const [at, bytes] of group) {
    const word = sharedIndex(at, bytes.length / 4, text);
    for (let k = 0; k < bytes.length / 4; k++) noteShared(word + k, true, text);
    sharedBytesView.set(bytes, at);
  }
}

/** The 16-bit element pairs of a b32 register as numbers (low half first). */
function unpack16(bits: number, type: string): [number, number] {
  const dec = type === 'bf16' ? bf16FromBits : f16FromBits;
  return [dec(bits & 0xffff), dec((bits >>> 16) & 0xffff)];
}

/** A tf32 operand: the fp32 bits with the low 13 mantissa bits ignored, as the tensor core reads them. */
function tf32Value(bits: number): number {
  tfU32[0] = (bits & 0xffffe000) >>> 0;
  return tfF32[0]!;
}
const tfF32 = new Float32Array(1);
const tfU32 = new Uint32Array(tfF32.buffer);

/**
 * Warp-collective instructions: ldmatrix (m8n8 .x1/.x2/.x4, optionally .trans, b16) and mma.sync
 * (m16n8k16 bf16/f16 and m16n8k8 tf32, f32 accumulators), per the PTX ISA's fragment layouts
 * (g = lane / 4, t = lane % 4).
 */
function compileWarp(text: string, op: string, args: string[], reg: (a: string) => number, address: (a: string) => { reg: number; imm: number }): (lanes: Float64Array[]) => void {
  const regsOf = (a: string): number[] => {
    if (!a.startsWith('{')) throw new SimError(`expected a register list in '${text}'`);
    return a.slice(1, -1).split(',').map((x) => reg(x.trim()));
  };
  if (op.startsWith('ldmatrix.sync.aligned.m8n8.')) {
    const trans = op.includes('.trans');
    if (!op.endsWith('.shared.b16')) throw new SimError(`unsupported ldmatrix '${text}'`);
    const dst = regsOf(args[0]!);
    const count = op.includes('.x4') ? 4 : op.includes('.x2') ? 2 : 1;
    if (dst.length !== count) throw new SimError(`ldmatrix needs ${count} destination registers in '${text}'`);
    const { reg: ar, imm } = address(args[1]!);
    return (lanes) => {
      for (let q = 0; q < count; q++) {
        // matrix q: its 8 rows at the addresses of lanes 8q .. 8q+7, 16 bytes (8 b16) each
        const m: number[][] = [];
        for (let i = 0; i < 8; i++) {
          const at = lanes[8 * q + i]![ar]! + imm;
          if (at % 16 !== 0) throw new SimError(`ldmatrix row address ${at} is not 16-byte aligned (${text})`);
          const word = sharedIndex(at, 4, text);
          const row: number[] = [];
          for (let k = 0; k < 4; k++) {
            currentThread = 8 * q + i + lanesBase;
            noteShared(word + k, false, text);
            const w = sharedWords[word + k]!;
            row.push(w & 0xffff, w >>> 16);
          }
          m.push(row);
        }
        for (let l = 0; l < 32; l++) {
          const g = l >> 2, t = l & 3;
          const [lo, hi] = trans ? [m[2 * t]![g]!, m[2 * t + 1]![g]!] : [m[g]![2 * t]!, m[g]![2 * t + 1]!];
          lanes[l]![dst[q]!] = (lo | (hi << 16)) >>> 0;
        }
      }
    };
  }
  const mm = /^mma\.sync\.aligned\.(m16n8k16|m16n8k8)\.row\.col\.f32\.(bf16|f16|tf32)\.(bf16|f16|tf32)\.f32$/.exec(op);
  if (!mm || mm[2] !== mm[3] || (mm[1] === 'm16n8k8') !== (mm[2] === 'tf32')) throw new SimError(`unsupported mma '${text}'`);
  const type = mm[2]!;
  const K = mm[1] === 'm16n8k16' ? 16 : 8;
  const [d, a, b, c] = args.map(regsOf) as [number[], number[], number[], number[]];
  if (d.length !== 4 || c.length !== 4 || a.length !== 4 || b.length !== (K === 16 ? 2 : 2)) throw new SimError(`mma operand counts in '${text}'`);
  return (lanes) => {
    const A = Array.from({ length: 16 }, () => new Float64Array(K));
    const B = Array.from({ length: K }, () => new Float64Array(8));
    const C = Array.from({ length: 16 }, () => new Float64Array(8));
    for (let l = 0; l < 32; l++) {
      const R = lanes[l]!;
      const g = l >> 2, t = l & 3;
      if (K === 16) {
        // A: a0a1 (g, 2t..), a2a3 (g+8, 2t..), a4a5 (g, 2t+8..), a6a7 (g+8, 2t+8..); B: b0b1 (k 2t.., n g), b2b3 (k 2t+8..)
        const pa = a.map((r) => unpack16(R[r]!, type));
        [[g, 0], [g + 8, 0], [g, 8], [g + 8, 8]].forEach(([row, k0], i) => { A[row!]![k0! + 2 * t] = pa[i]![0]; A[row!]![k0! + 2 * t + 1] = pa[i]![1]; });
        const pb = b.map((r) => unpack16(R[r]!, type));
        [0, 8].forEach((k0, i) => { B[k0 + 2 * t]![g] = pb[i]![0]; B[k0 + 2 * t + 1]![g] = pb[i]![1]; });
      } else {
        // tf32: a0 (g, t), a1 (g+8, t), a2 (g, t+4), a3 (g+8, t+4); b0 (k t, n g), b1 (k t+4, n g)
        [[g, t], [g + 8, t], [g, t + 4], [g + 8, t + 4]].forEach(([row, k], i) => { A[row!]![k!] = tf32Value(R[a[i]!]!); });
        B[t]![g] = tf32Value(R[b[0]!]!);
        B[t + 4]![g] = tf32Value(R[b[1]!]!);
      }
      [[g, 2 * t], [g, 2 * t + 1], [g + 8, 2 * t], [g + 8, 2 * t + 1]].forEach(([row, col], i) => { C[row!]![col!] = R[c[i]!]!; });
    }
    for (let l = 0; l < 32; l++) {
      const g = l >> 2, t = l & 3;
      [[g, 2 * t], [g, 2 * t + 1], [g + 8, 2 * t], [g + 8, 2 * t + 1]].forEach(([row, col], i) => {
        let sum = C[row!]![col!]!;
        for (let k = 0; k < K; k++) sum += A[row!]![k]! * B[k]![col!]!;
        lanes[l]![d[i]!] = Math.fround(sum);
      });
    }
  };
}

/** linear index of lane 0 of the warp being executed (for the race checker's thread ids) */
let lanesBase = 0;

// ---- the async proxy (wgmma) -------------------------------------------------------------------
// wgmma reads shared memory through the async proxy: a generic write (st.shared, a landed cp.async)
// is visible to it only after its writing thread runs fence.proxy.async. Tracked per word while a
// module has warpgroup instructions.
let trackProxy = false;
/** per shared word: 1 when the async proxy sees its last write */
let asyncVisible: Uint8Array = new Uint8Array(0);
let lastWriter: Int32Array = new Int32Array(0);
/** per thread: the words it wrote since its last fence.proxy.async */
let unfenced: number[][] = [];

function fenceProxyAsync(thread: number): void {
  for (const w of unfenced[thread]!) if (lastWriter[w] === thread) asyncVisible[w] = 1;
  unfenced[thread] = [];
}

/** A decoded wgmma matrix descriptor (PTX ISA 9.7.15.5.1.2.2); the simulator models the 128-byte swizzle. */
interface MatrixDescriptor {
  start: number;
  leadingBytes: number;
  strideBytes: number;
}

function decodeDescriptor(lo: number, hi: number, text: string): MatrixDescriptor {
  const mode = hi >>> 30;
  if (mode !== 1) throw new SimError(`wgmma descriptor with swizzle mode ${mode}: the simulator models the 128-byte swizzle (mode 1) only (${text})`);
  const baseOffset = (hi >>> 17) & 7;
  if (baseOffset !== 0) throw new SimError(`wgmma descriptor with base offset ${baseOffset}: the simulator models patterns on 1024-byte boundaries only (${text})`);
  if ((lo & 0xc000c000) !== 0 || (hi & 0x3ff1c000) !== 0) throw new SimError(`wgmma descriptor 0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')} sets reserved bits (${text})`);
  const start = (lo & 0x3fff) << 4;
  if (((start >> 7) & 7) !== 0) throw new SimError(`wgmma descriptor start ${start} is not in the first row of a 1024-byte swizzle pattern, and its base offset is 0 (${text})`);
  return { start, leadingBytes: ((lo >>> 16) & 0x3fff) << 4, strideBytes: (hi & 0x3fff) << 4 };
}

/**
 * The rows x 16 operand (A: m x k, B: n x k) a descriptor points at, [row * 16 + k], per the PTX ISA's
 * canonical 128-byte-swizzle layouts, in bytes for 16-bit elements:
 *  K-major  ((8,m),(8,2)):((128 B, SBO),(2 B, 16 B))    row r: (r % 8) * 128 + (r / 8) * SBO, k: 2k
 *  MN-major ((8,8,m),(8,k)):((2 B, 16 B, LBO),(128 B, SBO))   r: (r % 64) * 2 + (r / 64) * LBO, k: (k % 8) * 128 + (k / 8) * SBO
 * then Swizzle<3,4,3> on the address: bits 4-6 ^= bits 7-9. Reads go through the race checker as
 * the warpgroup's first thread, and must be visible to the async proxy.
 */
function operandBytes(d: MatrixDescriptor, mnMajor: boolean, rows: number, text: string): Int32Array {
  const out = new Int32Array(rows * 16);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < 16; k++) {
      const off = mnMajor
        ? (r % 64) * 2 + Math.floor(r / 64) * d.leadingBytes + (k % 8) * 128 + Math.floor(k / 8) * d.strideBytes
        : (r % 8) * 128 + Math.floor(r / 8) * d.strideBytes + k * 2;
      const at = d.start + off;
      const phys = at ^ (((at >> 7) & 7) << 4);
      if (phys + 2 > sharedBytesView.length) throw new SimError(`wgmma reads shared byte ${phys}, outside the ${sharedBytesView.length} bytes of shared memory (${text})`);
      out[r * 16 + k] = phys;
    }
  }
  return out;
}

function readOperand(bytes: Int32Array, type: string, text: string): Float64Array {
  const dec = type === 'bf16' ? bf16FromBits : f16FromBits;
  const out = new Float64Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const phys = bytes[i]!, word = phys >> 2;
    noteShared(word, false, text);
    if (!asyncVisible[word]) throw new SimError(`wgmma reads shared byte ${phys}, written by thread ${lastWriter[word]} with no fence.proxy.async after it (${text})`);
    out[i] = dec(sharedBytesView[phys]! | (sharedBytesView[phys + 1]! << 8));
  }
  return out;
}

/** per shared word: how many issued, not yet retired wgmma operations read it (a write meanwhile is a hazard) */
let inflightReads: Int32Array = new Int32Array(0);

function countReads(bytes: Int32Array, by: number): void {
  for (let i = 0; i < bytes.length; i++) inflightReads[bytes[i]! >> 2] += by;
}

/** A shared write (a st.shared, or a cp.async at its issue) into words an in-flight wgmma still reads is an error. */
function checkNoInflightRead(word: number, words: number, text: string): void {
  for (let k = 0; k < words; k++) {
    if (inflightReads[word + k]! > 0) throw new SimError(`shared word ${word + k} is written while a wgmma.mma_async still reads it (no wgmma.wait_group retired it) (${text})`);
  }
}

interface WgmmaOp {
  text: string;
  type: string;
  n: number;
  /** accumulator registers, in fragment order d0 .. d(n/2 - 1) */
  d: number[];
  /** the shared bytes of A (64 x 16) and B (n x 16), [row * 16 + k] */
  aBytes: Int32Array;
  bBytes: Int32Array;
  scaleD: boolean;
  scaleA: number;
  scaleB: number;
}

/**
 * One warpgroup's wgmma state. An issued mma_async computes when a wait_group retires its group:
 * it reads shared memory then (a buffer overwritten before the wait feeds wrong data), and until
 * then its accumulator registers read NaN (a thread that touches them early computes garbage).
 * `pending` holds, per accumulator register, the values the chain of in-flight ops leaves there.
 */
interface WarpgroupState {
  fenced: boolean;
  open: WgmmaOp[];
  groups: WgmmaOp[][];
  pending: Map<number, { values: Float64Array; inflight: number }>;
}
let warpgroupStates: WarpgroupState[] = [];

function warpgroupOf(base: number): WarpgroupState {
  const i = base / 128;
  let st = warpgroupStates[i];
  if (!st) {
    st = { fenced: false, open: [], groups: [], pending: new Map() };
    warpgroupStates[i] = st;
  }
  return st;
}

/** Computes a retired op: D = A·B (+ D), f32 accumulators summed in float64 and rounded once (like mma.sync's model). */
function retireWgmma(st: WarpgroupState, op: WgmmaOp, lanes: Float64Array[], base: number): void {
  currentThread = base;
  countReads(op.aBytes, -1);
  countReads(op.bBytes, -1);
  const A = readOperand(op.aBytes, op.type, op.text);
  const B = readOperand(op.bBytes, op.type, op.text);
  const sab = op.scaleA * op.scaleB;
  for (let l = 0; l < 128; l++) {
    const w = l >> 5, g = (l & 31) >> 2, t = l & 3;
    for (let v = 0; v < op.n / 2; v++) {
      const row = 16 * w + g + 8 * ((v >> 1) & 1), col = 8 * (v >> 2) + 2 * t + (v & 1);
      const entry = st.pending.get(op.d[v]!)!;
      let sum = op.scaleD ? entry.values[l]! : 0;
      for (let k = 0; k < 16; k++) sum += sab * A[row * 16 + k]! * B[col * 16 + k]!;
      entry.values[l] = Math.fround(sum);
    }
  }
  for (const r of op.d) {
    const entry = st.pending.get(r)!;
    if (--entry.inflight === 0) {
      for (let l = 0; l < 128; l++) lanes[l]![r] = entry.values[l]!;
      st.pending.delete(r);
    }
  }
}

/**
 * Warpgroup-collective instructions: wgmma.fence / commit_group / wait_group, and
 * wgmma.mma_async m64nNk16 f32 += bf16/f16 with A and B from shared memory (descriptors), per the
 * PTX ISA (9.7.15): the accumulator layout is D[16w + g + 8h][8q + 2t + e] in d[4q + 2h + e] of
 * thread 32w + 4g + t; A is K-major unless imm-trans-a, B K-major unless imm-trans-b (then N-major).
 * A mma_async needs a wgmma.fence since the warpgroup's last wait_group (the registers it reads
 * were written by other instructions), and its descriptors must agree across the 128 threads.
 */
function compileWarpgroup(text: string, op: string, args: string[], reg: (a: string) => number, slot: (r: string) => number): (lanes: Float64Array[], base: number) => void {
  if (op === 'wgmma.fence.sync.aligned') return (_, base) => { warpgroupOf(base).fenced = true; };
  if (op === 'wgmma.commit_group.sync.aligned') {
    return (_, base) => {
      const st = warpgroupOf(base);
      st.groups.push(st.open);
      st.open = [];
    };
  }
  if (op === 'wgmma.wait_group.sync.aligned') {
    const n = Number(args[0]);
    if (!Number.isInteger(n) || n < 0) throw new SimError(`wgmma.wait_group takes an integer count in '${text}'`);
    return (lanes, base) => {
      const st = warpgroupOf(base);
      while (st.groups.length > n) for (const o of st.groups.shift()!) retireWgmma(st, o, lanes, base);
      st.fenced = false;
    };
  }
  const mm = /^wgmma\.mma_async\.sync\.aligned\.m64n(\d+)k16\.f32\.(bf16|f16)\.(bf16|f16)$/.exec(op);
  if (!mm || mm[2] !== mm[3]) throw new SimError(`unsupported warpgroup instruction '${text}'`);
  const n = Number(mm[1]);
  if (n < 8 || n > 256 || n % 8 !== 0) throw new SimError(`wgmma n must be a multiple of 8 up to 256 in '${text}'`);
  if (args.length !== 8) throw new SimError(`wgmma.mma_async takes d, a-desc, b-desc, scale-d, imm-scale-a, imm-scale-b, imm-trans-a, imm-trans-b in '${text}'`);
  if (!args[0]!.startsWith('{')) throw new SimError(`expected the accumulator register list in '${text}'`);
  const d = args[0]!.slice(1, -1).split(',').map((x) => reg(x.trim()));
  if (d.length !== n / 2) throw new SimError(`m64n${n}k16 takes ${n / 2} f32 accumulators, got ${d.length} in '${text}'`);
  const desc = (a: string) => ({ whole: reg(a), lo: slot(`${a}.lo`), hi: slot(`${a}.hi`), name: a });
  const da = desc(args[1]!), db = desc(args[2]!);
  const scaleReg = /^%/.test(args[3]!) ? reg(args[3]!) : -1;
  const scaleImm = args[3] === '1';
  const imm = (a: string, allowed: readonly string[]) => {
    if (!allowed.includes(a)) throw new SimError(`expected one of ${allowed.join(', ')}, got '${a}' in '${text}'`);
    return Number(a);
  };
  const scaleA = imm(args[4]!, ['1', '-1']), scaleB = imm(args[5]!, ['1', '-1']);
  const transA = imm(args[6]!, ['0', '1']) === 1, transB = imm(args[7]!, ['0', '1']) === 1;
  /** the descriptor a register holds; it must come whole from `mov.b64 d, {lo, hi}` and agree across the warpgroup */
  const read = (lanes: Float64Array[], r: typeof da): MatrixDescriptor => {
    const lo = lanes[0]![r.lo]!, hi = lanes[0]![r.hi]!;
    for (const R of lanes) {
      if (R[r.whole] !== R[r.lo]! + R[r.hi]! * 2 ** 32) throw new SimError(`descriptor ${r.name} was not built by mov.b64 ${r.name}, {lo, hi} (${text})`);
      if (R[r.lo] !== lo || R[r.hi] !== hi) throw new SimError(`descriptor ${r.name} differs between the threads of a warpgroup (${text})`);
    }
    return decodeDescriptor(lo, hi, text);
  };
  return (lanes, base) => {
    const st = warpgroupOf(base);
    if (!st.fenced) throw new SimError(`${text}: no wgmma.fence since the warpgroup's last wgmma.wait_group (or the kernel's start)`);
    const scaleD = scaleReg < 0 ? scaleImm : lanes[0]![scaleReg] !== 0;
    if (scaleReg >= 0 && lanes.some((R) => (R[scaleReg] !== 0) !== scaleD)) throw new SimError(`scale-d differs between the threads of a warpgroup (${text})`);
    const o: WgmmaOp = {
      text, type: mm[2]!, n, d, scaleD, scaleA, scaleB,
      aBytes: operandBytes(read(lanes, da), transA, 64, text), bBytes: operandBytes(read(lanes, db), transB, n, text),
    };
    countReads(o.aBytes, 1);
    countReads(o.bBytes, 1);
    for (const r of d) {
      let entry = st.pending.get(r);
      if (!entry) {
        entry = { values: Float64Array.from(lanes, (R) => R[r]!), inflight: 0 };
        st.pending.set(r, entry);
      }
      entry.inflight++;
      for (const R of lanes) R[r] = NaN;
    }
    st.open.push(o);
  };
}

function compile(text: string, slot: (r: string) => number, params: string[], sharedName: string | null): Ins {
  let guard = -1;
  let neg = false;
  let rest = text;
  const g = /^@(!?)(%\w+)\s+(.*)$/.exec(text);
  if (g) {
    neg = g[1] === '!';
    guard = slot(g[2]!);
    rest = g[3]!;
  }
  const sp = rest.indexOf(' ');
  const op = sp < 0 ? rest : rest.slice(0, sp);
  const args = sp < 0 ? [] : splitOperands(rest.slice(sp + 1));
  const base = { text, guard, neg };
  if (op === 'ret') return { ...base, kind: 'ret' };
  if (op === 'bar.sync') return { ...base, kind: 'bar' };
  if (op === 'bra') return { ...base, kind: 'bra', label: args[0]! };

  const reg = (a: string): number => {
    if (!/^%[a-z]+\d+$/.test(a)) throw new SimError(`expected a register, got '${a}' in '${text}'`);
    return slot(a);
  };
  /** integer operand: register or immediate */
  const ival = (a: string): ((R: Float64Array) => number) => {
    if (/^-?\d+$/.test(a)) {
      const v = Number(a);
      return () => v;
    }
    const s = reg(a);
    return (R) => R[s]!;
  };
  const fval = (a: string): ((R: Float64Array) => number) => {
    if (/^0f[0-9A-Fa-f]{8}$/.test(a)) {
      const v = f32FromHex(a);
      return () => v;
    }
    const s = reg(a);
    return (R) => R[s]!;
  };
  const address = (a: string): { reg: number; imm: number } => {
    const m = /^\[(%\w+)(?:\+(-?\d+))?\]$/.exec(a);
    if (!m) throw new SimError(`cannot read address '${a}' in '${text}'`);
    return { reg: slot(m[1]!), imm: m[2] ? Number(m[2]) : 0 };
  };
  const vec = (a: string): number[] => (a.startsWith('{') ? a.slice(1, -1).split(',').map((x) => reg(x.trim())) : [reg(a)]);
  const u32 = (x: number) => x >>> 0;
  const s32 = (x: number) => x | 0;
  const parts = op.split('.');
  const name = parts[0]!;
  const type = parts[parts.length - 1]!;
  const mk = (fn: Fn): Ins => ({ ...base, kind: 'op', fn });

  if (name === 'ldmatrix' || name === 'mma') return { ...base, kind: 'warp', warpFn: compileWarp(text, op, args, reg, address) };
  if (name === 'wgmma') return { ...base, kind: 'group', groupFn: compileWarpgroup(text, op, args, reg, slot) };
  if (op === 'fence.proxy.async' || op === 'fence.proxy.async.shared::cta') return mk(() => fenceProxyAsync(currentThread));
  if (name === 'cp') {
    if (op === 'cp.async.commit_group') {
      return mk(() => {
        asyncGroups[currentThread]!.push(asyncOpen[currentThread]!);
        asyncOpen[currentThread] = [];
      });
    }
    const w = /^cp\.async\.wait_group$/.test(op) ? Number(args[0]) : NaN;
    if (!Number.isNaN(w)) {
      return mk(() => {
        const groups = asyncGroups[currentThread]!;
        while (groups.length > w) landCopies(groups.shift()!, text);
      });
    }
    if (op === 'cp.async.cg.shared.global' || op === 'cp.async.ca.shared.global') {
      const bytes = Number(args[2]);
      if (![4, 8, 16].includes(bytes) || (op.includes('.cg') && bytes !== 16)) throw new SimError(`unsupported copy size in '${text}'`);
      const dst = address(args[0]!), src = address(args[1]!);
      return mk((R) => {
        const at = R[dst.reg]! + dst.imm;
        sharedIndex(at, bytes / 4, text);
        if (at % bytes !== 0) throw new SimError(`misaligned ${bytes}-byte cp.async to shared byte ${at} (${text})`);
        if (trackProxy) checkNoInflightRead(at / 4, bytes / 4, text);
        asyncOpen[currentThread]!.push([at, globalSlice(R[src.reg]! + src.imm, bytes, text)]);
      });
    }
    throw new SimError(`unsupported instruction '${text}'`);
  }
  if (op === 'cvt.rna.tf32.f32') {
    // rounds fp32 to 10 mantissa bits, to nearest, ties away from zero; a b32 register holds bits, an f32 one a value
    const d = reg(args[0]!);
    const a = reg(args[1]!);
    const fromValue = args[1]!.startsWith('%f');
    return mk((R) => {
      if (fromValue) { tfF32[0] = R[a]!; } else { tfU32[0] = R[a]!; }
      const bits = tfU32[0]!;
      R[d] = (bits & 0x7f800000) === 0x7f800000 ? bits : (((bits + 0x1000) & 0xffffe000) >>> 0);
    });
  }

  switch (name) {
    case 'mov': {
      const d = reg(args[0]!);
      const a = args[1]!;
      if (op === 'mov.b64' && a.startsWith('{')) {
        // {lo, hi} -> b64: the halves kept whole beside the (inexact above 2^53) value, for wgmma descriptors
        const [lo, hi] = vec(a);
        if (hi === undefined || vec(a).length !== 2) throw new SimError(`mov.b64 packs two b32 registers in '${text}'`);
        const dlo = slot(`${args[0]!}.lo`), dhi = slot(`${args[0]!}.hi`);
        return mk((R) => {
          R[dlo] = R[lo!]!;
          R[dhi] = R[hi]!;
          R[d] = R[lo!]! + R[hi]! * 2 ** 32;
        });
      }
      const sm = /^%(tid|ctaid|ntid|nctaid)\.([xyz])$/.exec(a);
      if (sm) {
        const k = 'xyz'.indexOf(sm[2]!);
        if (sm[1] === 'tid') return mk((R, th) => { R[d] = th.tid[k]!; });
        if (sm[1] === 'ctaid') return mk((R, th) => { R[d] = th.ctaid[k]!; });
        throw new SimError(`unsupported special register ${a}`);
      }
      if (sharedName !== null && a === sharedName) return mk((R) => { R[d] = 0; });
      if (type === 'f32') {
        const v = fval(a);
        return mk((R) => { R[d] = v(R); });
      }
      const v = ival(a);
      return mk((R) => { R[d] = v(R); });
    }
    case 'ld':
    case 'st': {
      const space = parts[1]!;
      if (space === 'param') {
        const d = reg(args[0]!);
        const pm = /^\[([\w$]+)\]$/.exec(args[1]!);
        const k = pm ? params.indexOf(pm[1]!) : -1;
        if (k < 0) throw new SimError(`unknown parameter in '${text}'`);
        return mk((R) => { R[d] = paramValues[k]!; });
      }
      const width = parts.includes('v4') ? 4 : parts.includes('v2') ? 2 : 1;
      if (op === 'ld.shared.b32') {
        const dst = reg(args[0]!);
        const { reg: ar, imm } = address(args[1]!);
        return mk((R) => {
          const i = sharedIndex(R[ar]! + imm, 1, text);
          noteShared(i, false, text);
          R[dst] = sharedWords[i]!;
        });
      }
      if (type !== 'f32') throw new SimError(`unsupported access type in '${text}'`);
      if (name === 'ld') {
        const dst = vec(args[0]!);
        const { reg: ar, imm } = address(args[1]!);
        if (dst.length !== width) throw new SimError(`vector width mismatch in '${text}'`);
        if (space === 'global') {
          return mk((R) => {
            const [buf, i] = globalIndex(R[ar]! + imm, width, text);
            for (let k = 0; k < width; k++) R[dst[k]!] = buf[i + k]!;
          });
        }
        if (space === 'shared') {
          return mk((R) => {
            const i = sharedIndex(R[ar]! + imm, width, text);
            for (let k = 0; k < width; k++) {
              noteShared(i + k, false, text);
              R[dst[k]!] = sharedMem[i + k]!;
            }
          });
        }
      } else {
        const { reg: ar, imm } = address(args[0]!);
        const src = vec(args[1]!);
        if (src.length !== width) throw new SimError(`vector width mismatch in '${text}'`);
        if (space === 'global') {
          return mk((R) => {
            const [buf, i] = globalIndex(R[ar]! + imm, width, text);
            for (let k = 0; k < width; k++) buf[i + k] = R[src[k]!]!;
          });
        }
        if (space === 'shared') {
          return mk((R) => {
            const i = sharedIndex(R[ar]! + imm, width, text);
            for (let k = 0; k < width; k++) {
              noteShared(i + k, true, text);
              sharedMem[i + k] = R[src[k]!]!;
            }
          });
        }
      }
      throw new SimError(`unsupported state space in '${text}'`);
    }
    case 'red': {
      // a grid reduction's share (loopnest/gpu.ts rule 10): blocks run one after another here, so the add is plain
      const width = op === 'red.global.add.f32' ? 1 : op === 'red.global.add.v2.f32' ? 2 : op === 'red.global.add.v4.f32' ? 4 : 0;
      if (width === 0) throw new SimError(`unsupported reduction '${text}'`);
      const { reg: ar, imm } = address(args[0]!);
      const src = vec(args[1]!);
      if (src.length !== width) throw new SimError(`vector width mismatch in '${text}'`);
      return mk((R) => {
        const [buf, i] = globalIndex(R[ar]! + imm, width, text);
        for (let k = 0; k < width; k++) buf[i + k] = buf[i + k]! + R[src[k]!]!;
      });
    }
    case 'cvta': {
      const d = reg(args[0]!);
      const a = reg(args[1]!);
      return mk((R) => { R[d] = R[a]!; });
    }
    case 'cvt': {
      const d = reg(args[0]!);
      const a = reg(args[1]!);
      if (op === 'cvt.u64.u32') return mk((R) => { R[d] = u32(R[a]!); });
      if (op === 'cvt.u32.u64') return mk((R) => { R[d] = ((R[a]! % TENSOR_SPAN) + TENSOR_SPAN) % TENSOR_SPAN; });
      throw new SimError(`unsupported conversion '${text}'`);
    }
    case 'add':
    case 'sub':
    case 'mul':
    case 'mad':
    case 'div':
    case 'rem':
    case 'min':
    case 'max':
    case 'shr':
    case 'shl':
    case 'xor':
    case 'and':
    case 'fma': {
      const d = reg(args[0]!);
      if (type === 'f32') {
        const a = fval(args[1]!);
        const b2 = fval(args[2]!);
        const f = Math.fround;
        switch (name) {
          case 'add': return mk((R) => { R[d] = f(a(R) + b2(R)); });
          case 'sub': return mk((R) => { R[d] = f(a(R) - b2(R)); });
          case 'mul': return mk((R) => { R[d] = f(a(R) * b2(R)); });
          case 'max': return mk((R) => {
            const x = a(R), y = b2(R);
            R[d] = Number.isNaN(x) ? y : Number.isNaN(y) ? x : Math.max(x, y);
          });
          case 'min': return mk((R) => { R[d] = Math.min(a(R), b2(R)); });
          case 'div': {
            if (parts[1] !== 'rn') throw new SimError(`unsupported division '${text}' (div.rn.f32 only)`);
            return mk((R) => { R[d] = f(a(R) / b2(R)); });
          }
          case 'fma': {
            const c = fval(args[3]!);
            return mk((R) => { R[d] = f(a(R) * b2(R) + c(R)); });
          }
        }
        throw new SimError(`unsupported float op '${text}'`);
      }
      if (type === 'pred') {
        const a = reg(args[1]!);
        const b2 = reg(args[2]!);
        if (name === 'and') return mk((R) => { R[d] = R[a]! !== 0 && R[b2]! !== 0 ? 1 : 0; });
        throw new SimError(`unsupported predicate op '${text}'`);
      }
      const a = ival(args[1]!);
      const b2 = ival(args[2]!);
      if (type === 's64' || type === 'u64' || type === 'b64') {
        if (name === 'add') return mk((R) => { R[d] = a(R) + b2(R); });
        if (name === 'sub') return mk((R) => { R[d] = a(R) - b2(R); });
        if (name === 'min' && type === 'u64') return mk((R) => { R[d] = Math.min(a(R), b2(R)); });
        throw new SimError(`unsupported 64-bit op '${text}'`);
      }
      const signed = type === 's32';
      const norm = signed ? s32 : u32;
      switch (name) {
        case 'add': return mk((R) => { R[d] = u32(norm(a(R)) + norm(b2(R))); });
        case 'sub': return mk((R) => { R[d] = u32(norm(a(R)) - norm(b2(R))); });
        case 'mul':
          if (parts[1] === 'wide') return mk((R) => { R[d] = u32(a(R)) * u32(b2(R)); });
          if (parts[1] !== 'lo') throw new SimError(`unsupported multiply '${text}'`);
          return mk((R) => { R[d] = u32(Math.imul(a(R), b2(R))); });
        case 'mad': {
          const c = ival(args[3]!);
          return mk((R) => { R[d] = u32(Math.imul(a(R), b2(R)) + norm(c(R))); });
        }
        case 'div': return mk((R) => {
          const y = norm(b2(R));
          if (y === 0) throw new SimError(`division by zero in '${text}'`);
          R[d] = u32(Math.trunc(norm(a(R)) / y));
        });
        case 'rem': return mk((R) => {
          const y = norm(b2(R));
          if (y === 0) throw new SimError(`division by zero in '${text}'`);
          R[d] = u32(norm(a(R)) % y);
        });
        case 'min': return mk((R) => { R[d] = u32(Math.min(norm(a(R)), norm(b2(R)))); });
        case 'max': return mk((R) => { R[d] = u32(Math.max(norm(a(R)), norm(b2(R)))); });
        case 'shr': return mk((R) => { R[d] = signed ? u32(s32(a(R)) >> b2(R)) : u32(a(R)) >>> b2(R); });
        case 'shl': return mk((R) => { R[d] = u32(a(R) << b2(R)); });
        case 'xor': return mk((R) => { R[d] = u32(a(R) ^ b2(R)); });
        case 'and': return mk((R) => { R[d] = u32(a(R) & b2(R)); });
      }
      throw new SimError(`unsupported integer op '${text}'`);
    }
    case 'ex2':
    case 'rcp': {
      // ex2.approx.ftz: 2^x (hardware is within 2 ulps of it; the oracle's tolerance allows that), subnormals flushed
      if (op !== 'ex2.approx.ftz.f32' && op !== 'rcp.rn.f32') throw new SimError(`unsupported instruction '${text}'`);
      const d = reg(args[0]!);
      const a = fval(args[1]!);
      const flush = (x: number) => (Math.abs(x) < 2 ** -126 ? 0 : x);
      if (name === 'rcp') return mk((R) => { R[d] = Math.fround(1 / a(R)); });
      return mk((R) => { R[d] = flush(Math.fround(2 ** flush(a(R)))); });
    }
    case 'setp': {
      const cmp = parts[1]!;
      const t = parts[2]!;
      const d = reg(args[0]!);
      const a = ival(args[1]!);
      const b2 = ival(args[2]!);
      const norm = t === 's32' ? s32 : t === 'u32' ? u32 : null;
      if (!norm) throw new SimError(`unsupported comparison type '${text}'`);
      const f: Record<string, (x: number, y: number) => boolean> = {
        lt: (x, y) => x < y, le: (x, y) => x <= y, gt: (x, y) => x > y, ge: (x, y) => x >= y, eq: (x, y) => x === y, ne: (x, y) => x !== y,
      };
      const c = f[cmp];
      if (!c) throw new SimError(`unsupported comparison '${text}'`);
      return mk((R) => { R[d] = c(norm(a(R)), norm(b2(R))) ? 1 : 0; });
    }
  }
  throw new SimError(`unsupported instruction '${text}'`);
}

/**
 * Runs every warp-collective instruction whose 32 lanes all wait at it, then every warpgroup
 * instruction whose 128 threads all wait at it; true if any ran. Lanes of a warp split between a
 * collective and anything else (a barrier, another instruction, exit) can never meet: an error; a
 * warpgroup instruction that not all its threads reach is one once nothing else can run.
 */
function collectives(prog: Ins[], regs: Float64Array[], pcs: Int32Array, state: Int8Array, nThreads: number): boolean {
  let ran = false;
  for (let lo = 0; lo < nThreads; lo += 32) {
    const hi = Math.min(nThreads, lo + 32);
    let waiting = 0, pc = -1;
    for (let t = lo; t < hi; t++) {
      if (state[t] !== 3) continue;
      if (pc >= 0 && pcs[t] !== pc) throw new SimError(`lanes of warp ${lo / 32} wait at different warp-collective instructions (${prog[pc]!.text} and ${prog[pcs[t]!]!.text})`);
      pc = pcs[t]!;
      waiting++;
    }
    if (waiting === 0 || prog[pc]!.kind === 'group') continue;
    const ins = prog[pc]!;
    if (hi - lo !== 32) throw new SimError(`${ins.text}: a warp-collective instruction needs 32 lanes, the block's last warp has ${hi - lo}`);
    if (waiting !== 32) throw new SimError(`${ins.text}: only ${waiting} of warp ${lo / 32}'s 32 lanes reach it (the others wait at a barrier or exited)`);
    lanesBase = lo;
    ins.warpFn!(regs.slice(lo, hi));
    for (let t = lo; t < hi; t++) {
      state[t] = 0;
      pcs[t] = pc + 1;
    }
    ran = true;
  }
  let stuck: string | null = null;
  for (let lo = 0; lo < nThreads; lo += 128) {
    const hi = Math.min(nThreads, lo + 128);
    let waiting = 0, pc = -1;
    for (let t = lo; t < hi; t++) {
      if (state[t] !== 3 || prog[pcs[t]!]!.kind !== 'group') continue;
      if (pc >= 0 && pcs[t] !== pc) throw new SimError(`threads of warpgroup ${lo / 128} wait at different warpgroup instructions (${prog[pc]!.text} and ${prog[pcs[t]!]!.text})`);
      pc = pcs[t]!;
      waiting++;
    }
    if (waiting === 0) continue;
    const ins = prog[pc]!;
    if (hi - lo !== 128) throw new SimError(`${ins.text}: a warpgroup instruction needs 128 threads, the block's last warpgroup has ${hi - lo}`);
    if (waiting !== 128) {
      stuck ??= `${ins.text}: only ${waiting} of warpgroup ${lo / 128}'s 128 threads reach it (the others wait elsewhere or exited)`;
      continue;
    }
    ins.groupFn!(regs.slice(lo, hi), lo);
    for (let t = lo; t < hi; t++) {
      state[t] = 0;
      pcs[t] = pc + 1;
    }
    ran = true;
  }
  if (!ran && stuck) throw new SimError(stuck);
  return ran;
}

const moduleCache = new Map<string, Module>();

/**
 * Runs the kernel over the whole grid. `tensors` are the kernel's pointer parameters in order
 * (output first); they are updated in place.
 */
export function simulate(ptx: string, launch: SimLaunch, tensors: SimTensor[], opts: { maxInstructions?: number } = {}): SimStats {
  let mod = moduleCache.get(ptx);
  if (!mod) {
    mod = parseModule(ptx);
    if (moduleCache.size > 64) moduleCache.clear();
    moduleCache.set(ptx, mod);
  }
  if (launch.entry && launch.entry !== mod.entry) throw new SimError(`entry ${launch.entry} is not in the module (it has ${mod.entry})`);
  if (tensors.length !== mod.params.length) throw new SimError(`the kernel takes ${mod.params.length} pointers, got ${tensors.length}`);
  globalMem = tensors;
  globalBytes = tensors.map((t) => new Uint8Array(t.buffer, t.byteOffset, t.byteLength));
  const sharedSize = mod.sharedBytes >= 0 ? mod.sharedBytes : launch.dynamicSharedBytes ?? 0;
  if (mod.sharedBytes < 0 && sharedSize % 4 !== 0) throw new SimError(`dynamic shared memory of ${sharedSize} bytes is not a multiple of 4`);
  paramValues = tensors.map((_, t) => (t + 1) * TENSOR_SPAN);
  const [gx, gy, gz] = launch.grid;
  const [bx, by, bz] = launch.block;
  const nThreads = bx * by * bz;
  const maxIns = opts.maxInstructions ?? 2e8;
  const stats: SimStats = { instructions: 0, blocks: 0, barriers: 0 };
  const nRegs = mod.regs.size;
  const prog = mod.prog;
  trackProxy = prog.some((ins) => ins.kind === 'group');
  const regs = Array.from({ length: nThreads }, () => new Float64Array(nRegs));
  const threads: ThreadCtx[] = [];
  for (let z = 0; z < bz; z++) for (let y = 0; y < by; y++) for (let x = 0; x < bx; x++) {
    threads.push({ tid: [x, y, z], ctaid: [0, 0, 0], linear: x + bx * (y + by * z) });
  }
  const pcs = new Int32Array(nThreads);
  const state = new Int8Array(nThreads); // 0 running, 1 at barrier, 2 exited
  for (let cz = 0; cz < gz; cz++) for (let cy = 0; cy < gy; cy++) for (let cx = 0; cx < gx; cx++) {
    stats.blocks++;
    const sharedBuffer = new ArrayBuffer(sharedSize);
    sharedMem = new Float32Array(sharedBuffer);
    sharedWords = new Uint32Array(sharedBuffer);
    sharedBytesView = new Uint8Array(sharedBuffer);
    sharedMem.fill(NaN);
    sharedMeta = new Int32Array((sharedSize / 4) * 4).fill(-1);
    asyncGroups = Array.from({ length: nThreads }, () => []);
    asyncOpen = Array.from({ length: nThreads }, () => []);
    if (trackProxy) {
      asyncVisible = new Uint8Array(sharedSize / 4).fill(1);
      lastWriter = new Int32Array(sharedSize / 4).fill(-1);
      unfenced = Array.from({ length: nThreads }, () => []);
      inflightReads = new Int32Array(sharedSize / 4);
    }
    warpgroupStates = [];
    epoch = 0;
    pcs.fill(0);
    state.fill(0);
    for (const th of threads) th.ctaid = [cx, cy, cz];
    for (const R of regs) R.fill(0);
    let barrierPc = -1;
    for (;;) {
      for (let t = 0; t < nThreads; t++) {
        if (state[t] !== 0) continue;
        currentThread = t;
        const R = regs[t]!;
        const th = threads[t]!;
        let pc = pcs[t]!;
        let n = 0;
        for (;;) {
          const ins = prog[pc];
          if (ins === undefined) throw new SimError('fell off the end of the kernel');
          n++;
          if (ins.guard >= 0 && (R[ins.guard] !== 0) === ins.neg) {
            pc++;
            continue;
          }
          if (ins.kind === 'op') {
            ins.fn!(R, th);
            pc++;
          } else if (ins.kind === 'bra') {
            pc = ins.target!;
            if (n > maxIns) throw new SimError('instruction limit exceeded (a loop that does not end?)');
          } else if (ins.kind === 'warp' || ins.kind === 'group') {
            pcs[t] = pc;
            state[t] = 3;
            break;
          } else if (ins.kind === 'bar') {
            pcs[t] = pc + 1;
            state[t] = 1;
            if (barrierPc < 0) barrierPc = pc;
            else if (barrierPc !== pc) throw new SimError(`threads of a block wait at different barriers (instructions ${barrierPc} and ${pc})`);
            break;
          } else {
            state[t] = 2;
            break;
          }
        }
        stats.instructions += n;
        if (stats.instructions > maxIns) throw new SimError(`instruction limit ${maxIns} exceeded`);
      }
      if (collectives(prog, regs, pcs, state, nThreads)) continue;
      let atBar = 0;
      let exited = 0;
      for (let t = 0; t < nThreads; t++) {
        if (state[t] === 1) atBar++;
        else if (state[t] === 2) exited++;
      }
      if (exited === nThreads) {
        if (warpgroupStates.some((st) => st && (st.open.length > 0 || st.groups.length > 0))) {
          throw new SimError('the block ended with wgmma.mma_async operations that no wgmma.wait_group retired');
        }
        break;
      }
      if (atBar + exited === nThreads) {
        if (exited > 0) throw new SimError(`${exited} threads exited while ${atBar} wait at a barrier`);
        for (let t = 0; t < nThreads; t++) state[t] = 0;
        epoch++;
        stats.barriers++;
        barrierPc = -1;
      }
    }
  }
  return stats;
}
