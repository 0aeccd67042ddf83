/**
 * What the cost-model features need from the generated program, two ways that give the same numbers:
 *
 *  - `programStats(program)` walks a LoopProgram from `lower()` (the definition);
 *  - `analyticStats(schedule, decision)` derives the same counts from the schedule and the tile
 *    decision without materializing the unrolled bodies (the fast path: lowering a schedule with
 *    tails at several levels instantiates every unrolled op of every tail combination and costs
 *    50-500 us; this costs a few us). `tileDecision(schedule, caps)` is lower.ts's decideTile.
 *
 * tests/agent/costmodel/program-stats.test.ts checks, on thousands of random schedules of every op,
 * that tileDecision equals lower(s).decision and analyticStats equals programStats(lower(s)): if
 * loopnest/lower.ts changes its tiling rule, that test says so.
 *
 * The mirrored structure (lower.ts's Builder): loops above `tileFrom` and the hoisted reduction loops
 * inside the tile are instantiated per range (full iterations as a LoopNode, or inline when there is
 * one, then the remainder); the register tile sits at `tileFrom`; the compute node at `unrollFrom`
 * holds one op per point of the unrolled loops (the vector variable's innermost loop a register at a
 * time), grouped by the point of the reduction variables. The parallel band (the schedule's `p`
 * loops where the target has threads) is a ParallelNode: its loops are chunks, not loop iterations,
 * and each time the program enters it is one band instance (`bands`).
 */
import { ACCUMULATES, isReduction, tensorStrides, type Problem } from '../../ir/problem.ts';
import { parallelBand, type Schedule } from '../../ir/schedule.ts';
import { decideTile } from '../../loopnest/lower.ts';
import { chunkCount, maskChunks, type ComputeNode, type LoopProgram, type ProgramNode, type TileDecision } from '../../loopnest/program.ts';

/** Band instances of one chunk count: `runs` times the program enters a parallel band of `chunks` chunks. */
export interface BandRuns {
  chunks: number;
  runs: number;
}


export interface TileStats {
  /** ops run (exec-weighted: each compute node times how often it runs). */
  totalOps: number;
  /** valid lanes summed over the ops run. */
  laneSum: number;
  /** ops run on partial (masked) vectors. */
  partialOps: number;
  /** accumulator loads + stores run. */
  accTraffic: number;
  /** loop iterations run (all LoopNodes). */
  loopIters: number;
  /** ops in all compute nodes of the program (code size). */
  staticOps: number;
  /** tile nodes in the program. */
  tiles: number;
  /** the compute node with the most work (first of equals, depth-first): its ops, and per group
   *  summed over its groups, its distinct vector and broadcast operands; its tile's accumulators. */
  mainOps: number;
  mainVec: number;
  mainBcast: number;
  mainAccumulators: number;
  /** the parallel band's instances by chunk count, fewest chunks first (empty: a serial program). */
  bands: BandRuns[];
}

/** Adds `runs` instances of a `chunks`-chunk band, keeping `bands` sorted by chunks. */
function addBand(bands: BandRuns[], chunks: number, runs: number): void {
  const at = bands.findIndex((b) => b.chunks >= chunks);
  if (at >= 0 && bands[at]!.chunks === chunks) bands[at]!.runs += runs;
  else bands.splice(at < 0 ? bands.length : at, 0, { chunks, runs });
}

// ---- from a LoopProgram --------------------------------------------------------------------------

