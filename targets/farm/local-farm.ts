/**
 * A farm on this machine, for tests and benchmarks: a redis-server on 127.0.0.1 (a free port, a temp
 * folder, no persistence, a random password) and `looptune worker` processes, started as a user
 * starts them (bin/looptune.js in the tree; looptune.mjs beside the bundle on a machine without npm).
 * Whoever starts them stops them (in a `finally`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The CLI's entry: in a bundle (.device/looptune/, inside a tree whose bin/ needs npm's tsx) the CLI
 *  bundle beside it, else the tree's shim. */
const BUNDLED_CLI = fileURLToPath(new URL('./looptune.mjs', import.meta.url));
const CLI_ENTRY = existsSync(BUNDLED_CLI) ? BUNDLED_CLI : fileURLToPath(new URL('../../bin/looptune.js', import.meta.url));

/** A port nothing listens on now (the kernel's pick, released again). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Waits until `child` prints a line matching `pattern` on stdout (rejects when it exits first). */
function waitForLine(child: ChildProcess, pattern: RegExp, what: string, seconds = 60): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => done(new Error(`${what} printed no ${pattern} within ${seconds} s: ${out.slice(-400)} ${err.slice(-400)}`)), seconds * 1000);
    const onOut = (chunk: Buffer): void => {
      out += chunk.toString();
      const m = out.split('\n').find((l) => pattern.test(l));
      if (m) done(undefined, m);
    };
    const onErr = (chunk: Buffer): void => void (err += chunk.toString());
    const onExit = (code: number | null, signal: string | null): void => done(new Error(`${what} exited (${code ?? signal}) before ${pattern}: ${out.slice(-400)} ${err.slice(-400)}`));
    function done(e: Error | undefined, line?: string): void {
      clearTimeout(timer);
      child.stdout?.off('data', onOut);
      child.stderr?.off('data', onErr);
      child.off('exit', onExit);
      if (e) reject(e);
      else resolve(line!);
    }
    child.stdout?.on('data', onOut);
    child.stderr?.on('data', onErr);
    child.on('exit', onExit);
  });
}

/** Sends `signal` and waits for the exit (SIGKILL after 10 s). */
async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

export class RedisServer {
  readonly port: number;
  readonly url: string;
  readonly #password = randomBytes(12).toString('hex');
  readonly #binary: string;
  readonly #dir: string;
  #child: ChildProcess | undefined;

  private constructor(port: number, binary: string) {
    this.port = port;
    this.#binary = binary;
    this.url = `redis://:${this.#password}@127.0.0.1:${port}`;
    this.#dir = mkdtempSync(path.join(os.tmpdir(), 'looptune-redis-'));
  }

  /** `binary`: the redis-server to run (default: the one on PATH, Debian's package redis-server). */
  static async start(binary = 'redis-server'): Promise<RedisServer> {
    const r = new RedisServer(await freePort(), binary);
    await r.#spawn();
    return r;
  }

  async #spawn(): Promise<void> {
    const child = spawn(this.#binary, [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', this.#dir, '--requirepass', this.#password, '--loglevel', 'warning',
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr!.resume();
    const spawnError = new Promise<never>((_, reject) => child.once('error', (e) => reject(new Error(`cannot start ${this.#binary}: ${e.message} (install Debian's redis-server)`))));
    spawnError.catch(() => {});
    this.#child = child;
    // at loglevel warning redis prints nothing when ready: poll the port instead
    await Promise.race([waitForPort(this.port, child), spawnError]);
  }

  /** Stops the server and starts a fresh one on the same port (nothing survives: no persistence). */
  async restart(downSeconds = 0.5): Promise<void> {
    if (this.#child) await stopChild(this.#child, 'SIGKILL');
    await new Promise((r) => setTimeout(r, downSeconds * 1000));
    await this.#spawn();
  }

  async stop(): Promise<void> {
    if (this.#child) await stopChild(this.#child);
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** Resolves once something accepts connections on `port`. */
async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(true); });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server did not listen on ${port}`);
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** the key the worker printed */
  readonly key: string;
  /** everything it printed on stdout so far */
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `looptune worker` (as a user runs it) and waits for its key line; `args` are more options
 *  (the lock lasts 2 s unless they say otherwise: a killed worker's job moves on within seconds). */
export async function startWorker(url: string, args: readonly string[] = []): Promise<WorkerProcess> {
  const lock = args.includes('--lock-seconds') ? [] : ['--lock-seconds', '2'];
  const child = spawn(process.execPath, [CLI_ENTRY, 'worker', '--redis', url, ...lock, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => void (out += c.toString()));
  child.stderr!.resume();
  try {
    const line = await waitForLine(child, /serving key: /, 'looptune worker');
    return {
      child, pid: child.pid!, key: line.slice(line.indexOf('serving key: ') + 'serving key: '.length).trim(),
      output: () => out,
      stop: (signal) => stopChild(child, signal),
    };
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  }
}
