/**
 * Root ignores permission bits, so a read-only folder is read-only only to another user. When the
 * tests run as root (CI does), such cases run their command as 'nobody' (uid 65534). That user must
 * be able to reach the checkout: a clone under a 0700 folder (mktemp -d) is not reachable, so the
 * search bit for others is added to the checkout's ancestors for the test's duration and then put
 * back (nothing is made readable that was not; only traversal).
 */
import { chmodSync, statSync } from 'node:fs';
import path from 'node:path';

export const AS_NOBODY: { uid: number; gid: number } | undefined = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;

/** Lets `nobody` traverse to `dir`; returns the function that restores the ancestors' modes. */
export function letNobodyReach(dir: string): () => void {
  const changed: { dir: string; mode: number }[] = [];
  if (AS_NOBODY) {
    for (let d = path.resolve(dir); ; d = path.dirname(d)) {
      const mode = statSync(d).mode & 0o7777;
      if ((mode & 0o001) === 0) {
        chmodSync(d, mode | 0o001);
        changed.push({ dir: d, mode });
      }
      if (path.dirname(d) === d) break;
    }
  }
  return () => {
    for (const c of changed.reverse()) chmodSync(c.dir, c.mode);
  };
}
