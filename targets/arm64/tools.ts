/**
 * The external tools of the arm64 target and the Debian packages that provide them. Everything
 * that shells out looks its tool up here, so a missing tool gives one line naming the package.
 */
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export const ARM64_TOOLS = {
  'llvm-mc-14': 'llvm-14',
  'ld.lld-14': 'lld-14',
  'qemu-aarch64': 'qemu-user',
} as const;
export type Arm64Tool = keyof typeof ARM64_TOOLS;

const found = new Map<string, string | null>();

/** Absolute path of `tool` on PATH, or null. Cached per process. */
export function findTool(tool: string): string | null {
  const hit = found.get(tool);
  if (hit !== undefined) return hit;
  let path: string | null = null;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      path = candidate;
      break;
    } catch {
      // not here
    }
  }
  found.set(tool, path);
  return path;
}

/** One line naming the missing tools and their Debian packages, or null when all are there. */
export function missingToolsMessage(tools: readonly Arm64Tool[]): string | null {
  const missing = tools.filter((t) => findTool(t) === null);
  if (missing.length === 0) return null;
  const pkgs = [...new Set(missing.map((t) => ARM64_TOOLS[t]))];
  return `missing ${missing.map((t) => `${t} (Debian package ${ARM64_TOOLS[t]})`).join(', ')}: apt-get install ${pkgs.join(' ')}`;
}

/** Path of `tool`, or throw the one-line message. */
export function requireTool(tool: Arm64Tool): string {
  const path = findTool(tool);
  if (path === null) throw new Error(missingToolsMessage([tool])!);
  return path;
}

/** Whether the harness runs natively (an AArch64 Linux host) instead of under qemu-aarch64. */
export const NATIVE_ARM64 = process.arch === 'arm64' && process.platform === 'linux';
