/**
 * Node's file-system errors (EACCES, ENOTDIR, ENOSPC...) as one line: the one table of their
 * reasons, used by the experiment runner, the tuning records and the CLI. A read-only disk or a file
 * where a folder should be is the user's situation to fix, not a bug: never a stack trace.
 */
import { LoopTuneError } from './errors.ts';

const REASONS: Readonly<Record<string, string>> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  ENOTDIR: 'a part of the path is a file, not a folder',
  EISDIR: 'it is a folder, not a file',
  ENOENT: 'no such file or folder',
  EEXIST: 'it already exists',
  ENOTEMPTY: 'the folder is not empty',
  EMFILE: 'too many open files',
  ENAMETOOLONG: 'name too long',
  ELOOP: 'too many symbolic links',
  EIO: 'input/output error',
};

const VERBS: Readonly<Record<string, string>> = {
  mkdir: 'create', open: 'open', write: 'write', read: 'read', rename: 'rename', unlink: 'remove', rmdir: 'remove',
  rm: 'remove', copyfile: 'copy', scandir: 'list', stat: 'read', lstat: 'read', fsync: 'write', link: 'link',
};

interface NodeFsError extends Error {
  code: string;
  syscall?: string;
  path?: string;
  dest?: string;
}

export function isFsError(e: unknown): e is NodeFsError {
  return e instanceof Error && typeof (e as Partial<NodeFsError>).code === 'string' && REASONS[(e as NodeFsError).code] !== undefined;
}

/** The short reason of a Node fs error ('permission denied'), or its own message. */
export function fsReason(e: unknown): string {
  if (isFsError(e)) return REASONS[e.code]!;
  return e instanceof Error ? e.message : String(e);
}

/** `cannot <verb> <path>: <reason>` for a Node fs error; other errors are returned unchanged. */
export function fsFailure(e: unknown): unknown {
  if (!isFsError(e)) return e;
  const verb = (e.syscall && VERBS[e.syscall]) ?? 'use';
  const where = e.path ? ` ${e.path}${e.dest ? ` -> ${e.dest}` : ''}` : '';
  return new LoopTuneError(`cannot ${verb}${where}: ${REASONS[e.code]}`);
}

/** Runs `fn`, converting the fs errors it throws into LoopTuneErrors. */
export async function withFsErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw fsFailure(e);
  }
}
