/**
 * looptune's cache folder (the peak cache, the default tuning records), by the usual rules of a
 * Unix cache folder:
 *
 *   1. $XDG_CACHE_HOME/looptune, if XDG_CACHE_HOME is an absolute path;
 *   2. $HOME/.cache/looptune, if HOME is an absolute path (HOME unset: the passwd entry's home);
 *   3. <os.tmpdir()>/looptune-<uid>, a folder of this user only.
 *
 * A relative or empty variable is ignored (it would put the cache in whatever folder the command
 * ran from), and so is a candidate that cannot be created (a home folder that does not exist or is
 * a file): the next rule applies. Never the current folder.
 */
import { lstatSync, mkdirSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface CacheDirEnv {
  XDG_CACHE_HOME?: string | undefined;
  HOME?: string | undefined;
}

const chosen = new Map<string, string>();

/** The cache folder (created if needed); decided once per process for each value of the variables. */
export function cacheDir(env: CacheDirEnv = process.env): string {
  const memo = `${env.XDG_CACHE_HOME ?? ''}\0${env.HOME ?? ''}`;
  let dir = chosen.get(memo);
  if (dir === undefined) {
    dir = cacheDirCandidates(env).find(creatable) ?? privateTempDir();
    chosen.set(memo, dir);
  }
  return dir;
}

/** The folders rules 1 and 2 allow, in order (rule 3 is privateTempDir). */
export function cacheDirCandidates(env: CacheDirEnv): string[] {
  const out: string[] = [];
  const xdg = env.XDG_CACHE_HOME;
  if (xdg && path.isAbsolute(xdg)) out.push(path.join(xdg, 'looptune'));
  const home = env.HOME ?? passwdHome();
  if (home && path.isAbsolute(home)) out.push(path.join(home, '.cache', 'looptune'));
  return out;
}

/** The user's home folder from the passwd database ('' when the user has no entry, as in some containers). */
function passwdHome(): string {
  try {
    return os.userInfo().homedir;
  } catch {
    return '';
  }
}

function creatable(dir: string): boolean {
  try {
    mkdirSync(dir, { recursive: true });
    return lstatSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** <tmp>/looptune-<uid>, mode 0700; if another user owns that name (or it is a link), a fresh private folder. */
function privateTempDir(): string {
  const uid = process.getuid?.();
  const dir = path.join(os.tmpdir(), `looptune-${uid ?? 'user'}`);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = lstatSync(dir);
    if (st.isDirectory() && (uid === undefined || st.uid === uid)) return dir;
  } catch {
    // fall through: a private folder of this process
  }
  return mkdtempSync(path.join(os.tmpdir(), `looptune-${uid ?? 'user'}-`));
}
