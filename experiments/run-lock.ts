/**
 * One `train` per run folder: `<run>/.looptune-lock` holds the owner's pid, host name and start
 * time. It is created with O_EXCL ('wx'), so of two processes starting together exactly one gets
 * it. A lock whose pid no longer runs on this host is stale (its owner was killed with -9 or the
 * machine rebooted) and is taken over with a warning; a lock from another host cannot be checked
 * and is refused. The lock is released when training ends, on process exit and on SIGINT/SIGTERM/
 * SIGHUP (the signal then takes its usual course).
 */
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fail } from '../ir/errors.ts';
import { fsReason } from '../ir/fs-errors.ts';

export const RUN_LOCK = '.looptune-lock';

export interface LockOwner {
  pid: number;
  hostname: string;
  /** ISO time the lock was taken. */
  started: string;
  /** tells two locks of one pid apart. */
  token: string;
}

export interface RunLock {
  readonly file: string;
  readonly owner: LockOwner;
  /** removes the lock file if it is still this lock's (idempotent). */
  release(): void;
}

/** A lock file younger than this with unreadable content is being written, not abandoned. */
const UNREADABLE_GRACE_MS = 10_000;

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return null;
    throw e;
  }
}

function parseOwner(text: string): LockOwner | null {
  try {
    const o = JSON.parse(text) as Partial<LockOwner>;
    return typeof o.pid === 'number' && typeof o.hostname === 'string' ? { pid: o.pid, hostname: o.hostname, started: String(o.started ?? '?'), token: String(o.token ?? '') } : null;
  } catch {
    return null;
  }
}

/** Whether a process with this pid runs on this host (EPERM: it does, as another user). */
export function pidAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

function tryCreate(file: string, owner: LockOwner): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx');
  } catch (e) {
    if ((e as { code?: string }).code === 'EEXIST') return false;
    fail(`cannot lock run folder ${path.dirname(file)}: ${fsReason(e)}`);
  }
  try {
    writeSync(fd, JSON.stringify(owner) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Moves the stale lock (whose text we read as `seen`) out of the way. Renaming is atomic: if a
 * competitor replaced the lock between our read and the rename, we moved ITS lock, so it is put
 * back (link fails if yet another one appeared). True when we removed the stale lock.
 */
function takeOver(file: string, seen: string): boolean {
  const aside = `${file}.stale-${process.pid}`;
  try {
    renameSync(file, aside);
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return false; // its owner released it meanwhile
    throw e;
  }
  const moved = readText(aside);
  if (moved !== seen) {
    try {
      linkSync(aside, file);
    } catch {
      // a third process holds the lock now; ours is gone either way
    }
    rmSync(aside, { force: true });
    return false;
  }
  rmSync(aside, { force: true });
  return true;
}

/** Takes the run folder's lock or fails with one line naming its live owner. */
export function lockRunFolder(dir: string, log: (line: string) => void): RunLock {
  const file = path.join(dir, RUN_LOCK);
  const owner: LockOwner = { pid: process.pid, hostname: os.hostname(), started: new Date().toISOString(), token: randomBytes(8).toString('hex') };
  for (let attempt = 0; attempt < 5; attempt++) {
    if (tryCreate(file, owner)) return holdLock(file, owner);
    const text = readText(file);
    if (text === null) continue; // released between our open and our read
    const held = parseOwner(text);
    if (!held) {
      const age = Date.now() - statSync(file).mtimeMs;
      if (age < UNREADABLE_GRACE_MS) fail(`run folder ${dir} is being locked by another train; try again in a few seconds`);
      if (takeOver(file, text)) log(`warning: ${dir}: removed an unreadable lock file ${RUN_LOCK} (${Math.round(age / 1000)} s old)`);
      continue;
    }
    if (held.hostname !== owner.hostname) {
      fail(`run folder ${dir} is locked by pid ${held.pid} on host ${held.hostname} (since ${held.started}); if no train runs there, remove ${file}`);
    }
    if (pidAlive(held.pid)) {
      fail(`run folder ${dir} is in use by another train (pid ${held.pid}, since ${held.started}); wait for it to finish or stop it`);
    }
    if (takeOver(file, text)) log(`warning: ${dir}: taking over the stale lock of pid ${held.pid} (since ${held.started}; that process is gone)`);
  }
  fail(`cannot lock run folder ${dir}: other processes keep taking it`);
}

function holdLock(file: string, owner: LockOwner): RunLock {
  let released = false;
  const onSignal = (signal: NodeJS.Signals) => {
    release();
    // no one else handles it: let the signal do what it would have done without us
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  const release = () => {
    if (released) return;
    released = true;
    process.off('exit', release);
    for (const s of SIGNALS) process.off(s, onSignal);
    try {
      const now = readText(file);
      if (now !== null && parseOwner(now)?.token === owner.token) rmSync(file, { force: true });
    } catch {
      // the folder went away or became unreadable: nothing left to release
    }
  };
  process.on('exit', release);
  for (const s of SIGNALS) process.once(s, onSignal);
  return { file, owner, release };
}