/** The statistics of a lowered program, by walking it. */
export function programStats(program: LoopProgram): TileStats {
  const lanes = program.decision.lanes;
  const accumulate = ACCUMULATES[program.combine];
  const st: TileStats = {
    totalOps: 0, laneSum: 0, partialOps: 0, accTraffic: 0, loopIters: 0, staticOps: 0, tiles: 0,
    mainOps: 0, mainVec: 0, mainBcast: 0, mainAccumulators: 0, bands: [],
  };
  let mainWeight = -1;
  let main: ComputeNode | undefined;
  const walk = (nodes: readonly ProgramNode[], exec: number, accCounts: number[] | undefined): void => {
    for (const n of nodes) {
      if (n.kind === 'loop') {
        st.loopIters += exec * n.count;
        walk(n.body, exec * n.count, accCounts);
      } else if (n.kind === 'tile') {
        st.tiles++;
        st.accTraffic += exec * n.accumulators.length * (accumulate ? 2 : 1);
        walk(n.body, exec, n.accumulators.map((a) => a.count));
      } else if (n.kind === 'pack') {
        // the copy itself is not counted: the stats describe the compute it feeds
        walk(n.body, exec, accCounts);
      } else if (n.kind === 'parallel') {
        // every chunk runs once, on some thread: the stats count the whole band's work
        addBand(st.bands, chunkCount(n.dims), exec);
        n.bodies.forEach((body, mask) => body && walk(body, exec * maskChunks(n.dims, mask), accCounts));
      } else {
        let ops = 0, lanesUsed = 0, partial = 0;
        for (const g of n.groups) {
          ops += g.length;
          for (const op of g) {
            const c = accCounts ? accCounts[op.acc]! : lanes;
            lanesUsed += c;
            if (c < lanes) partial++;
          }
        }
        st.staticOps += ops;
        st.totalOps += exec * ops;
        st.laneSum += exec * lanesUsed;
        st.partialOps += exec * partial;
        if (exec * ops > mainWeight) {
          mainWeight = exec * ops;
          main = n;
          st.mainAccumulators = accCounts ? accCounts.length : 0;
        }
      }
    }
  };
  walk(program.body, 1, undefined);
  if (main) {
    for (const g of main.groups) {
      st.mainOps += g.length;
      const seen = new Set<string>();
      for (const op of g) {
        for (const x of op.inputs) {
          const k = `${x.mode}:${x.tensor}:${x.offset}`;
          if (seen.has(k)) continue;
          seen.add(k);
          if (x.mode === 'broadcast') st.mainBcast++;
          else st.mainVec++;
        }
      }
    }
  }
  return st;
}

// ---- from the schedule ---------------------------------------------------------------------------

/** The register tile the lowering will choose (lower.ts's decideTile, without building the program). */
export const tileDecision = decideTile;


/**
 * Positions along one variable in the unrolled region for `range` elements: its region loops
 * `chain` (outer to inner) from `level`; the vector variable's innermost loop counts registers.
 * `partial` instead counts the registers with fewer than `lanes` valid lanes.
 */
function positions(steps: readonly number[], chain: readonly number[], level: number, range: number, lanes: number, vector: boolean, partial: boolean): number {
  if (level >= chain.length) return partial ? 0 : 1;
  const step = steps[chain[level]!]!;
  if (step === 1) {
    if (partial) return vector && range % lanes !== 0 ? 1 : 0;
    return vector ? Math.ceil(range / lanes) : range;
  }
  const full = Math.floor(range / step);
  const rem = range - full * step;
  return full * positions(steps, chain, level + 1, step, lanes, vector, partial)
    + (rem > 0 ? positions(steps, chain, level + 1, rem, lanes, vector, partial) : 0);
}


/**
 * The statistics programStats(lower(schedule)) would give, without lowering (see the header).
 * `band`: the loops the lowering makes a ParallelNode (lower.ts loweredBand: the schedule's band
 * where the target has threads, none elsewhere); default the schedule's band.
 */
