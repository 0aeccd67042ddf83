/**
 * Running an external tool (opt, llc, ld.lld, llvm-mc) with a time limit, every failure one line
 * (LoopTuneError): "llc-14 failed: exit 1: <first line of its stderr>", "llc-14 timed out after
 * 30 s", "llc-14 not found (install the Debian package llvm-14)".
 *
 * The limit is LOOPTUNE_TOOL_TIMEOUT seconds (default 30: the LLVM tools take 30-50 ms on a
 * kernel, so only a hung or absurdly slow tool reaches it), or the call's own `timeoutSeconds`.
 */
import { spawnSync } from 'node:child_process';
import { fail } from '../../ir/errors.ts';

export const TOOL_TIMEOUT_VARIABLE = 'LOOPTUNE_TOOL_TIMEOUT';
export const DEFAULT_TOOL_TIMEOUT_SECONDS = 30;

export interface ToolOptions {
  /** text written to the tool's stdin */
  input?: string;
  /** default: $LOOPTUNE_TOOL_TIMEOUT, else DEFAULT_TOOL_TIMEOUT_SECONDS */
  timeoutSeconds?: number;
  /** what to install when the tool is missing, e.g. 'install the Debian package llvm-14' */
  installHint?: string;
  /** exit statuses that are not failures (default [0]) */
  okStatuses?: readonly number[];
  /** largest stdout/stderr kept, bytes (default 256 MiB) */
  maxBuffer?: number;
}

export interface ToolOutput {
  stdout: string;
  stderr: string;
  status: number;
}

/** The limit: $LOOPTUNE_TOOL_TIMEOUT (positive seconds) or the default; a bad value is one line. */
export function toolTimeoutSeconds(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[TOOL_TIMEOUT_VARIABLE];
  if (raw === undefined || raw === '') return DEFAULT_TOOL_TIMEOUT_SECONDS;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) fail(`${TOOL_TIMEOUT_VARIABLE}: expected a positive number of seconds, got '${raw.slice(0, 40)}'`);
  return n;
}

/** Runs `exe args` to completion; returns its output, or throws one line saying why it failed. */
export function runTool(exe: string, args: readonly string[], options: ToolOptions = {}): ToolOutput {
  const timeoutSeconds = options.timeoutSeconds ?? toolTimeoutSeconds();
  const r = spawnSync(exe, args, {
    encoding: 'utf8',
    maxBuffer: options.maxBuffer ?? 256 << 20,
    timeout: timeoutSeconds * 1000,
    killSignal: 'SIGKILL',
    ...(options.input !== undefined ? { input: options.input } : {}),
  });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    if (code === 'ETIMEDOUT') fail(`${exe} timed out after ${timeoutSeconds} s (${TOOL_TIMEOUT_VARIABLE} sets the limit)`);
    if (code === 'ENOENT') fail(`${exe} not found${options.installHint ? ` (${options.installHint})` : ''}`);
    if (code === 'ENOBUFS') fail(`${exe} failed: its output passed ${options.maxBuffer ?? 256 << 20} bytes`);
    fail(`${exe} failed to start: ${firstLine(r.error.message)}`);
  }
  const stderr = r.stderr ?? '';
  if (r.status === null) fail(`${exe} failed: killed by ${r.signal ?? 'a signal'}${detail(stderr)}`);
  if (!(options.okStatuses ?? [0]).includes(r.status)) fail(`${exe} failed: exit ${r.status}${detail(stderr)}`);
  return { stdout: r.stdout ?? '', stderr, status: r.status };
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]!.trim();
}

/** ": <first line of stderr>", or nothing when it said nothing. */
function detail(stderr: string): string {
  const line = firstLine(stderr);
  return line ? `: ${line.length > 300 ? `${line.slice(0, 300)}…` : line}` : '';
}
