/**
 * When the cuda sketches split k over blocks (loopnest/gpu.ts rule 10): a grid whose output tiles
 * alone leave the GPU short of SPLIT_K_TARGET_BLOCKS gets split-k twins, fp32 templates
 * (sketches.ts) and wgmma tiles (mma-tiles.ts) alike.
 */
import type { Schedule } from '../../ir/schedule.ts';

/**
 * Blocks a seed should launch at least: two per multiprocessor on an H100/H200 (132 of them), so
 * that a grid fills the GPU once even where each multiprocessor runs only two blocks.
 */
export const SPLIT_K_TARGET_BLOCKS = 264;

/** Blocks of a schedule's grid: the product of its block loops' iterations. */
export function blockCount(s: Schedule): number {
  return s.loops.reduce((a, l) => (l.bind === 'block' ? a * (l.size + (l.tail > 0 ? 1 : 0)) : a), 1);
}


/**
 * The split a grid of `blocks` output tiles takes, from the splits that are valid for it
 * (ascending): none when the tiles alone reach SPLIT_K_TARGET_BLOCKS, else the fewest splits that
 * reach it, or the most there are.
 */
export function splitKChoice(blocks: number, valid: readonly number[]): number | undefined {
  if (blocks >= SPLIT_K_TARGET_BLOCKS || valid.length === 0) return undefined;
  return valid.find((g) => blocks * g >= SPLIT_K_TARGET_BLOCKS) ?? valid[valid.length - 1];
}