export function analyticStats(
  schedule: Schedule, d: TileDecision, strides: number[][] = tensorStrides(schedule.problem), band: readonly number[] = parallelBand(schedule.loops),
): TileStats {
  const p: Problem = schedule.problem;
  const loops = schedule.loops;
  const steps = schedule.steps;
  const n = loops.length;
  const nv = p.vars.length;
  const lanes = d.lanes;
  const accumulate = ACCUMULATES[p.combine];
  const reduction = p.vars.map((_, v) => isReduction(p, v));
  // each variable's loops inside the unrolled region, outer to inner
  const chains: number[][] = p.vars.map(() => []);
  for (let i = d.unrollFrom; i < n; i++) chains[loops[i]!.var]!.push(i);
  const vecVar = d.vectorVar;
  const nIn = p.inputs.length;
  // an input that moves along the vector variable is read as a vector (a strided one too: lower.ts)
  const vectorInput = Array.from({ length: nIn }, (_, i) => vecVar !== null && strides[i + 1]![vecVar] !== 0);
  const st: TileStats = {
    totalOps: 0, laneSum: 0, partialOps: 0, accTraffic: 0, loopIters: 0, staticOps: 0, tiles: 0,
    mainOps: 0, mainVec: 0, mainBcast: 0, mainAccumulators: 0, bands: [],
  };
  const inBand = new Set(band);
  let mainWeight = -1;
  let tileAccumulators = 0;
  const count = new Array<number>(nv).fill(1);

  const compute = (range: number[], exec: number): void => {
    let outPos = 1, groups = 1;
    for (let v = 0; v < nv; v++) {
      const c = chains[v]!.length ? positions(steps, chains[v]!, 0, range[v]!, lanes, v === vecVar && lanes > 1, false) : 1;
      count[v] = c;
      if (reduction[v]) groups *= c;
      else outPos *= c;
    }
    const ops = outPos * groups;
    // valid lanes: the vector variable's range per other output position; partial registers likewise
    let laneSum = ops;
    let partial = 0;
    if (vecVar !== null && lanes > 1) {
      const others = ops / count[vecVar]!;
      laneSum = others * range[vecVar]!;
      partial = others * (chains[vecVar]!.length ? positions(steps, chains[vecVar]!, 0, range[vecVar]!, lanes, true, true) : 0);
    }
    st.staticOps += ops;
    st.totalOps += exec * ops;
    st.laneSum += exec * laneSum;
    st.partialOps += exec * partial;
    if (exec * ops > mainWeight) {
      mainWeight = exec * ops;
      st.mainOps = ops;
      st.mainAccumulators = tileAccumulators;
      let vec = 0, bcast = 0;
      for (let i = 0; i < nIn; i++) {
        // distinct operands of input i in one group: its output-variable positions
        let distinct = 1;
        const sv = strides[i + 1]!;
        for (let v = 0; v < nv; v++) if (!reduction[v] && sv[v] !== 0) distinct *= count[v]!;
        if (vectorInput[i]) vec += distinct;
        else bcast += distinct;
      }
      st.mainVec = vec * groups;
      st.mainBcast = bcast * groups;
    }
  };

  const level = (dd: number, range: number[], exec: number, inTile: boolean): void => {
    if (!inTile && dd === d.tileFrom) {
      st.tiles++;
      let acc = 1;
      for (let v = 0; v < nv; v++) {
        if (!reduction[v] && chains[v]!.length) acc *= positions(steps, chains[v]!, 0, range[v]!, lanes, v === vecVar && lanes > 1, false);
      }
      tileAccumulators = acc;
      st.accTraffic += exec * acc * (accumulate ? 2 : 1);
      level(dd, range, exec, true);
      return;
    }
    if (inTile && dd === d.unrollFrom) {
      compute(range, exec);
      return;
    }
    if (band.length > 0 && dd === band[0]) {
      // entering the band: one instance; its chunks are the band loops' iterations, tails counted as one
      addBand(st.bands, band.reduce((a, i) => a * (Math.floor(range[loops[i]!.var]! / steps[i]!) + (range[loops[i]!.var]! % steps[i]! > 0 ? 1 : 0)), 1), exec);
    }
    const l = loops[dd]!;
    const step = steps[dd]!;
    const r = range[l.var]!;
    const full = Math.floor(r / step);
    const rem = r % step;
    if (full > 0) {
      const inner = range.slice();
      inner[l.var] = step;
      if (full === 1) level(dd + 1, inner, exec, inTile);
      else {
        // band loops are chunks of the ParallelNode, not LoopNode iterations
        if (!inBand.has(dd)) st.loopIters += exec * full;
        level(dd + 1, inner, exec * full, inTile);
      }
    }
    if (rem > 0) {
      const inner = range.slice();
      inner[l.var] = rem;
      level(dd + 1, inner, exec, inTile);
    }
  };
  level(0, p.vars.map((v) => v.extent), 1, false);
  return st;
}
